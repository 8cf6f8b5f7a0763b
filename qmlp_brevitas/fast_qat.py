"""Fast QAT: Brevitas' integer fake quantization as one autograd Function per quantizer call.

Brevitas evaluates a quantizer as a chain of small modules (proxy, ``RescalingIntQuant``,
``IntQuant``, ``RoundSte``, ``TensorClamp``, ...), and its autograd graph records every step: about
40 tensor operations per quantizer call, forward and backward, most of them full passes over the
activation. On a small model that is most of a training step (3.5x the float step for
``qmlp_mixer_28``).

Inside :func:`fast_quant` (a context manager) every supported ``QuantIdentity``, ``QuantLinear``
and ``QuantConv2d`` of a model runs instead:

* the quantizer's own Brevitas modules for the scale, zero point and bit width
  (``scaling_impl``, ``zero_point_impl``, ``msb_clamp_bit_width_impl``, ``int_scaling_impl``), so
  the learned scales and zero points, and the weights behind the weight scales, get their
  gradients from Brevitas' own code, and calibration statistics stay Brevitas' too;
* :class:`FakeQuant` for the integer part (``IntQuant``: ``x / s + z``, round, clamp to the integer
  range, ``- z``, ``* s``): the same float operations in the same order, so the output is
  identical, and the gradients of Brevitas' graph in closed form: straight-through rounding, a
  clamp that stops the gradient outside the integer range (``TensorClamp``, activations) or
  passes it (``TensorClampSte``, weights), and the scale and zero-point gradients that follow
  (``dL/ds = sum(g * (q - z) - g_x * x / s)``, ``dL/dz = s * sum(g_x - g)``).

A quantizer that returns a Brevitas ``IntQuantTensor`` (the residual stream's, in front of the
integer LayerNorms) gets the scale and zero point as further outputs of its node, so gradients
reaching them join Brevitas' chain; a ``QuantTensor`` input is quantized by its value, as
Brevitas does. Each :class:`~qmlp_brevitas.int_layernorm.IntLayerNorm` runs as one node too
(:mod:`qmlp_brevitas.fast_int_layernorm`). A ``QuantConv2d`` that is a non-overlapping patch
embedding (the stem) runs its convolution through
:class:`~qmlp_brevitas.fast_patch_conv.PatchConv` on the CPU: the same forward, and the backward
as matrix products over patches instead of torch's transposed convolution for the input gradient.

Nothing of the model changes: same modules, parameters and state dict; leaving the context
restores Brevitas' forward. Export, calibration mode, disabled quantizers and any Brevitas
configuration that :func:`plan_fast_quant` does not recognise run Brevitas' own forward, so the
fast path is an optimisation of training and evaluation only. The one float difference from
Brevitas: a symmetric quantizer skips adding and subtracting its zero point of ``0.0``, which can
only turn a ``-0.0`` output into ``+0.0`` (equal values). Gradients agree to float rounding (the
sums behind the scale gradients run in another order).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from brevitas.core.bit_width import BitWidthConst
from brevitas.core.function_wrapper import Identity as BrevitasIdentity
from brevitas.core.function_wrapper import RoundSte, TensorClamp, TensorClampSte
from brevitas.core.function_wrapper.misc import Abs
from brevitas.core.function_wrapper.ops_ste import ScalarSignedClampMinSte
from brevitas.core.quant import IntQuant, RescalingIntQuant
from brevitas.core.quant.delay import DelayWrapper, _NoDelay
from brevitas.core.restrict_val import FloatRestrictValue
from brevitas.core.scaling import ParameterFromRuntimeStatsScaling, StatsFromParameterScaling
from brevitas.core.zero_point import ParameterFromRuntimeZeroPoint, ZeroZeroPoint
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear
from brevitas.proxy.parameter_quant import WeightQuantProxyFromInjector
from brevitas.proxy.runtime_quant import ActQuantProxyFromInjector
from brevitas.quant_tensor import IntQuantTensor, QuantTensor
from torch import Tensor, nn

from .fast_int_layernorm import int_layernorm_forward
from .fast_patch_conv import PatchConv, applies, is_patch_conv
from .int_layernorm import IntLayerNorm
from .intnorm import is_dense


def _in_range_grad(grad: Tensor, r: Tensor, lo: float, hi: float) -> Tensor:
    """``grad`` where the integer-valued ``r`` lies in ``[lo, hi]``, else 0 (one fused kernel).

    This is the gradient of Brevitas' ``tensor_clamp`` (two ``torch.where``). ``hardtanh_backward``
    passes the gradient strictly inside its bounds, which for integers is ``lo - 0.5 < r < hi +
    0.5``. (On the CPU, ``torch.where`` and boolean masks cost 5-45 times a multiplication.)
    """
    return torch.ops.aten.hardtanh_backward(grad, r, lo - 0.5, hi + 0.5)


def _flat(t: Tensor) -> Tensor:
    """A dense tensor's elements as a 1-D view, in memory order."""
    return t.as_strided((t.numel(),), (1,), t.storage_offset())


