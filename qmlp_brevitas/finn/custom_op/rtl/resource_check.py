"""The project's RTL layers through Yosys, beside their LUT and FF estimates.

Each layer of :func:`calibration_grid` is synthesised as FINN's IP generation would see it, with
the project's synthesis flow (:func:`qmlp_brevitas.finn.synth.synthesize_node`: the layer's
generated HDL, ``read_slang``, ``synth_xilinx -family xcup``), and compared with the layer's
``lut_estimation``/``ff_estimation`` (:mod:`.resources`, whose coefficients were fitted to this
grid). Yosys is not Vivado: the counts say how the formulas follow the logic, not what Vivado
will report. ``scripts/rtl_resources.py`` writes the table to ``docs/results/rtl_resources.md``.
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_PART = "xczu7ev-ffvc1156-2-e"


def compare(model, node_name: str, work_dir: str | Path, fpgapart: str = DEFAULT_PART) -> dict:
    """The layer's LUT/FF estimate beside Yosys' counts for its HDL."""
    from finn.util.basic import getHWCustomOp

    from qmlp_brevitas.finn.synth import synthesize_node

    node = model.get_node_from_name(node_name)
    inst = getHWCustomOp(node)
    synth = synthesize_node(model, node, work_dir, fpgapart, 5.0)
    return {
        "layer": node_name,
        "op_type": node.op_type,
        "LUT_estimate": int(inst.lut_estimation(fpgapart)),
        "LUT_yosys": synth.LUT,
        "FF_estimate": int(inst.ff_estimation(fpgapart)),
        "FF_yosys": synth.FF,
        "cells": synth.cells,
    }


def calibration_grid() -> list[tuple[str, object]]:
    """(label, specialised one-layer model) over which the estimates are compared with Yosys:
    the default model's configurations (PE/SIMD 1, 4-5 bit, 64 channels, 16 tokens) and wider,
    more parallel and more-stream ones."""
    from qmlp_brevitas.rtlsim import graphs

    tokens = (1, 16)  # numInputVectors of a 16-token stream
    dup, split, concat = (
        graphs.make_duplicate_streams_model,
        graphs.make_split_model,
        graphs.make_concat_model,
    )
    pool = graphs.make_global_acc_pool_model
    configs = [
        ("DuplicateStreams INT4 PE1, 2 outputs", dup(64, 1, tokens, "INT4", 2)),
        ("DuplicateStreams INT5 PE1, 2 outputs", dup(64, 1, tokens, "INT5", 2)),
        ("DuplicateStreams INT4 PE8, 3 outputs", dup(64, 8, tokens, "INT4", 3)),
        ("DuplicateStreams INT8 PE16, 2 outputs", dup(64, 16, tokens, "INT8", 2)),
        ("StreamingSplit UINT4 SIMD1, 32+32", split((32, 32), 1, tokens, "UINT4")),
        ("StreamingSplit UINT4 SIMD4, 16+16+32", split((16, 16, 32), 4, tokens, "UINT4")),
        ("StreamingSplit INT8 SIMD8, 64+64", split((64, 64), 8, tokens, "INT8")),
        ("StreamingConcat INT4 SIMD1, 32+32", concat((32, 32), 1, tokens, ("INT4",) * 2)),
        (
            "StreamingConcat INT4/UINT3/INT6 SIMD4, 16+16+32",
            concat((16, 16, 32), 4, tokens, ("INT4", "UINT3", "INT6")),
        ),
        ("StreamingConcat INT8 SIMD8, 64+64", concat((64, 64), 8, tokens, ("INT8",) * 2)),
        ("StreamingConcat INT4 SIMD1, 4 x 16", concat((16,) * 4, 1, tokens, ("INT4",) * 4)),
        ("GlobalAccPool UINT4 PE1, 64 ch, 16 tokens", pool(64, 1, (16, 1), "UINT4")),
        ("GlobalAccPool INT4 PE4, 64 ch, 16 tokens", pool(64, 4, (16, 1), "INT4")),
        ("GlobalAccPool INT8 PE8, 128 ch, 64 tokens", pool(128, 8, (64, 1), "INT8")),
        ("GlobalAccPool INT4 PE64, 64 ch, 16 tokens", pool(64, 64, (16, 1), "INT4")),
    ]
    return [(label, graphs.specialize_rtl(model)) for label, model in configs]
