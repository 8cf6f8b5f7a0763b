"""The integer LayerNorm's training forward as one autograd Function (used by fast QAT).

:class:`~qmlp_brevitas.int_layernorm.IntLayerNorm` trains with a straight-through surrogate:
its forward value is ``surrogate + (exact - surrogate)`` (``exact`` the integers of
:func:`~qmlp_brevitas.intnorm.int_layernorm`, ``surrogate`` the float LayerNorm of ``n = x / s``
times ``2**F``), then ``* 2**-F * weight + bias``; autograd records about 20 operations per call,
forward and backward. :class:`IntLayerNormSte` computes the same float operations in the same
order (identical output) and the gradient of that graph in closed form, for the input value,
the input scale ``s`` (through ``n = x / s``), ``weight`` and ``bias``:

* ``g_c = g * weight``, the gradient of ``centred * r`` (the factors ``2**F`` and ``2**-F``
  cancel exactly) with ``r = rsqrt(max(var + E / C**2, 1 / (2 C**2)))``;
* ``g_var = -r**3 / 2 * sum(g_c * centred)`` where the clamp passes (zero where it clamps);
* ``g_centred = g_c * r + centred * 2 g_var / C``, ``g_n = g_centred - mean(g_centred)``;
* ``g_x = g_n / s``, ``g_s = -sum(g_n * x) / s**2``, ``g_weight = sum(g * y * 2**-F)``,
  ``g_bias = sum(g)`` over every axis but the channels.

:func:`int_layernorm_forward` is the module's forward on this Function; the module itself
(parameters, state dict, export) is unchanged.
"""

from __future__ import annotations

import torch
from brevitas.quant_tensor import IntQuantTensor
from torch import Tensor

from .intnorm import IntLayerNormSpec, int_layernorm, int_layernorm_float


class IntLayerNormSte(torch.autograd.Function):
    """``IntLayerNorm``'s integer path (training surrogate) in one node; see module docstring.

    ``integers``, when a list, receives the int64 integers of this call (``record_integers``).
    Multiplications by ``2**F`` and ``2**-F`` are exact, so they are applied to the per-token
    ``r`` and to ``weight`` instead of the whole tensor: the same floats.
    """

    @staticmethod
    def forward(ctx, x: Tensor, scale: Tensor, weight: Tensor, bias: Tensor, spec, integers=None):
        # Every tensor keeps the module's layout (``x``'s, often channels-strided): the means'
        # float results depend on it, and changing layouts costs more than a pass.
        n = x / scale
        q = torch.round(n)
        if integers is not None:  # as the module records them (also for 16-bit activations)
            integers.append(int_layernorm(q.to(torch.int64), spec).cpu())
        ints = int_layernorm_float(q, spec)
        c = spec.channels
        centred = n - n.mean(dim=-1, keepdim=True)
        var = torch.pow(centred, 2, out=n).mean(dim=-1, keepdim=True) + spec.eps_int / c**2
        floor = 0.5 / c**2
        passed = var >= floor
        r = torch.rsqrt(var.clamp_min(floor))
        surrogate = torch.mul(centred, r * 2.0**spec.frac_bits, out=q)  # q's memory is free
        ints.sub_(surrogate).add_(surrogate)  # surrogate + (exact - surrogate)
        out = (ints * (weight * 2.0**-spec.frac_bits)).add_(bias)
        ctx.frac_bits, ctx.eps = spec.frac_bits, spec.eps_int / c**2
        ctx.save_for_backward(scale, weight, centred, r, passed, ints)
        return out

    @staticmethod
    def backward(ctx, grad):
        scale, weight, centred, r, passed, ints = ctx.saved_tensors
        c = centred.shape[-1]
        need = ctx.needs_input_grad
        grad_x = grad_scale = grad_weight = grad_bias = None
        tokens = tuple(range(grad.dim() - 1))  # sums over tokens keep any layout (no copies)
        if need[0] or need[1]:
            g_c = grad * weight
            s_tok = (g_c * centred).sum(dim=-1, keepdim=True)  # S = sum(g_c * centred)
            if need[1]:
                grad_scale = _scale_grad(s_tok, r, passed, ctx.eps, scale)
            if need[0]:
                # g_x = (g_c * r + centred * 2 g_var / C - mean(g_c) * r) / s, the mean of the
                # centred term dropped (mean(centred) is 0: only its rounding is left).
                g_var = s_tok * (r.pow(3) * -0.5) * passed
                r_s = r / scale
                shift = g_c.mean(dim=-1, keepdim=True).mul_(r_s).neg_()
                grad_x = torch.addcmul(shift, g_c, r_s).addcmul_(centred, g_var * (2.0 / c) / scale)
        if need[2]:
            grad_weight = (grad * ints).sum(dim=tokens) * 2.0**-ctx.frac_bits
        if need[3]:
            grad_bias = grad.sum(dim=tokens)
        return grad_x, grad_scale, grad_weight, grad_bias, None, None


def _scale_grad(s_tok: Tensor, r: Tensor, passed: Tensor, eps: float, scale: Tensor) -> Tensor:
    """The gradient of the input scale ``s`` through ``n = x / s``: ``-sum(g_n * n) / s``.

    Per token, ``sum(g_n * n) = S * r * (eps * r**2 if the clamp passes else 1)`` with ``S =
    sum(g * weight * centred)`` (LayerNorm is scale invariant but for its epsilon). Brevitas'
    graph gives the same value up to float rounding: there it is the small difference of
    large sums, here it is computed directly (exactly 0 for ``eps = 0`` where the clamp
    passes).
    """
    dtype = torch.promote_types(s_tok.dtype, torch.float32)
    s_tok, r = s_tok.to(dtype), r.to(dtype)
    factor = torch.where(passed, eps * r * r, torch.ones_like(r))
    total = (s_tok * r * factor).sum()
    return (-total / scale.reshape(())).reshape(scale.shape)


def int_layernorm_forward(module, x: IntQuantTensor) -> Tensor:
    """``module(x)`` for an :class:`IntLayerNorm` and an integer input, through
    :class:`IntLayerNormSte`: the same checks, integers, output and gradients."""
    spec: IntLayerNormSpec
    spec, _ = module.spec(x)
    module.integer_calls += 1
    integers = [] if module.record_integers else None
    out = IntLayerNormSte.apply(x.value, x.scale, module.weight, module.bias, spec, integers)
    if integers:
        module.last_integers = integers[0]
    return out
