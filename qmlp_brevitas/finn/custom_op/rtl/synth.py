"""Yosys synthesis of the project's RTL layers, to check their LUT and FF estimates.

No Vivado here, so the resource formulas of :mod:`.resources` are checked against Yosys
(``synth_xilinx -family xcup``: UltraScale+ LUT6, carry chains, LUTRAM and flip-flops) on the
layer's own generated HDL -- the core plus FINN's top module, as the layer's ``generate_hdl``
writes them. Yosys' mapping differs from Vivado's (it may pick other LUTRAM primitives, and does
no cross-boundary optimisation with neighbouring layers), so the numbers say how the formulas
follow the logic, not what Vivado will report.

LUTs count the LUT1..LUT6 cells, inverters, and the LUTs inside LUTRAM primitives (a 64x1
single-port RAM is one LUT, a ``RAM64M8`` eight); FFs count every flip-flop cell.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

LUTRAM_LUTS = {
    "RAM16X1S": 1,
    "RAM32X1S": 1,
    "RAM64X1S": 1,
    "RAM128X1S": 2,
    "RAM256X1S": 4,
    "RAM32X1D": 2,
    "RAM64X1D": 2,
    "RAM128X1D": 4,
    "RAM256X1D": 8,
    "RAM32M": 4,
    "RAM64M": 4,
    "RAM32M16": 8,
    "RAM64M8": 8,
    "RAM64X8SW": 8,
}
FLIP_FLOPS = ("FDRE", "FDSE", "FDCE", "FDPE")


class YosysError(RuntimeError):
    """Yosys is missing or failed on a layer's HDL."""


def yosys_available() -> bool:
    """Whether the ``yosys`` command is on the PATH."""
    return shutil.which("yosys") is not None


def cell_counts(stat_text: str) -> dict[str, int]:
    """Cell type -> count from the last ``stat`` block of a Yosys log."""
    block = stat_text.rsplit("Number of cells:", 1)[-1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^\s+(\w+)\s+(\d+)\s*$", block, re.M)}


def resources(cells: dict[str, int]) -> dict[str, int]:
    """LUT and FF counts of a cell table (see the module docstring)."""
    luts = sum(n for c, n in cells.items() if re.fullmatch(r"LUT[1-6]", c))
    luts += cells.get("INV", 0)
    luts += sum(LUTRAM_LUTS[c] * n for c, n in cells.items() if c in LUTRAM_LUTS)
    return {"LUT": luts, "FF": sum(cells.get(c, 0) for c in FLIP_FLOPS)}


def synthesize_layer(model, node_name: str, fpgapart: str = "xczu7ev-ffvc1156-2-e") -> dict:
    """Generate the layer's HDL and synthesize it with Yosys; returns ``{"LUT", "FF", "cells"}``."""
    from finn.util.basic import getHWCustomOp

    if not yosys_available():
        raise YosysError("yosys is not installed (Debian package yosys; scripts/setup.sh)")
    model = copy.deepcopy(model)
    inst = getHWCustomOp(model.get_node_from_name(node_name))
    with tempfile.TemporaryDirectory(prefix="qmlp_yosys_") as tmp:
        inst.set_nodeattr("code_gen_dir_ipgen", tmp)
        inst.generate_hdl(model, fpgapart, 5.0)
        files = " ".join(inst.get_rtl_file_list(abspath=True))
        top = inst.get_nodeattr("gen_top_module")
        stat = Path(tmp) / "stat.txt"
        script = (
            f"read_verilog -sv {files}; synth_xilinx -family xcup -top {top} -flatten; "
            f"tee -q -o {stat} stat"
        )
        run = subprocess.run(["yosys", "-q", "-p", script], capture_output=True, text=True)
        if run.returncode != 0 or not stat.is_file():
            raise YosysError(f"yosys failed on {node_name}: {(run.stderr or run.stdout)[-2000:]}")
        cells = cell_counts(stat.read_text())
    return {**resources(cells), "cells": cells}


def compare(model, node_name: str, fpgapart: str = "xczu7ev-ffvc1156-2-e") -> dict:
    """The layer's LUT/FF estimate beside Yosys' result for its HDL."""
    from finn.util.basic import getHWCustomOp

    inst = getHWCustomOp(model.get_node_from_name(node_name))
    synth = synthesize_layer(model, node_name, fpgapart)
    return {
        "layer": node_name,
        "op_type": inst.onnx_node.op_type,
        "LUT_estimate": int(inst.lut_estimation(fpgapart)),
        "LUT_yosys": synth["LUT"],
        "FF_estimate": int(inst.ff_estimation()),
        "FF_yosys": synth["FF"],
        "cells": synth["cells"],
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
