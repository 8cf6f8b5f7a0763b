"""The project's resource and cycle models for what FINN does not estimate.

FINN's HW ops estimate LUT, BRAM, URAM and DSP where their class implements it, and no op
estimates flip-flops. :mod:`qmlp_brevitas.finn.layer_costs` takes FINN's number where there is
one and one of these models otherwise. Each model is a formula in the layer's folded stream
widths and attributes; its constants are either fitted to Yosys synthesis of FINN's own HDL
(``MVAU_rtl``, see :mod:`qmlp_brevitas.finn.synth` and ``docs/results/synthesis.json``) or
structural (counting registers, adders, multiplexers and memory bits of the layer's
architecture, one LUT per adder/mux bit, 64 bits per LUT as distributed RAM): those are marked
*structural* and are first-order estimates, since FINN's HLS layers cannot be synthesised
without Vitis HLS.

Every function takes FINN's custom-op instance and returns the resources it models.
"""

from __future__ import annotations

import math

import numpy as np

# Handshake and control of a streaming layer (valid/ready, counters): structural.
CONTROL_LUT = 20
CONTROL_FF = 20
LUTRAM_BITS = 64  # one LUT6 as 64x1 distributed RAM
BRAM18_BITS = 18 * 1024
LUTRAM_MAX_BITS = 4 * 1024  # larger buffers go to block RAM (Vivado's default threshold order)

# MVAU_rtl: LUT = a0 + a1*PE*SIMD + a2*PE*acc_bits, FF = b0 + b1*PE*SIMD + b2*PE*acc_bits,
# least-squares fits to Yosys synthesis of FINN's MVAU_rtl HDL (mvu_vvu_axi + mvu on DSP48E2)
# for the layers of qmlp_brevitas.finn.synth.MVAU_CALIBRATION (docs/results/synthesis.json;
# 10 layers, PE x SIMD 1 to 256, 4 and 8 bits): LUT within 30% of Yosys, FF within 19%.
MVAU_RTL_LUT = (-59.9, 13.2, 7.2)
MVAU_RTL_FF = (-67.0, 16.0, 13.1)

# Single-precision floating-point operators on UltraScale+ as HLS instantiates them (round
# figures of the order of AMD's Floating-Point Operator tables, PG060): LUT, FF, DSP.
FLOAT_OPS = {
    "add": (230, 370, 2),
    "mul": (80, 150, 3),
    "from_int": (120, 180, 0),
    "rsqrt": (800, 1200, 0),
}


def _bits(dt) -> int:
    return int(dt.bitwidth())


def _n_inputs(inst) -> int:
    return sum(1 for name in inst.onnx_node.input if name)


def _stream_in(inst, ind: int = 0) -> int:
    return int(inst.get_instream_width(ind))


def _stream_out(inst, ind: int = 0) -> int:
    return int(inst.get_outstream_width(ind))


def memory(bits: int) -> dict[str, float]:
    """Distributed RAM up to :data:`LUTRAM_MAX_BITS`, block RAM beyond: structural."""
    if bits <= 0:
        return {"LUT": 0.0, "BRAM_18K": 0.0}
    if bits <= LUTRAM_MAX_BITS:
        return {"LUT": float(math.ceil(bits / LUTRAM_BITS)), "BRAM_18K": 0.0}
    return {"LUT": 0.0, "BRAM_18K": float(math.ceil(bits / BRAM18_BITS))}


def streaming_default(inst) -> dict[str, float]:
    """Any streaming layer: control, plus one register per input and output stream bit."""
    width_in = sum(_stream_in(inst, i) for i in range(_n_inputs(inst)))
    width_out = sum(_stream_out(inst, i) for i in range(len(inst.onnx_node.output)))
    return {
        "LUT": float(CONTROL_LUT + width_out),
        "FF": float(CONTROL_FF + width_in + width_out),
        "BRAM_18K": 0.0,
        "URAM": 0.0,
        "DSP": 0.0,
    }


def mvau_rtl(inst) -> dict[str, float]:
    """``MVAU_rtl`` LUT and FF: :data:`MVAU_RTL_LUT`, :data:`MVAU_RTL_FF` (fitted)."""
    pe, simd = int(inst.get_nodeattr("PE")), int(inst.get_nodeattr("SIMD"))
    acc = _bits(inst.get_output_datatype())
    terms = (1.0, pe * simd, pe * acc)
    return {
        "LUT": float(sum(c * t for c, t in zip(MVAU_RTL_LUT, terms, strict=True))),
        "FF": float(sum(c * t for c, t in zip(MVAU_RTL_FF, terms, strict=True))),
    }


