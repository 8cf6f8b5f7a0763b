"""Standard-ONNX QDQ export: every QONNX ``Quant`` as QuantizeLinear + DequantizeLinear.

QONNX's ``Quant`` node is a custom op that onnxruntime cannot run, and qonnx's own
``QuantToQCDQ`` keeps ``Quant`` nodes below 8 bits. :class:`QuantToQDQ` rewrites each ``Quant``
node into the ONNX opset-21 operators with the integer type its bit width needs:

* 4 bits or fewer: ``INT4``/``UINT4``; 5 to 8 bits: ``INT8``/``UINT8``;
* a quantizer whose integer range is narrower than its type's (narrow range, or 2 and 3 bits in
  a 4-bit type, 5 to 7 bits in an 8-bit type) gets a float ``Max``/``Min`` to the range's end
  points in front of ``QuantizeLinear``, so that saturation happens where Brevitas' quantizer
  clamps;
* a zero-point (asymmetric) quantizer is ``Div``, ``Add``, a ``QuantizeLinear`` of scale 1 and
  its ``DequantizeLinear(s, z)``: Brevitas rounds ``x / s + z`` computed in float32, which
  ``QuantizeLinear(x, s, z)`` (round, then add) does not reproduce at float32 ties
  (:func:`_shifted_quantize`);
* a ``Clip`` (ReLU6) right in front of a ``QuantizeLinear`` becomes the same ``Max``/``Min``:
  onnxruntime 1.25 fuses such a ``Clip`` into the quantizer and fails on 4-bit zero points;
* weights (``Quant`` of an initializer) are stored as integers of that type with only a
  ``DequantizeLinear`` behind them;
* per-channel scales become 1-D scales with the ``axis`` attribute.

``Quant`` computes ``clamp(round(x / s + z))`` with round-half-to-even, ``QuantizeLinear``
``saturate(round(x / s) + z)`` (onnxruntime divides exactly): the same for a zero ``z``. A
``Quant`` that QDQ cannot express (non-integer or varying bit width or zero point, a rounding
mode other than ``ROUND``, more than 8 bits, ``BipolarQuant``) is refused with a
:class:`QDQExportError` that names the node.

:func:`export_qdq` applies it to a QONNX file, converts the other operators to opset 21 with
onnx's version converter, and checks the result with ``onnx.checker``; :func:`run_onnxruntime`
executes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from .errors import QMLPError
from .finn.domains import FINN_GENERAL_DOMAIN, QONNX_DOMAIN

QDQ_OPSET = 21
QONNX_DOMAINS = (QONNX_DOMAIN, FINN_GENERAL_DOMAIN)


class QDQExportError(QMLPError, ValueError):
    """A QONNX graph that standard ONNX QDQ cannot express; the message names the node."""


def integer_range(bits: int, signed: bool, narrow: bool) -> tuple[int, int]:
    """The integer range of a QONNX ``Quant`` node (its ``min_int``/``max_int``)."""
    if signed:
        return -(2 ** (bits - 1)) + int(narrow), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1 - int(narrow)


def container_type(bits: int, signed: bool) -> int:
    """The ONNX integer type that carries ``bits``-bit values (INT4/UINT4 or INT8/UINT8)."""
    if bits <= 4:
        return TensorProto.INT4 if signed else TensorProto.UINT4
    return TensorProto.INT8 if signed else TensorProto.UINT8


def _container_range(elem_type: int) -> tuple[int, int]:
    return {
        TensorProto.INT4: (-8, 7),
        TensorProto.UINT4: (0, 15),
        TensorProto.INT8: (-128, 127),
        TensorProto.UINT8: (0, 255),
    }[elem_type]


@dataclass(frozen=True)
class _QuantSpec:
    """One ``Quant`` node's constants, as QDQ needs them."""

    name: str
    scale: np.ndarray  # as in the QONNX graph (broadcastable to the input)
    zero_point: np.ndarray  # same shape as ``scale``, integer-valued
    qmin: int
    qmax: int
    elem_type: int  # the ONNX integer type that carries the values
    axis: int | None  # the axis a per-channel scale runs along

    @property
    def needs_clamp(self) -> bool:
        """Whether the quantizer clamps inside its type's range (narrow, or fewer bits)."""
        return (self.qmin, self.qmax) != _container_range(self.elem_type)

    def onnx_scale(self) -> np.ndarray:
        return self.scale.reshape(()) if self.axis is None else self.scale.reshape(-1)

    def onnx_zero_point(self) -> np.ndarray:
        zero_point = self.zero_point.astype(np.int64)
        return zero_point.reshape(()) if self.axis is None else zero_point.reshape(-1)

    def integers(self, x: np.ndarray) -> np.ndarray:
        """``Quant``'s integers of a constant: ``clamp(round(x / s + z))``, half to even."""
        values = np.round(x.astype(np.float32) / self.scale + self.zero_point)
        return np.clip(values, self.qmin, self.qmax).astype(np.int64)