def _accumulate_dtype(t: Tensor) -> torch.dtype:
    """float32 for 16-bit floats (autocast activations), else the tensor's own dtype."""
    return torch.float32 if t.dtype in (torch.float16, torch.bfloat16) else t.dtype


def _dot(a: Tensor, b: Tensor) -> Tensor:
    """``sum(a * b)`` in one pass: over memory when both share a dense layout (transposed
    activations do), else after copying to contiguous (an elementwise product of two layouts
    costs several times more). 16-bit inputs are summed in float32: their scale gradient is a
    small difference of two large sums."""
    dtype = torch.promote_types(_accumulate_dtype(a), _accumulate_dtype(b))
    a, b = a.to(dtype), b.to(dtype)
    if a.stride() == b.stride() and is_dense(a):
        return torch.dot(_flat(a), _flat(b))
    return torch.dot(a.contiguous().view(-1), b.contiguous().view(-1))


def _quantize(x, scale, zero_point, lo: float, hi: float, has_zp: bool):
    """Brevitas ``IntQuant``'s forward, ``(clamp(round(x/s + z)) - z) * s``: (rounded, output).

    Brevitas' order of operations, in place where a buffer is not needed again, which keeps the
    working set small (the passes over large activations are memory-bound).
    """
    r = x / scale
    if has_zp:
        r.add_(zero_point)
    r.round_()
    out = torch.clamp(r, lo, hi)
    if has_zp:
        out.sub_(zero_point)
    out.mul_(scale)
    return r, out


def _quantize_grads(ctx, grad, x, r, out, scale, zero_point, need_scale: bool, need_zp: bool):
    """Gradients of :func:`_quantize` for (x, scale, zero point), as Brevitas' graph gives them.

    Rounding is straight-through; ``TensorClamp`` stops the gradient of ``x`` where the rounded
    value lies outside ``[lo, hi]``, ``TensorClampSte`` passes it. With ``q - z = out / s``:
    ``dout/ds = (q - z) - [in range] * x / s`` and ``dout/dz = ([in range] - 1) * s``.
    """
    grad_x = _in_range_grad(grad, r, ctx.lo, ctx.hi) if ctx.clamp_grad else grad
    grad_scale = grad_zero_point = None
    if need_scale:
        if scale.numel() == 1:
            s = scale.reshape(())
            grad_scale = ((_dot(grad, out) - _dot(grad_x, x)) / s).reshape(scale.shape)
        else:
            grad_scale = ((grad * out - grad_x * x) / scale).sum_to_size(scale.shape)
    if ctx.has_zp and need_zp:
        if scale.numel() == 1 and zero_point.numel() == 1:
            dtype = _accumulate_dtype(grad)
            diff = grad_x.sum(dtype=dtype) - grad.sum(dtype=dtype)
            grad_zero_point = (diff * scale.reshape(())).reshape(zero_point.shape)
        else:
            grad_zero_point = ((grad_x - grad) * scale).sum_to_size(zero_point.shape)
    return grad_x.to(ctx.x_dtype), grad_scale, grad_zero_point


