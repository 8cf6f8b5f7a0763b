"""The patch convolution's product-form backward against torch's convolution."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from qmlp_brevitas.fast_patch_conv import PatchConv, applies, is_patch_conv
from qmlp_brevitas.fast_qat import fast_quant
from tests.conftest import calibrated


@pytest.mark.parametrize(
    ("shape", "kernel", "bias"),
    [
        ((8, 1, 28, 28), (7, 7), True),  # the Fashion-MNIST stem
        ((4, 3, 32, 32), (4, 4), False),
        ((3, 2, 30, 29), (7, 7), True),  # rows and columns past the last whole patch
        ((2, 3, 12, 20), (3, 5), True),  # rectangular patches
    ],
)
def test_patch_conv_is_conv2d_with_the_same_gradients(shape, kernel, bias):
    torch.manual_seed(0)
    x = torch.randn(shape, requires_grad=True)
    w = torch.randn(6, shape[1], *kernel, requires_grad=True)
    b = torch.randn(6, requires_grad=True) if bias else None
    inputs = [t for t in (x, w, b) if t is not None]
    reference = F.conv2d(x, w, b, stride=kernel)
    out = PatchConv.apply(x, w, b)
    assert torch.equal(out, reference)
    grad = torch.randn_like(reference)
    expected = torch.autograd.grad(reference, inputs, grad)
    got = torch.autograd.grad(out, inputs, grad)
    for name, e, g in zip(("x", "weight", "bias"), expected, got, strict=False):
        assert g.shape == e.shape
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-5, msg=name)
    if shape[-2] % kernel[0] or shape[-1] % kernel[1]:  # pixels no patch covers
        assert torch.count_nonzero(got[0][..., shape[-2] // kernel[0] * kernel[0] :, :]) == 0


def test_patch_conv_computes_only_the_gradients_asked_for():
    x = torch.randn(2, 1, 14, 14)  # the input of the float model needs no gradient
    w = torch.randn(4, 1, 7, 7, requires_grad=True)
    (grad_w,) = torch.autograd.grad(PatchConv.apply(x, w, None).sum(), [w])
    torch.testing.assert_close(grad_w, torch.autograd.grad(F.conv2d(x, w, stride=7).sum(), [w])[0])


def test_only_plain_non_overlapping_convolutions_are_patch_convolutions():
    assert is_patch_conv(nn.Conv2d(1, 4, 7, stride=7))
    assert is_patch_conv(nn.Conv2d(1, 4, (3, 5), stride=(3, 5), padding="valid"))
    assert not is_patch_conv(nn.Conv2d(1, 4, 7, stride=4))  # overlapping
    assert not is_patch_conv(nn.Conv2d(1, 4, 7, stride=7, padding=1))
    assert not is_patch_conv(nn.Conv2d(2, 4, 7, stride=7, groups=2))
    assert not is_patch_conv(nn.Conv2d(1, 4, 3, stride=3, dilation=2))
    assert not is_patch_conv(nn.Conv2d(1, 4, 7, stride=7, padding_mode="reflect"))
    assert applies(torch.randn(1, 1, 28, 28))
    assert not applies(torch.randn(1, 1, 28, 28, dtype=torch.float64))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not applies(torch.randn(1, 1, 28, 28))


def test_the_fast_path_stem_runs_the_patch_convolution():
    model = calibrated("qmlp_mixer_28", 4, 4, depth=1).train()
    with fast_quant(model):
        out = model(torch.randn(4, 1, 28, 28))
    seen, todo = set(), [out.grad_fn]
    while todo:
        node = todo.pop()
        seen.add(type(node).__name__)
        todo.extend(n for n, _ in node.next_functions if n is not None)
    assert "PatchConvBackward" in seen
    assert "ConvolutionBackward0" not in seen