def _constant(model: ModelWrapper, node, index: int, what: str) -> np.ndarray:
    value = model.get_initializer(node.input[index])
    if value is None:
        raise QDQExportError(f"{node.name}: its {what} is computed, not a constant")
    return np.asarray(value)


def quant_spec(model: ModelWrapper, node) -> _QuantSpec:
    """Read a ``Quant`` node's constants; a :class:`QDQExportError` if QDQ cannot express it."""
    from qonnx.custom_op.registry import getCustomOp

    name = node.name or node.output[0]
    op = getCustomOp(node)
    rounding = op.get_nodeattr("rounding_mode")
    if rounding != "ROUND":
        raise QDQExportError(
            f"{name}: rounding mode {rounding}; QuantizeLinear rounds half to even (ROUND)"
        )
    bits = _constant(model, node, 3, "bit width").astype(np.float64)
    if bits.size != 1 or bits.item() != round(bits.item()) or not 2 <= bits.item() <= 8:
        raise QDQExportError(f"{name}: bit width {bits}; QDQ export supports one of 2 to 8 bits")
    signed, narrow = bool(op.get_nodeattr("signed")), bool(op.get_nodeattr("narrow"))
    qmin, qmax = integer_range(int(bits.item()), signed, narrow)
    scale = _constant(model, node, 1, "scale").astype(np.float32)
    zero_point = _constant(model, node, 2, "zero point").astype(np.float32)
    if np.any(scale <= 0):
        raise QDQExportError(f"{name}: scale must be positive")
    if np.any(zero_point != np.round(zero_point)):
        raise QDQExportError(f"{name}: zero point {zero_point} is not an integer")
    zero_point = np.broadcast_to(zero_point, np.broadcast_shapes(scale.shape, zero_point.shape))
    scale = np.broadcast_to(scale, zero_point.shape).copy()
    axes = [i for i, n in enumerate(scale.shape) if n > 1]
    if len(axes) > 1:
        raise QDQExportError(
            f"{name}: scale of shape {scale.shape} varies along several axes; QDQ takes a "
            "scalar or one axis"
        )
    axis = axes[0] if axes else None
    shape = model.get_tensor_shape(node.input[0])
    if axis is not None and shape is not None and len(shape) > scale.ndim:
        axis += len(shape) - scale.ndim  # numpy broadcasting aligns the last axes
    elem_type = container_type(int(bits.item()), signed)
    lo, hi = _container_range(elem_type)
    if not (lo <= zero_point.min() and zero_point.max() <= hi):
        raise QDQExportError(f"{name}: zero point {zero_point} does not fit its integer type")
    return _QuantSpec(
        name, scale, zero_point.copy(), qmin, qmax, elem_type, axes[0] if axes else None
    )