class FakeQuant(torch.autograd.Function):
    """Brevitas ``IntQuant`` (with ``RoundSte``) in one node, for a given scale and zero point.

    ``lo``/``hi`` are the integer range; ``clamp_grad`` selects ``TensorClamp`` (the gradient of
    ``x`` is zero where ``round(x/s + z)`` lies outside the range) or ``TensorClampSte`` (passed
    everywhere); ``has_zp`` is False for a constant zero point of 0, which is then skipped.
    """

    @staticmethod
    def forward(ctx, x, scale, zero_point, lo: float, hi: float, clamp_grad: bool, has_zp: bool):
        r, out = _quantize(x, scale, zero_point, lo, hi, has_zp)
        ctx.lo, ctx.hi, ctx.clamp_grad, ctx.has_zp = lo, hi, clamp_grad, has_zp
        ctx.x_dtype = x.dtype
        ctx.save_for_backward(x, r if clamp_grad else None, out, scale, zero_point)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, r, out, scale, zero_point = ctx.saved_tensors
        need = ctx.needs_input_grad
        grads = _quantize_grads(ctx, grad, x, r, out, scale, zero_point, need[1], need[2])
        return *grads, None, None, None, None


class LearnedActQuant(torch.autograd.Function):
    """A calibrated Brevitas activation quantizer in training, in one node.

    Scale (``ParameterFromRuntimeStatsScaling`` after its statistics phase): ``clamp_min(|v|,
    min_val) / threshold``, i.e. ``FloatRestrictValue`` (abs), ``ScalarSignedClampMinSte`` (sign
    and binary sign both 1 for ``|v|``, clamp straight-through) and the division by the integer
    threshold. Zero point, when ``zp_value`` is given (``ParameterFromRuntimeZeroPoint`` with
    ``quantize_zero_point``): ``clamp(round(|u| / s + zlo), zlo, zhi)``, i.e.
    ``abs_binary_sign_grad`` and ``IntQuant.to_int``. Then :func:`_quantize`. Forward values and
    the gradient chain of both parameters are Brevitas' (``|v|`` back-propagates ``sgn(v)``,
    ``abs_binary_sign_grad`` the binary sign).
    """

    @staticmethod
    def forward(ctx, x, value, zp_value, threshold, min_val, lo, hi, zlo, zhi, with_scale=False):
        a = torch.abs(value)
        scale = (a if min_val is None else torch.clamp_min(a, min_val)) / threshold
        has_zp = zp_value is not None
        if has_zp:
            za = torch.abs(zp_value)
            zr = torch.round(za / scale + zlo)
            zero_point = torch.clamp(zr, zlo, zhi)
        else:
            za = zr = zero_point = None
        r, out = _quantize(x, scale, zero_point, lo, hi, has_zp)
        ctx.lo, ctx.hi, ctx.zlo, ctx.zhi = lo, hi, zlo, zhi
        ctx.clamp_grad, ctx.has_zp, ctx.x_dtype = True, has_zp, x.dtype
        ctx.save_for_backward(x, r, out, value, scale, threshold, zp_value, za, zr, zero_point)
        ctx.with_scale = with_scale
        if not with_scale:
            return out
        # The scale (and zero point) of the output QuantTensor: the same tensors, so their
        # gradients join those of the quantization below, as in Brevitas' graph.
        ctx.set_materialize_grads(False)
        return (out, scale) if zero_point is None else (out, scale, zero_point)

    @staticmethod
    def backward(ctx, grad, grad_scale_out=None, grad_zp_out=None):
        x, r, out, value, scale, threshold, zp_value, za, zr, zero_point = ctx.saved_tensors
        need = ctx.needs_input_grad
        need_zp = ctx.has_zp and need[2]
        if grad is None:
            grad = torch.zeros_like(out)
        grad_x, grad_scale, grad_zp = _quantize_grads(
            ctx, grad, x, r, out, scale, zero_point, need[1] or need_zp, need_zp
        )
        if grad_scale_out is not None and grad_scale is not None:
            grad_scale = grad_scale + grad_scale_out
        if grad_zp_out is not None and grad_zp is not None:
            grad_zp = grad_zp + grad_zp_out
        grad_zp_value = None
        if ctx.has_zp:
            g = _in_range_grad(grad_zp, zr, ctx.zlo, ctx.zhi)
            binary_sign = torch.ge(zp_value, 0.0).to(zp_value.dtype) * 2.0 - 1.0
            grad_zp_value = binary_sign * (g / scale)
            grad_scale = grad_scale + -g * ((za / scale) / scale)
        grad_value = (grad_scale / threshold) * torch.sgn(value) if need[1] else None
        return grad_x, grad_value, grad_zp_value, None, None, None, None, None, None, None


