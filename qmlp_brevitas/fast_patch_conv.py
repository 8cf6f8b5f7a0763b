"""Non-overlapping patch convolution (kernel = stride) with its backward as matrix products.

The stem of an MLP model is a convolution whose kernel equals its stride: each output position
sees its own patch. In QAT its input is the input quantizer's output, which needs a gradient (for
the quantizer's learned scale), and on the CPU torch computes that input gradient as a transposed
convolution that costs several times the whole rest of the layer (about 4.6 ms of a 63 ms
``qmlp_mixer_28`` step at batch 128; the float model's input needs no gradient).

:class:`PatchConv` keeps the forward exactly ``F.conv2d`` (identical output) and computes the
backward as what the layer is, a matrix product over patches: ``grad_x = G @ W`` folded back into
the image, ``grad_w = G^T @ P`` for the patches ``P``, ``grad_b = sum(G)``. Gradients agree with
torch's to float rounding (the sums run in another order).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def is_patch_conv(conv: nn.Conv2d) -> bool:
    """Whether ``conv`` is a plain non-overlapping patch convolution (kernel = stride, no
    padding, dilation or groups)."""
    padding = conv.padding if conv.padding != "valid" else (0, 0)
    return (
        tuple(conv.kernel_size) == tuple(conv.stride)
        and tuple(padding) == (0, 0)
        and tuple(conv.dilation) == (1, 1)
        and conv.groups == 1
        and conv.padding_mode == "zeros"
    )


def applies(x: Tensor) -> bool:
    """Whether :class:`PatchConv` takes this input: a float32 CPU tensor outside autocast (on
    CUDA the library's own input gradient is fast, and autocast mixes dtypes)."""
    return (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and x.dim() == 4
        and not torch.is_autocast_enabled("cpu")
    )


def _patches(x: Tensor, kh: int, kw: int) -> Tensor:
    """``(B * H/kh * W/kw, C * kh * kw)``: every patch of ``x`` as a row, in weight order."""
    b, c, h, w = x.shape
    return (
        x.reshape(b, c, h // kh, kh, w // kw, kw)
        .permute(0, 2, 4, 1, 3, 5)
        .reshape(b * (h // kh) * (w // kw), c * kh * kw)
    )


class PatchConv(torch.autograd.Function):
    """``F.conv2d(x, weight, bias, stride=kernel)``, backward as products over patches."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None):
        kh, kw = weight.shape[-2:]
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return F.conv2d(x, weight, bias, stride=(kh, kw))

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        b, c, h, w = x.shape
        o, _, kh, kw = weight.shape
        hp, wp = grad.shape[-2:]
        g = grad.permute(0, 2, 3, 1).reshape(b * hp * wp, o)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            cols = g @ weight.reshape(o, c * kh * kw)
            folded = cols.view(b, hp, wp, c, kh, kw).permute(0, 3, 1, 4, 2, 5)
            folded = folded.reshape(b, c, hp * kh, wp * kw)
            if (hp * kh, wp * kw) == (h, w):
                grad_x = folded
            else:  # rows and columns past the last whole patch get no gradient
                grad_x = x.new_zeros(x.shape)
                grad_x[:, :, : hp * kh, : wp * kw] = folded
        if ctx.needs_input_grad[1]:
            grad_w = (g.t() @ _patches(x[:, :, : hp * kh, : wp * kw], kh, kw)).view_as(weight)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = g.sum(0)
        return grad_x, grad_w, grad_b