class QuantToQDQ(Transformation):
    """Every QONNX ``Quant`` node as ``QuantizeLinear``/``DequantizeLinear`` (see module doc).

    Needs the model's default-domain opset at :data:`QDQ_OPSET`; :func:`to_qdq` converts it.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        graph = model.graph
        changed = False
        for node in list(graph.node):
            if node.op_type == "BipolarQuant":
                raise QDQExportError(
                    f"{node.name}: BipolarQuant (1-bit +-1 values) has no QDQ form; QDQ export "
                    "needs bit widths 2 to 8"
                )
            if node.op_type != "Quant":
                continue
            position = list(graph.node).index(node)
            replacement = _qdq_nodes(model, node, quant_spec(model, node))
            graph.node.remove(node)
            for offset, new in enumerate(replacement):
                graph.node.insert(position + offset, new)
            changed = True
        for node in list(graph.node):
            if node.op_type == "Clip" and any(
                c.op_type == "QuantizeLinear" for c in model.find_consumers(node.output[0])
            ):
                _clip_as_max_min(model, node)
        return model, changed


def _clip_as_max_min(model: ModelWrapper, clip) -> None:
    """``Clip(x, lo, hi)`` as ``Min(Max(x, lo), hi)``: the same values. onnxruntime 1.25 fuses a
    ``Clip`` into the ``QuantizeLinear`` behind it and fails on 4-bit zero points when it does."""
    graph = model.graph
    position = list(graph.node).index(clip)
    x, lo, hi = (list(clip.input) + ["", ""])[:3]
    nodes, current = [], x
    if lo:
        nodes.append(
            helper.make_node("Max", [current, lo], [f"{clip.name}_above"], f"{clip.name}_max")
        )
        current = f"{clip.name}_above"
    if hi:
        nodes.append(helper.make_node("Min", [current, hi], [clip.output[0]], f"{clip.name}_min"))
    else:
        nodes[-1].output[0] = clip.output[0]
    graph.node.remove(clip)
    for offset, new in enumerate(nodes):
        graph.node.insert(position + offset, new)


def _add_initializer(model: ModelWrapper, name: str, value: np.ndarray, elem_type=None) -> str:
    if elem_type is None:
        tensor = numpy_helper.from_array(value, name)
    else:
        tensor = helper.make_tensor(name, elem_type, list(value.shape), value.flatten().tolist())
    model.graph.initializer.append(tensor)
    return name


def _qdq_nodes(model: ModelWrapper, node, spec: _QuantSpec) -> list:
    """The nodes that replace ``node``: [clamp,] QuantizeLinear, DequantizeLinear; or for a
    constant, its integers and a DequantizeLinear."""
    base = f"{spec.name}_qdq"
    axis = {} if spec.axis is None else {"axis": spec.axis}
    scale = _add_initializer(model, f"{base}_scale", spec.onnx_scale())
    zero_point = spec.onnx_zero_point()
    zero_point = _add_initializer(model, f"{base}_zero_point", zero_point, spec.elem_type)
    integers = f"{base}_int"
    dequantize = helper.make_node(
        "DequantizeLinear", [integers, scale, zero_point], [node.output[0]], f"{base}_dq", **axis
    )
    weights = model.get_initializer(node.input[0])
    if weights is not None:
        _add_initializer(model, integers, spec.integers(weights), spec.elem_type)
        return [dequantize]
    if np.any(spec.zero_point != 0):
        return [*_shifted_quantize(model, node.input[0], spec, base, integers), dequantize]
    x, nodes = node.input[0], []
    if spec.needs_clamp:
        low = (spec.scale * (spec.qmin - spec.zero_point)).astype(np.float32)
        high = (spec.scale * (spec.qmax - spec.zero_point)).astype(np.float32)
        x = _clamp(model, nodes, x, low, high, base)
    quantize = helper.make_node(
        "QuantizeLinear", [x, scale, zero_point], [integers], f"{base}_q", **axis
    )
    return [*nodes, quantize, dequantize]


def _clamp(model: ModelWrapper, nodes: list, x: str, low, high, base: str) -> str:
    """Append ``Min(Max(x, low), high)`` to ``nodes``; its output's name."""
    low, high = np.asarray(low, np.float32), np.asarray(high, np.float32)
    lo = _add_initializer(model, f"{base}_lo", low.reshape(()) if low.size == 1 else low)
    hi = _add_initializer(model, f"{base}_hi", high.reshape(()) if high.size == 1 else high)
    nodes.append(helper.make_node("Max", [x, lo], [f"{base}_above"], f"{base}_max"))
    nodes.append(helper.make_node("Min", [f"{base}_above", hi], [f"{base}_clamped"], f"{base}_min"))
    return f"{base}_clamped"