class ClampMinDiv(torch.autograd.Function):
    """``clamp_min(a, min_val) / threshold`` for ``a >= 0``, the clamp straight-through.

    Brevitas' scale tail for a non-negative statistic: ``ScalarSignedClampMinSte``
    (``sign * scalar_clamp_min_ste(abs_binary_sign_grad(a))``, sign and binary sign both 1 for
    ``a >= 0``), ``FloatRestrictValue`` (``abs``, the identity here) and the division by the
    integer threshold. Forward values and the gradient ``grad / threshold`` are Brevitas' exactly.
    """

    @staticmethod
    def forward(ctx, a, min_val: float | None, threshold: Tensor):
        ctx.save_for_backward(threshold)
        return (a if min_val is None else torch.clamp_min(a, min_val)) / threshold

    @staticmethod
    def backward(ctx, grad):
        (threshold,) = ctx.saved_tensors
        return grad / threshold, None, None


def _signed_clamp_min(module: nn.Module) -> float | None | str:
    """The ``min_val`` of a Brevitas clamp that is ``ScalarSignedClampMinSte`` or the identity."""
    if isinstance(module, BrevitasIdentity | nn.Identity):
        return None
    if type(module) is ScalarSignedClampMinSte:
        return float(module.min_val)
    return f"scale clamp {type(module).__name__}"


def _is_abs_restrict(module: nn.Module) -> bool:
    return type(module) is FloatRestrictValue and type(module.apply_abs) is Abs


def _max_min(*values: float | None) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


ScaleFn = Callable[[Tensor], Tensor]
ZeroPointFn = Callable[[Tensor, Tensor], Tensor]


def _weight_scale_fn(impl: StatsFromParameterScaling, int_threshold: Tensor) -> ScaleFn | None:
    """Brevitas' statistics of the weight (view, ``|w|``, max), then the scale tail in one node;
    None where the tail is not the known chain."""
    stats_scaling = impl.stats_scaling_impl
    clamps = (
        _signed_clamp_min(stats_scaling.clamp_scaling.clamp_min_ste),
        _signed_clamp_min(stats_scaling.restrict_clamp_scaling.clamp_ste),
    )
    scale_threshold = stats_scaling.restrict_clamp_scale_threshold
    if (
        any(isinstance(c, str) for c in clamps)
        or not isinstance(stats_scaling.affine_rescaling, BrevitasIdentity)
        or type(stats_scaling.restrict_scaling_pre) is not Abs
        or not _is_abs_restrict(stats_scaling.restrict_clamp_scaling.restrict_value_impl)
        or not isinstance(scale_threshold.restrict_value_impl, BrevitasIdentity)
        or not isinstance(scale_threshold.clamp_ste, BrevitasIdentity)
    ):
        return None
    # Two clamps at min_val m1 then m2 of a value >= 0 are one clamp at max(m1, m2).
    min_val = _max_min(*clamps)
    with torch.no_grad():
        threshold = stats_scaling.restrict_clamp_threshold(
            stats_scaling.restrict_threshold_pre(int_threshold)
        )

    def weight_scale(w: Tensor) -> Tensor:
        return ClampMinDiv.apply(impl.parameter_list_stats(w), min_val, threshold)

    return weight_scale


@dataclass
class LearnedAct:
    """A learned activation scale (and zero point) that :class:`LearnedActQuant` computes."""

    scaling: ParameterFromRuntimeStatsScaling
    zero_point: ParameterFromRuntimeZeroPoint | None
    threshold: Tensor
    min_val: float | None
    zlo: float = 0.0
    zhi: float = 0.0

    def active(self) -> bool:
        """After the statistics phases, in training (Brevitas' evaluation path differs)."""
        s, z = self.scaling, self.zero_point
        if not s.training or s.counter <= s.collect_stats_steps or s.local_loss_mode:
            return False
        return z is None or (z.counter > z.collect_stats_steps and not z.local_loss_mode)


