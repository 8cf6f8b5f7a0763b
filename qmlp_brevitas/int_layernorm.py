"""The Brevitas-side integer LayerNorm: trains with QAT, computes the hardware's integers.

:class:`IntLayerNorm` takes the residual stream as Brevitas ``IntQuantTensor`` (the shared
quantizer of a residual add, or the stem's output quantizer, return it with its scale ``s``
and bit width; the sum of two operands of one quantizer is such a tensor one bit wider), and
computes, on the integers ``x / s``, exactly :func:`qmlp_brevitas.intnorm.int_layernorm`: the
same integers as the QONNX op, FINN's layer and the RTL. The output is ``y * 2**-F`` times the
learned ``weight`` plus ``bias`` (LayerNorm's affine, which FINN folds into the following
thresholds; the names match ``nn.LayerNorm``, so float LayerNorm checkpoints load).

Training: the forward value is the integer result; the gradient is that of the float
LayerNorm of ``x / s`` with the same epsilon (straight-through past the rounding of the inverse
square root and of the output).

A plain tensor input (the float model, or Brevitas calibration, when quantizers are off) gets
float LayerNorm with the same parameters and epsilon.

Export: under ``torch.onnx`` export the integer part is the custom op ``IntLayerNorm`` in the
domain ``qmlp_brevitas.custom_op`` (executed by qonnx through
:mod:`qmlp_brevitas.custom_op`), followed by ``Mul(2**-F)``, ``Mul(weight)``, ``Add(bias)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from brevitas.quant_tensor import IntQuantTensor
from torch import nn

from .finn.domains import QMLP_QONNX_DOMAIN
from .intnorm import DEFAULT_FRAC_BITS, IntLayerNormSpec, eps_to_int, int_layernorm

ONNX_DOMAIN = QMLP_QONNX_DOMAIN
ONNX_OP = "IntLayerNorm"


class IntLayerNormOnnx(torch.autograd.Function):
    """The integer part as one ONNX node (used only under ``torch.onnx`` export)."""

    @staticmethod
    def forward(ctx, x, input_scale: float, input_bits: int, frac_bits: int, eps_int: int):
        spec = IntLayerNormSpec(int(x.shape[-1]), input_bits, frac_bits, eps_int)
        # The node stands for this computation; its steps are not traced into the graph.
        tracing = torch._C._get_tracing_state()
        torch._C._set_tracing_state(None)
        try:
            ints = torch.round(x.detach() / input_scale).to(torch.int64)
            return int_layernorm(ints, spec).to(x.dtype)
        finally:
            torch._C._set_tracing_state(tracing)

    @staticmethod
    def symbolic(g, x, input_scale, input_bits, frac_bits, eps_int):
        rsqrt_bits = IntLayerNormSpec(_channels(x), input_bits, frac_bits, eps_int).rsqrt_bits
        out = g.op(
            f"{ONNX_DOMAIN}::{ONNX_OP}",
            x,
            input_scale_f=input_scale,
            input_bits_i=input_bits,
            frac_bits_i=frac_bits,
            eps_int_i=eps_int,
            rsqrt_bits_i=rsqrt_bits,
        )
        out.setType(x.type())
        return out


def _channels(value) -> int:
    sizes = value.type().sizes()
    return int(sizes[-1])


class IntLayerNorm(nn.Module):
    """LayerNorm over the last axis on the integer residual stream (see module docstring)."""

    def __init__(self, dim: int, eps: float = 1e-6, frac_bits: int = DEFAULT_FRAC_BITS):
        super().__init__()
        self.normalized_shape = (dim,)
        self.eps = eps
        self.frac_bits = frac_bits
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.layer_name = type(self).__name__  # set to the module's path by the model
        self.integer_calls = 0  # forward passes that took the integer path
        self.record_integers = False  # keep the integers of each forward (export's check)
        self.last_integers: torch.Tensor | None = None

    def extra_repr(self) -> str:
        return f"{self.normalized_shape[0]}, eps={self.eps}, frac_bits={self.frac_bits}"

    def spec(self, x: IntQuantTensor) -> tuple[IntLayerNormSpec, float]:
        """The integer LayerNorm of this input: its spec and the input scale."""
        if not bool((x.zero_point == 0).all()):
            raise ValueError(
                f"IntLayerNorm {self.layer_name}: its input quantizer has a zero point; the "
                "integer LayerNorm needs a symmetric (zero-point-free) quantizer in front"
            )
        if x.scale.numel() != 1:
            raise ValueError(
                f"IntLayerNorm {self.layer_name}: its input has {x.scale.numel()} scales; the "
                "integer LayerNorm needs a per-tensor quantizer in front"
            )
        scale = float(x.scale.detach())
        bits = int(x.bit_width.detach()) + (0 if x.signed else 1)
        channels = self.normalized_shape[0]
        spec = IntLayerNormSpec(
            channels,
            bits,
            self.frac_bits,
            eps_to_int(self.eps, scale, channels),
            layer=self.layer_name,
        )
        return spec, scale

    def forward(self, x):
        if not isinstance(x, IntQuantTensor):
            return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        spec, scale = self.spec(x)
        self.integer_calls += 1
        if torch.onnx.is_in_onnx_export():
            ints = IntLayerNormOnnx.apply(
                x.value, scale, spec.input_bits, spec.frac_bits, spec.eps_int
            )
        else:
            n = x.value / x.scale
            exact = int_layernorm(torch.round(n.detach()).to(torch.int64), spec)
            if self.record_integers:
                self.last_integers = exact.cpu()
            centred = n - n.mean(dim=-1, keepdim=True)
            var = centred.pow(2).mean(dim=-1, keepdim=True) + spec.eps_int / spec.channels**2
            # A non-constant token has var >= (C-1)/C**2; a constant one has centred == 0.
            var = var.clamp_min(0.5 / spec.channels**2)
            surrogate = centred * torch.rsqrt(var) * 2.0**spec.frac_bits
            ints = surrogate + (exact.to(n.dtype) - surrogate).detach()
        return ints * 2.0**-spec.frac_bits * self.weight + self.bias
