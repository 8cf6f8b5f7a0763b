"""Wide thresholds as FINN's ``Requant`` layer, where that is exact on every integer input.

A ``MultiThreshold`` with an N-bit output compares each value with 2^N - 1 thresholds: 255
comparators (and threshold memories) per channel at 8 bits. When the thresholds are evenly
spaced, the same function is ``clip(round(x * scale + bias))``, which finn-plus 1.6.1 has as its
``Requant`` HW layer (one multiply-add per value, ``finn-rtllib/requant``). FINN's own
conversion (``InferRequantLayer``, used by ``step_convert_to_hw`` from
``requant_bitwidth_threshold`` bits up) accepts thresholds that are uniform within 1 % and
float inputs, so it may change results. This transformation converts only what it can prove
equal:

* the input is an integer type, the output uses its full range (the RTL ``Requant`` has no
  narrow range), ``out_scale`` is 1 and ``out_bias`` the output's minimum;
* per channel, ``scale`` and ``bias`` are fitted so that each rounding boundary lies inside the
  integer gap it must fall in (:func:`fit_requant`);
* equality with the thresholds is then checked on every integer input of the input type, for
  FINN's execution (float32 ``x * scale + bias``) and for the RTL's fixed-point arithmetic
  (``Requant.decompose_params``: integer mantissa, bias and shift). Both functions and the
  thresholds are monotone step functions, so comparing them at every point where any of them
  steps (and one before) compares them everywhere (:func:`requant_matches`).

Nodes that fail any check keep their thresholds.
"""

from __future__ import annotations

import numpy as np
from onnx import helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation

HW_DOMAIN = "finn.custom_op.fpgadataflow"
# Rounding boundaries stay this far inside their integer gap (in input units).
MARGIN = 1e-3