def _learned_act(
    tensor_quant: RescalingIntQuant, int_threshold: Tensor, bit_width: Tensor
) -> LearnedAct | None:
    """The :class:`LearnedAct` of an activation quantizer whose chains are the known ones."""
    impl = tensor_quant.scaling_impl
    if type(impl) is not ParameterFromRuntimeStatsScaling:
        return None
    min_val = _signed_clamp_min(impl.clamp_scaling.clamp_min_ste)
    if (
        isinstance(min_val, str)
        or not _is_abs_restrict(impl.restrict_scaling.restrict_value_impl)
        or not isinstance(impl.restrict_scale_threshold.restrict_value_impl, BrevitasIdentity)
    ):
        return None
    with torch.no_grad():
        threshold = impl.restrict_threshold(impl.restrict_threshold_pre(int_threshold))
    zp = tensor_quant.zero_point_impl
    if isinstance(zp, ZeroZeroPoint):
        return LearnedAct(impl, None, threshold, min_val)
    shift = getattr(zp, "scale_shift_zero_point", None)
    iq = getattr(shift, "int_quant", None)
    if (
        type(zp) is not ParameterFromRuntimeZeroPoint
        or not shift.quantize_zero_point
        or type(iq) is not IntQuant
        or type(iq.float_to_int_impl) is not RoundSte
        or type(iq.tensor_clamp_impl) is not TensorClamp
        or not isinstance(iq.input_view_impl, BrevitasIdentity | nn.Identity)
    ):
        return None
    with torch.no_grad():
        zlo, zhi = float(iq.min_int(bit_width)), float(iq.max_int(bit_width))
    return LearnedAct(impl, zp, threshold, min_val, zlo, zhi)


@dataclass
class QuantizerPlan:
    """What the fast path needs of one Brevitas ``RescalingIntQuant``, fixed at install time.

    ``scale`` and ``zero_point`` compute them as Brevitas does (its own modules, or the weight
    scale tail in one node); ``learned`` runs a calibrated activation quantizer in one node.
    """

    tensor_quant: RescalingIntQuant
    scale: ScaleFn
    zero_point: ZeroPointFn
    lo: float
    hi: float
    clamp_grad: bool
    has_zero_point: bool
    learned: LearnedAct | None = None

    def __call__(self, x: Tensor) -> Tensor:
        """The quantized ``x``."""
        return self.quantize(x, with_scale=False)[0]

    def quantize(self, x: Tensor, with_scale: bool = True) -> tuple[Tensor, Tensor, Tensor]:
        """``(quantized x, scale, zero point)``, as Brevitas' ``RescalingIntQuant`` returns
        them (scale and zero point only ``with_scale``, else None)."""
        learned = self.learned
        if learned is not None and learned.active():
            zp = learned.zero_point
            outs = LearnedActQuant.apply(
                x,
                learned.scaling.value,
                None if zp is None else zp.value,
                learned.threshold,
                learned.min_val,
                self.lo,
                self.hi,
                learned.zlo,
                learned.zhi,
                with_scale,
            )
            if not with_scale:
                return outs, None, None
            if zp is None:
                return outs[0], outs[1], self.zero_point(x, outs[1])
            return outs
        scale = self.scale(x)
        zero_point = self.zero_point(x, scale)
        out = FakeQuant.apply(
            x, scale, zero_point, self.lo, self.hi, self.clamp_grad, self.has_zero_point
        )
        return (out, scale, zero_point) if with_scale else (out, None, None)

    def bit_width(self) -> Tensor:
        """Brevitas' bit width tensor of this quantizer."""
        return self.tensor_quant.msb_clamp_bit_width_impl()


@dataclass
class FastQuantReport:
    """Which quantized modules the fast path runs, and why the others stay on Brevitas' path."""

    fast: list[str] = field(default_factory=list)
    eager: dict[str, str] = field(default_factory=dict)  # module name -> reason