def _shifted_quantize(model: ModelWrapper, x: str, spec: _QuantSpec, base: str, out: str) -> list:
    """``round(x / s + z)`` as Brevitas and QONNX compute it: ``Div``, ``Add`` in float32, then
    a ``QuantizeLinear`` of scale 1 into the quantizer's integer type.

    ``QuantizeLinear(x, s, z)`` rounds ``x / s`` and adds ``z`` afterwards: the same in exact
    arithmetic, but where ``x / s + z`` lands within float32 rounding of a tie the two pick
    neighbouring levels (measured on the default W4A4 model: 30 of 10,000 test images, one
    prediction changed).
    """
    nodes = [
        helper.make_node(
            "Div", [x, _add_initializer(model, f"{base}_s", spec.scale)], [f"{base}_scaled"],
            f"{base}_div",
        ),
        helper.make_node(
            "Add", [f"{base}_scaled", _add_initializer(model, f"{base}_z", spec.zero_point)],
            [f"{base}_shifted"], f"{base}_add",
        ),
    ]  # fmt: skip
    x = f"{base}_shifted"
    if spec.needs_clamp:
        x = _clamp(model, nodes, x, spec.qmin, spec.qmax, base)
    unit = _add_initializer(model, f"{base}_unit_scale", np.array(1.0, np.float32))
    no_shift = _add_initializer(model, f"{base}_no_shift", np.array(0), spec.elem_type)
    return [*nodes, helper.make_node("QuantizeLinear", [x, unit, no_shift], [out], f"{base}_q")]