def fit_requant(
    thresholds: np.ndarray, low: int, high: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-channel ``scale``, ``bias`` (before ``out_bias``) with ``floor(x*s + b + 0.5) >= k+1``
    exactly for the integers ``x >= ceil(T_k)`` in ``[low, high]``; None if no line fits.

    The boundary of level k+1 is ``c_k = (k + 0.5 - b) / s`` and must lie in
    ``(ceil(T_k) - 1, ceil(T_k)]``; the boundaries of a requantizer lie on a line
    ``c_k = a + k / s``. A small linear program per channel finds the line through the gaps of
    the steps inside the input range that keeps the largest distance to the gaps' ends, and the
    fit is accepted when that distance is at least :data:`MARGIN`.
    """
    from scipy.optimize import linprog

    steps = np.ceil(thresholds.astype(np.float64))
    n = steps.shape[1]
    k = np.arange(n, dtype=np.float64)
    scales, biases = [], []
    for row in steps:
        inside = (row > low) & (row <= high)
        if inside.sum() < 2:
            return None
        kk, top = k[inside], row[inside]
        ones = np.ones_like(kk)
        # variables (a, slope, margin): a + slope*k + margin <= top; -(a + slope*k) + margin <=
        # 1 - top; maximise margin
        a_ub = np.concatenate([np.stack([ones, kk, ones], 1), np.stack([-ones, -kk, ones], 1)])
        b_ub = np.concatenate([top, 1 - top])
        res = linprog(
            c=[0, 0, -1],
            A_ub=a_ub,
            b_ub=b_ub,
            bounds=[(None, None), (1e-9, None), (None, 0.5)],
            method="highs",
        )
        if not res.success or res.x[2] < MARGIN:
            return None
        offset, slope = res.x[0], res.x[1]
        scale = 1.0 / slope
        scales.append(scale)
        biases.append(0.5 - offset * scale)
    return np.array(scales), np.array(biases)


def _threshold_levels(thresholds: np.ndarray, x: np.ndarray) -> np.ndarray:
    """MultiThreshold's count of thresholds <= x, per channel (rows of x)."""
    return (x[:, :, None] >= thresholds[:, None, :]).sum(axis=2)


def requant_matches(
    thresholds: np.ndarray,
    out_bias: int,
    idt: DataType,
    odt: DataType,
    scale: np.ndarray,
    bias: np.ndarray,
    rtl: dict | None,
) -> bool:
    """Whether thresholds, FINN's float32 ``Requant`` and (if given) the RTL's fixed point agree
    on every integer input of ``idt`` (see module docstring)."""
    low, high = int(idt.min()), int(idt.max())
    lo_out, hi_out = int(odt.min()), int(odt.max())
    channels = thresholds.shape[0]
    s32, b32 = scale.astype(np.float32), bias.astype(np.float32)
    points = [np.array([low, high], dtype=np.float64)]
    steps = np.ceil(thresholds.astype(np.float64))
    levels = np.arange(lo_out + 1, hi_out + 1, dtype=np.float64)
    per_channel = []
    for c in range(channels):
        cand = [steps[c], steps[c] - 1]
        approx = np.ceil((levels - 0.5 - float(bias[c])) / float(scale[c]))
        cand += [approx + d for d in (-2, -1, 0, 1, 2)]
        if rtl is not None:
            sc, bi, sh = (int(rtl[key][0][c]) for key in ("scale", "bias", "shift"))
            if sc <= 0:
                return False
            exact = [-((-(int(v) * (1 << sh) - bi)) // sc) for v in levels]  # ceil division
            cand += [np.array(exact, dtype=np.float64) + d for d in (-1, 0)]
        per_channel.append(np.unique(np.clip(np.concatenate(points + cand), low, high)))
    width = max(len(p) for p in per_channel)
    x = np.stack([np.pad(p, (0, width - len(p)), mode="edge") for p in per_channel])
    expected = _threshold_levels(thresholds.astype(np.float64), x) + out_bias
    x32 = x.astype(np.float32)
    fl = np.floor(x32 * s32[:, None] + b32[:, None] + np.float32(0.5))
    if not np.array_equal(np.clip(fl, lo_out, hi_out), expected):
        return False
    if rtl is None:
        return True
    for c in range(channels):
        sc, bi, sh = (int(rtl[key][0][c]) for key in ("scale", "bias", "shift"))
        got = [min(hi_out, max(lo_out, (int(v) * sc + bi) >> sh)) for v in x[c]]
        if got != [int(v) for v in expected[c]]:
            return False
    return True


def _dsp_version(fpgapart: str | None) -> int | None:
    if not fpgapart:
        return None
    from finn.util.basic import get_dsp_block

    return {"DSP48E1": 1, "DSP48E2": 2, "DSP58": 3}.get(get_dsp_block(fpgapart))


class ThresholdsToRequant(Transformation):
    """FINN ``Thresholding`` HW layers of at least ``min_bits`` output bits as ``Requant`` HW
    layers, where exact (see module docstring); ``fpgapart`` selects the DSP whose fixed-point
    datapath is checked too (with both mantissa widths the RTL may derive for the input
    width). Runs after FINN's conversion to HW layers, before specialisation."""

    def __init__(self, min_bits: int = 8, fpgapart: str | None = None):
        super().__init__()
        self.min_bits = min_bits
        self.fpgapart = fpgapart

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        changed = False
        for index, node in enumerate(list(model.graph.node)):
            if node.op_type != "Thresholding" or node.domain != HW_DOMAIN:
                continue
            new = self._requant_node(model, node)
            if new is None:
                continue
            model.graph.node.insert(index, new)
            model.graph.node.remove(node)
            changed = True
        return model, changed

    def _requant_node(self, model: ModelWrapper, node):
        inst = getCustomOp(node)
        idt = DataType[inst.get_nodeattr("inputDataType")]
        odt = DataType[inst.get_nodeattr("outputDataType")]
        thresholds = model.get_initializer(node.input[1])
        if thresholds is None or not idt.is_integer() or odt.bitwidth() < self.min_bits:
            return None
        out_bias = int(inst.get_nodeattr("ActVal"))
        channels = int(inst.get_nodeattr("NumChannels"))
        n = thresholds.shape[-1]
        if n != 2 ** odt.bitwidth() - 1 or out_bias != int(odt.min()):
            return None
        full = np.broadcast_to(thresholds.reshape(-1, n), (channels, n)).astype(np.float64)
        fitted = fit_requant(full, int(idt.min()), int(idt.max()))
        if fitted is None:
            return None
        scale, bias = fitted
        scale, bias = scale.astype(np.float32), (bias + out_bias).astype(np.float32)
        name = f"Requant_{node.name}"
        scale_name, bias_name = f"{name}_scale", f"{name}_bias"
        model.set_initializer(scale_name, scale)
        model.set_initializer(bias_name, bias)
        new = helper.make_node(
            "Requant",
            [node.input[0], scale_name, bias_name],
            [node.output[0]],
            name=name,
            domain=HW_DOMAIN,
            backend="fpgadataflow",
            NumChannels=channels,
            PE=1,
            inputDataType=idt.name,
            outputDataType=odt.name,
            numInputVectors=list(inst.get_nodeattr("numInputVectors")),
            narrow=0,
        )
        if not self._exact(model, new, full, out_bias, idt, odt, scale, bias):
            for tensor in (scale_name, bias_name):
                model.del_initializer(tensor)
            return None
        return new

    def _exact(self, model, new, full, out_bias, idt, odt, scale, bias) -> bool:
        if not requant_matches(full, out_bias, idt, odt, scale, bias, None):
            return False
        version = _dsp_version(self.fpgapart)
        if version is None:
            return True
        requant = getCustomOp(new)
        # the RTL keeps 25 mantissa bits up to 18 input bits and 18 above (DSP48E2 ports)
        probes = {idt.name, f"{'INT' if idt.signed() else 'UINT'}{min(idt.bitwidth(), 18)}"}
        for probe in sorted(probes):
            requant.set_nodeattr("inputDataType", probe)
            try:
                rtl = requant.decompose_params(model, version)
            except ValueError:
                return False
            finally:
                requant.set_nodeattr("inputDataType", idt.name)
            if not requant_matches(full, out_bias, idt, odt, scale, bias, rtl):
                return False
        return True