def _plan_tensor_quant(tensor_quant) -> QuantizerPlan | str:
    """A plan for ``tensor_quant``, or the reason why it stays on Brevitas' path."""
    if not isinstance(tensor_quant, RescalingIntQuant):
        return f"tensor quantizer {type(tensor_quant).__name__} is not RescalingIntQuant"
    iq = tensor_quant.int_quant
    if type(iq) is not IntQuant:
        return f"integer quantizer {type(iq).__name__} is not IntQuant"
    if type(iq.float_to_int_impl) is not RoundSte:
        return f"rounding {type(iq.float_to_int_impl).__name__} is not RoundSte"
    if type(iq.tensor_clamp_impl) not in (TensorClamp, TensorClampSte):
        return f"clamp {type(iq.tensor_clamp_impl).__name__} is not TensorClamp(Ste)"
    if not isinstance(iq.delay_wrapper, DelayWrapper) or not isinstance(
        iq.delay_wrapper.delay_impl, _NoDelay
    ):
        return "quantization delay is set"
    if not isinstance(iq.input_view_impl, BrevitasIdentity | nn.Identity):
        return "the integer quantizer reshapes its input"
    if not isinstance(tensor_quant.msb_clamp_bit_width_impl, BitWidthConst):
        return "the bit width is not constant"
    if getattr(tensor_quant, "observer_only", False):
        return "the quantizer only observes"
    with torch.no_grad():
        bit_width = tensor_quant.msb_clamp_bit_width_impl()
        int_threshold = tensor_quant.int_scaling_impl(bit_width)
        lo, hi = float(iq.min_int(bit_width)), float(iq.max_int(bit_width))
    scaling, zero_point_impl = tensor_quant.scaling_impl, tensor_quant.zero_point_impl

    def brevitas_scale(x: Tensor) -> Tensor:
        return scaling(x, int_threshold)

    has_zero_point = not isinstance(zero_point_impl, ZeroZeroPoint)
    if has_zero_point:

        def zero_point(x: Tensor, scale: Tensor) -> Tensor:
            return zero_point_impl(x, scale, bit_width)

    else:
        zero = zero_point_impl.zero_point()

        def zero_point(x: Tensor, scale: Tensor) -> Tensor:
            return zero

    weight_scale = None
    if type(scaling) is StatsFromParameterScaling:
        weight_scale = _weight_scale_fn(scaling, int_threshold)
    clamp_grad = type(iq.tensor_clamp_impl) is TensorClamp
    return QuantizerPlan(
        tensor_quant=tensor_quant,
        scale=weight_scale or brevitas_scale,
        zero_point=zero_point,
        lo=lo,
        hi=hi,
        clamp_grad=clamp_grad,
        has_zero_point=has_zero_point,
        learned=_learned_act(tensor_quant, int_threshold, bit_width) if clamp_grad else None,
    )


def _enabled(proxy) -> bool:
    return proxy is not None and getattr(proxy, "is_quant_enabled", False)


def _plan_module(module: nn.Module) -> QuantizerPlan | str | None:
    """The plan of a quantized layer, the reason it stays eager, or None if not a quant layer."""
    if isinstance(module, QuantIdentity):
        proxy = module.act_quant
        if type(proxy) is not ActQuantProxyFromInjector:
            return f"activation proxy {type(proxy).__name__}"
        if _enabled(module.input_quant):
            return "has an input quantizer"
        fused = proxy.fused_activation_quant_proxy
        if fused is None or not proxy.is_quant_enabled:
            return "quantization disabled"
        if not isinstance(fused.activation_impl, BrevitasIdentity | nn.Identity):
            return f"fused activation {type(fused.activation_impl).__name__}"
        return _plan_tensor_quant(fused.tensor_quant)
    if isinstance(module, QuantLinear | QuantConv2d):
        proxy = module.weight_quant
        if type(proxy) is not WeightQuantProxyFromInjector:
            return f"weight proxy {type(proxy).__name__}"
        if not proxy.is_quant_enabled:
            return "weight quantization disabled"
        if module.return_quant_tensor:
            return "returns a QuantTensor"
        for name in ("input_quant", "output_quant", "bias_quant"):
            if _enabled(getattr(module, name)):
                return f"has an enabled {name}"
        if proxy.requires_quant_input:
            return "the weight quantizer needs the quantized input"
        return _plan_tensor_quant(proxy.tensor_quant)
    return None