def thresholding_ff(inst) -> dict[str, float]:
    """``Thresholding`` FF: a pipeline of log2(N+1) stages per PE, each carrying the input
    value and the partial output (finn-rtllib thresholding.sv): structural."""
    pe = int(inst.get_nodeattr("PE"))
    steps = int(inst.get_nodeattr("numSteps"))
    stages = max(1, math.ceil(math.log2(steps + 1)))
    wi = _bits(inst.get_input_datatype(0))
    return {"FF": float(CONTROL_FF + pe * stages * (wi + stages))}


def _frame_elements(inst) -> int:
    return int(np.prod(inst.get_normal_input_shape(0)))


def shuffle(inst) -> dict[str, float]:
    """Transpose/shuffle layers (``InnerShuffle``, ``OuterShuffle``, ``Shuffle``): a
    double-buffered frame memory plus SIMD-wide read/write multiplexers: structural."""
    bits = _bits(inst.get_input_datatype(0))
    res = streaming_default(inst)
    mem = memory(2 * _frame_elements(inst) * bits)
    res["LUT"] += mem["LUT"] + 2 * _stream_out(inst)
    res["BRAM_18K"] = mem["BRAM_18K"]
    return res


def duplicate_streams(inst) -> dict[str, float]:
    """``DuplicateStreams``: one output register per copy, ready/valid fan-in: structural."""
    n_out = len(inst.onnx_node.output)
    width = _stream_in(inst)
    res = streaming_default(inst)
    res["LUT"] = float(CONTROL_LUT + n_out * 2)
    res["FF"] = float(CONTROL_FF + n_out * width)
    return res


def split_concat(inst) -> dict[str, float]:
    """``StreamingSplit``/``StreamingConcat``: a SIMD-wide multiplexer over the streams, with
    a register per bit on each side: structural."""
    res = streaming_default(inst)
    width = max(_stream_in(inst), _stream_out(inst))
    streams = max(_n_inputs(inst), len(inst.onnx_node.output))
    res["LUT"] = float(CONTROL_LUT + width * max(1, math.ceil(streams / 2)))
    return res


def elementwise(inst) -> dict[str, float]:
    """``ElementwiseAdd``/``Sub``/``Mul``...: PE operators of the output width (one LUT per
    adder bit; a multiplier in LUTs below 10x10 bits, a DSP above), constant operands in
    distributed RAM: structural."""
    pe = int(inst.get_nodeattr("PE"))
    res = streaming_default(inst)
    a = _bits(inst.get_input_datatype(0))
    b = _bits(inst.get_input_datatype(1))
    out = _bits(inst.get_output_datatype())
    if inst.onnx_node.op_type.startswith("ElementwiseMul"):
        if max(a, b) > 10:
            res["DSP"] = float(pe)
        else:
            res["LUT"] += pe * math.ceil(a * b / 2)
    else:
        res["LUT"] += pe * out
    const_bits = 0
    for ind, name in enumerate(inst.onnx_node.input[:2]):
        if name and inst.get_nodeattr("lhs_style" if ind == 0 else "rhs_style") == "const":
            const_bits += _frame_elements(inst) * _bits(inst.get_input_datatype(ind))
    res["LUT"] += memory(const_bits)["LUT"] if const_bits <= LUTRAM_MAX_BITS else 0
    return res


def global_acc_pool(inst) -> dict[str, float]:
    """``GlobalAccPool``: PE accumulators (adder and register per bit) and the partial sums of
    NumChannels/PE channel groups in distributed RAM: structural."""
    pe = int(inst.get_nodeattr("PE"))
    acc = _bits(inst.get_output_datatype())
    groups = int(inst.get_nodeattr("NumChannels")) // pe
    res = streaming_default(inst)
    res["LUT"] += pe * acc + memory(groups * pe * acc)["LUT"]
    res["FF"] += pe * acc
    return res