class BiasAsSubtraction(Transformation):
    """Every float bias of a linear layer (Conv, Gemm, MatMul + Add) as ``Sub(y, -bias)``.

    The same values; it keeps onnxruntime from treating the bias as a QDQ bias. Its graph
    optimizer fuses ``MatMul`` + ``Add`` into ``Gemm`` and then rounds a float bias behind
    quantized inputs to ``INT32`` at input scale x weight scale (``WeightBiasQuantization``), as
    the QDQ convention has it; at 8 bits it goes on to integer kernels (``QGemm``) that assume that
    scale. Brevitas' biases are not quantized, and rounding them moves outputs by whole levels.
    onnxruntime fuses no ``Sub``.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        changed = False
        for node in list(model.graph.node):
            if node.op_type in ("Conv", "Gemm") and len(node.input) > 2 and node.input[2]:
                changed |= self._split_bias(model, node)
            elif node.op_type == "Add":
                changed |= self._add_as_sub(model, node)
        return model, changed

    @staticmethod
    def _split_bias(model: ModelWrapper, node) -> bool:
        bias = model.get_initializer(node.input[2])
        if bias is None or bias.dtype != np.float32:
            return False
        if node.op_type == "Gemm":
            beta = next((a.f for a in node.attribute if a.name == "beta"), 1.0)
            bias = bias * np.float32(beta)
        else:  # Conv: one bias per output channel, axis 1 of the output
            rank = len(model.get_tensor_shape(node.input[0]))
            bias = bias.reshape(1, -1, *([1] * (rank - 2)))
        output = node.output[0]
        node.output[0] = f"{node.name}_without_bias"
        del node.input[2]
        negated = _add_initializer(model, f"{node.name}_negated_bias", -bias)
        sub = helper.make_node("Sub", [node.output[0], negated], [output], f"{node.name}_bias")
        model.graph.node.insert(list(model.graph.node).index(node) + 1, sub)
        return True

    @staticmethod
    def _add_as_sub(model: ModelWrapper, node) -> bool:
        producers = [model.find_producer(i) for i in node.input]
        linear = [k for k, p in enumerate(producers) if p is not None and p.op_type == "MatMul"]
        if len(linear) != 1:
            return False
        bias = model.get_initializer(node.input[1 - linear[0]])
        if bias is None or bias.dtype != np.float32:
            return False
        negated = _add_initializer(model, f"{node.name}_negated_bias", -bias)
        node.op_type = "Sub"
        node.input[:] = [node.input[linear[0]], negated]
        return True


def to_qdq(model: ModelWrapper) -> onnx.ModelProto:
    """The QDQ model of a QONNX model (in memory; the input model is not changed)."""
    from onnx import version_converter

    # Standard operators to opset 21 first (the converter leaves the Quant nodes alone), then
    # the Quant nodes to Q/DQ, whose 4-bit types exist only from opset 21 on.
    proto = version_converter.convert_version(model.model, QDQ_OPSET)
    converted = ModelWrapper(proto).transform(QuantToQDQ()).transform(BiasAsSubtraction())
    proto = converted.model
    custom = [n for n in proto.graph.node if n.domain in QONNX_DOMAINS]
    if custom:
        names = ", ".join(f"{n.name} ({n.op_type})" for n in custom[:5])
        raise QDQExportError(f"QONNX ops other than Quant remain ({names}): no QDQ form for them")
    foreign = [n for n in proto.graph.node if n.domain not in ("", "ai.onnx")]
    if foreign:
        names = ", ".join(f"{n.name} ({n.domain}:{n.op_type})" for n in foreign[:5])
        raise QDQExportError(
            f"custom ops remain ({names}): onnxruntime has no such operator; a model with "
            "integer LayerNorms (--norm intlayernorm) has no standard-ONNX QDQ form, train "
            "with --norm layernorm for one"
        )
    kept = [o for o in proto.opset_import if o.domain not in QONNX_DOMAINS]
    del proto.opset_import[:]
    proto.opset_import.extend(kept)
    del proto.graph.value_info[:]  # QONNX's annotations; inferred again below
    proto.ir_version = max(proto.ir_version, 10)  # INT4/UINT4 need IR version 10
    proto = onnx.shape_inference.infer_shapes(proto, strict_mode=True)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export_qdq(qonnx_path: str | Path, out_path: str | Path) -> Path:
    """Write the QDQ model of the QONNX file ``qonnx_path`` to ``out_path`` (atomically)."""
    from .export import load_onnx

    proto = to_qdq(load_onnx(qonnx_path))
    out_path = Path(out_path)
    tmp = out_path.with_name(out_path.name + ".tmp")
    onnx.save(proto, str(tmp))
    tmp.replace(out_path)
    return out_path


def onnxruntime_session(model: str | Path | onnx.ModelProto):
    """An onnxruntime CPU session of ``model`` (a file or a proto), default optimizations."""
    import onnxruntime as ort

    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    return ort.InferenceSession(source, providers=["CPUExecutionProvider"])


def run_onnxruntime(model: str | Path | onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """The output of ``model`` on ``x`` (the model's batch size), computed by onnxruntime."""
    session = onnxruntime_session(model)
    name = session.get_inputs()[0].name
    return session.run(None, {name: np.asarray(x, dtype=np.float32)})[0]


def qdq_types(model: onnx.ModelProto) -> dict[str, int]:
    """The integer type of every QuantizeLinear/DequantizeLinear zero point, by node name."""
    inits = {i.name: i for i in model.graph.initializer}
    return {
        n.name: inits[n.input[2]].data_type
        for n in model.graph.node
        if n.op_type in ("QuantizeLinear", "DequantizeLinear")
    }