def plan_fast_quant(model: nn.Module) -> tuple[dict[str, QuantizerPlan], FastQuantReport]:
    """Plans for every quantized layer of ``model`` the fast path supports, and a report.

    The report's ``fast`` also lists the integer LayerNorms (:class:`IntLayerNormSte`; they
    need no plan).
    """
    plans, report = {}, FastQuantReport()
    for name, module in model.named_modules():
        if isinstance(module, IntLayerNorm):
            report.fast.append(name)
            continue
        plan = _plan_module(module)
        if plan is None:
            continue
        if isinstance(plan, str):
            report.eager[name] = plan
        else:
            plans[name] = plan
            report.fast.append(name)
    return plans, report


def _eager(module: nn.Module, proxy, plan: QuantizerPlan) -> bool:
    """Whether this call must take Brevitas' own path (export, calibration, tracing)."""
    return (
        module.export_mode
        or proxy.export_mode
        or not proxy.is_quant_enabled
        or plan.tensor_quant.observer_only  # calibration: statistics of the unquantized input
        or torch._C._get_tracing_state() is not None
    )


def _act_forward(module: QuantIdentity, plan: QuantizerPlan):
    """Brevitas' ``QuantIdentity`` forward: a QuantTensor input is quantized by its value, and
    with ``return_quant_tensor`` the output is an ``IntQuantTensor`` of Brevitas' scale, zero
    point and bit width (the scale and zero point carry their gradients)."""
    proxy, brevitas_forward = module.act_quant, type(module).forward

    def forward(x):
        if _eager(module, proxy, plan):
            return brevitas_forward(module, x)
        if isinstance(x, QuantTensor):
            x = x.value
        if not module.return_quant_tensor:
            return plan(x)
        out, scale, zero_point = plan.quantize(x)
        return IntQuantTensor(
            out, scale, zero_point, plan.bit_width(), proxy.is_signed, proxy.training
        )

    return forward


def _layer_forward(module: QuantLinear | QuantConv2d, plan: QuantizerPlan):
    proxy, brevitas_forward = module.weight_quant, type(module).forward
    patch_conv = isinstance(module, QuantConv2d) and is_patch_conv(module)

    def forward(x):
        if isinstance(x, QuantTensor) or _eager(module, proxy, plan):
            return brevitas_forward(module, x)
        if patch_conv and applies(x):
            return PatchConv.apply(x, plan(module.weight), module.bias)
        return module.inner_forward_impl(x, plan(module.weight), module.bias)

    return forward


def _int_layernorm_forward(module: IntLayerNorm):
    def forward(x):
        if (
            not isinstance(x, IntQuantTensor)
            or torch.onnx.is_in_onnx_export()
            or torch._C._get_tracing_state() is not None
        ):
            return type(module).forward(module, x)
        return int_layernorm_forward(module, x)

    return forward


@contextmanager
def fast_quant(model: nn.Module, enabled: bool = True) -> Iterator[FastQuantReport]:
    """Run the supported quantized layers of ``model`` through :class:`FakeQuant` inside the block.

    Yields the :class:`FastQuantReport`. With ``enabled=False`` nothing changes (the report lists
    no fast layers). Brevitas' forward is restored on exit, also after an error.
    """
    if not enabled:
        yield FastQuantReport()
        return
    plans, report = plan_fast_quant(model)
    modules = dict(model.named_modules())
    patched = []
    try:
        for name, plan in plans.items():
            module = modules[name]
            make = _act_forward if isinstance(module, QuantIdentity) else _layer_forward
            module.forward = make(module, plan)
            patched.append(module)
        for module in modules.values():
            if isinstance(module, IntLayerNorm):
                module.forward = _int_layernorm_forward(module)
                patched.append(module)
        yield report
    finally:
        for module in patched:
            del module.forward