def layernorm_float(inst) -> dict[str, float]:
    """FINN's HLS ``LayerNorm`` (float arithmetic, ``TO = float``): per SIMD lane an
    int-to-float conversion, a squarer and two accumulating adders (sum and sum of squares),
    a subtractor and a multiplier for the normalisation; per layer one reciprocal square root
    and the token buffer: operator counts times :data:`FLOAT_OPS`, structural."""
    simd = int(inst.get_nodeattr("SIMD"))
    lane = {"from_int": 1, "add": 3, "mul": 2}
    once = {"rsqrt": 1, "mul": 2}
    total = {"LUT": 0.0, "FF": 0.0, "DSP": 0.0}
    for ops, count in ((lane, simd), (once, 1)):
        for op, n in ops.items():
            lut, ff, dsp = FLOAT_OPS[op]
            total["LUT"] += count * n * lut
            total["FF"] += count * n * ff
            total["DSP"] += count * n * dsp
    n = int(inst.get_normal_input_shape(0)[-1])
    mem = memory(n * _bits(inst.get_input_datatype(0)))
    total["LUT"] += CONTROL_LUT + mem["LUT"]
    total["FF"] += CONTROL_FF
    return {**total, "BRAM_18K": mem["BRAM_18K"], "URAM": 0.0}


def layernorm_cycles(inst) -> int:
    """Cycles of FINN's HLS ``LayerNorm``, which has no estimate: FINN's formula for its RTL
    LayerNorm (two token-long queues plus the frame at SIMD per cycle), as a model."""
    simd = int(inst.get_nodeattr("SIMD"))
    idim = inst.get_normal_input_shape(0)
    n = int(idim[-1])
    log_simd = math.ceil(math.log2(simd)) if simd > 1 else 0
    queue0 = n // simd + 2 * log_simd + 7
    queue1 = n // simd + 2 * log_simd + 24
    return int(queue0 + queue1 + int(np.prod(idim)) // simd + 5)


# Requant_rtl (finn-rtllib requant.sv, parameters embedded): Yosys synthesis of FINN's HDL,
# 64 channels INT20 -> INT8: PE 1: 286 LUT, 235 FF, 1 DSP; PE 4: 459 LUT, 857 FF, 4 DSP
# (docs/results/synthesis.json).
REQUANT_RTL_LUT = (228.0, 58.0)  # a + b * PE
REQUANT_RTL_FF = (28.0, 207.0)


def requant(inst) -> dict[str, float]:
    """``Requant``: per PE one DSP multiply-add, the shift/round/clip in LUTs and the
    channels' scale/bias/shift constants: linear in PE, from the Yosys synthesis above."""
    pe = int(inst.get_nodeattr("PE"))
    return {
        "LUT": REQUANT_RTL_LUT[0] + REQUANT_RTL_LUT[1] * pe,
        "FF": REQUANT_RTL_FF[0] + REQUANT_RTL_FF[1] * pe,
        "DSP": float(pe),
        "BRAM_18K": 0.0,
        "URAM": 0.0,
    }


def reshape(inst) -> dict[str, float]:
    """``Reshape``: wiring with a register stage: structural."""
    return streaming_default(inst)


def fifo_ff(depth: int, width: int) -> float:
    """A FIFO's flip-flops: output register and read/write pointers: structural."""
    return float(CONTROL_FF + width + 2 * max(1, math.ceil(math.log2(max(depth, 2)))))


def dwc_ff(in_width: int, out_width: int) -> float:
    """A data-width converter's flip-flops: a buffer of the wider side: structural."""
    return float(CONTROL_FF + max(in_width, out_width))


# op type without its _hls/_rtl suffix -> model of the resources FINN lacks
OP_MODELS = {
    "MVAU": mvau_rtl,
    "Thresholding": thresholding_ff,
    "Shuffle": shuffle,
    "InnerShuffle": shuffle,
    "OuterShuffle": shuffle,
    "DuplicateStreams": duplicate_streams,
    "StreamingSplit": split_concat,
    "StreamingConcat": split_concat,
    "GlobalAccPool": global_acc_pool,
    "LayerNorm": layernorm_float,
    "Reshape": reshape,
    "Requant": requant,
}
CYCLE_MODELS = {"LayerNorm_hls": layernorm_cycles}


def op_model(op_type: str):
    """The model for ``op_type`` (e.g. ``MVAU_rtl``), or the streaming default."""
    base = op_type.removesuffix("_hls").removesuffix("_rtl")
    if base.startswith("Elementwise"):
        return elementwise
    return OP_MODELS.get(base, streaming_default)
