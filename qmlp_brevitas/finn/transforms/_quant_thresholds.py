"""Exact replacement of an activation ``Quant`` (optionally behind a ``Clip``) by thresholds.

A QONNX ``Quant`` with scale ``s``, zero point ``z`` and integer range ``[qmin, qmax]`` computes
``y = s * (clip(round(x / s + z), qmin, qmax) - z)``. The integer ``q`` is ``qmin`` plus the
number of thresholds ``t_k = s * (k - 0.5 - z)``, ``k = qmin + 1 .. qmax``, that ``x`` reaches,
so ``y = s * (MultiThreshold(x, t) + qmin - z)``: a ``MultiThreshold`` with an unsigned count,
then ``Add(qmin - z)`` and ``Mul(s)``, which FINN's streamlining moves and absorbs (Jacob et al.
2018 for the affine integer scheme; Umuroglu et al., FINN, for thresholds). A ``Clip(lo, hi)``
before the quantizer only moves thresholds: one at or below ``lo`` is always reached, one above
``hi`` never.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

# A threshold that every / no float32 input reaches (Clip bounds outside the quantizer range).
ALWAYS = np.float32(np.finfo(np.float32).min)
NEVER = np.float32(np.finfo(np.float32).max)
CHANNELS_LAST = {2: "NC", 3: "NWC", 4: "NHWC"}


def is_activation_quant(model: ModelWrapper, node) -> bool:
    """A ``Quant`` node on a dynamic tensor with constant scale, zero point and bit width."""
    if node.op_type != "Quant" or model.get_initializer(node.input[0]) is not None:
        return False
    return all(model.get_initializer(name) is not None for name in node.input[1:4])


def quant_params(model: ModelWrapper, node) -> dict:
    """Scale, zero point, integer range and bit width of an activation ``Quant`` node."""
    inst = getCustomOp(node)
    bits = int(model.get_initializer(node.input[3]).item())
    signed, narrow = bool(inst.get_nodeattr("signed")), bool(inst.get_nodeattr("narrow"))
    rounding = inst.get_nodeattr("rounding_mode")
    if rounding != "ROUND":
        raise ValueError(f"{node.name}: rounding_mode {rounding} is not ROUND")
    qmin = -(2 ** (bits - 1)) + int(narrow) if signed else 0
    qmax = 2 ** (bits - 1) - 1 if signed else 2**bits - 1 - int(narrow)
    return {
        "scale": np.asarray(model.get_initializer(node.input[1]), dtype=np.float64),
        "zero_point": np.asarray(model.get_initializer(node.input[2]), dtype=np.float64),
        "qmin": qmin,
        "qmax": qmax,
        "bits": bits,
    }


def thresholds_for(params: dict, clip: tuple[float, float] | None = None) -> np.ndarray:
    """Thresholds ``(1, qmax - qmin)`` of a per-tensor quantizer, moved by ``clip``."""
    scale, zp = params["scale"], params["zero_point"]
    if scale.size != 1 or zp.size != 1:
        raise ValueError("only per-tensor activation quantizers are converted to thresholds")
    s, z = float(scale.item()), float(zp.item())
    if s <= 0:
        raise ValueError(f"quantizer scale must be positive, got {s}")
    k = np.arange(params["qmin"] + 1, params["qmax"] + 1, dtype=np.float64)
    thr = s * (k - 0.5 - z)
    if clip is not None:
        lo, hi = clip
        thr = np.where(thr <= lo, ALWAYS, np.where(thr > hi, NEVER, thr))
    return thr.astype(np.float32)[None, :]


def clip_is_redundant(params: dict, lo: float, hi: float) -> bool:
    """Whether ``Clip(lo, hi)`` before the quantizer cannot change its output."""
    thr = thresholds_for(params)
    return bool(thr.min() > lo and thr.max() <= hi)


def replace_with_thresholds(
    model: ModelWrapper, quant, clip=None, clip_bounds: tuple[float, float] | None = None
) -> None:
    """Replace ``quant`` (and the ``clip`` node feeding it) by MultiThreshold, Add and Mul."""
    graph = model.graph
    params = quant_params(model, quant)
    thr = thresholds_for(params, clip_bounds)
    count_dtype = DataType.get_smallest_possible(thr.shape[1])
    src = clip.input[0] if clip is not None else quant.input[0]
    out = quant.output[0]
    shape = model.get_tensor_shape(out)
    name = quant.name
    thr_name = model.make_new_valueinfo_name()
    model.set_initializer(thr_name, thr)
    count_name, shifted_name = model.make_new_valueinfo_name(), model.make_new_valueinfo_name()
    for t in (count_name, shifted_name):
        graph.value_info.append(helper.make_tensor_value_info(t, TensorProto.FLOAT, shape))
    nodes = [
        helper.make_node(
            "MultiThreshold",
            [src, thr_name],
            [count_name],
            domain="qonnx.custom_op.general",
            out_dtype=count_dtype.name,
            data_layout=CHANNELS_LAST.get(len(shape), ""),
            name=f"{name}_thresholds",
        ),
        helper.make_node(
            "Add",
            [count_name, _const(model, params["qmin"] - params["zero_point"])],
            [shifted_name],
            name=f"{name}_shift",
        ),
        helper.make_node(
            "Mul", [shifted_name, _const(model, params["scale"])], [out], name=f"{name}_scale"
        ),
    ]
    index = list(graph.node).index(clip if clip is not None else quant)
    for offset, node in enumerate(nodes):
        graph.node.insert(index + offset, node)
    graph.node.remove(quant)
    if clip is not None:
        graph.node.remove(clip)
    model.set_tensor_datatype(count_name, count_dtype)


def _const(model: ModelWrapper, value) -> str:
    name = model.make_new_valueinfo_name()
    model.set_initializer(name, np.asarray(value, dtype=np.float32).reshape(()))
    return name
