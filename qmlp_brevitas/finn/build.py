"""The FINN dataflow build of an exported model: one ``DataflowBuildConfig`` and a list of steps.

FINN's built-in steps are used by name where they serve; the Q-MLP steps of
:mod:`qmlp_brevitas.finn.steps` sit between them. Without Vivado the build ends after the
estimate reports (FINN's ``estimate_only`` outputs); with ``XILINX_VIVADO`` set the same config
goes on with FINN's standard hardware steps (IP generation, stitching, synthesis).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

from ..export import EXPECTED_NAME, INPUT_NAME, load_onnx
from .settings import setup_finn, vivado_available

QMLP = "qmlp_brevitas.finn.steps."
ESTIMATE_STEPS = [
    QMLP + "step_qmlp_prepare_qonnx",
    "step_qonnx_to_finn",
    "step_tidy_up",
    QMLP + "step_qmlp_streamline",
    QMLP + "step_qmlp_convert_to_hw",
    QMLP + "step_qmlp_create_dataflow_partition",
    QMLP + "step_qmlp_specialize_layers",
    QMLP + "step_qmlp_target_fps_parallelization",
    "step_apply_folding_config",
    "step_minimize_bit_width",
    "step_transpose_decomposition",
    QMLP + "step_qmlp_verify_folded",
    QMLP + "step_qmlp_generate_estimate_reports",
]
# FINN's standard steps after the estimates; they need Vivado/Vitis.
HARDWARE_STEPS = [
    QMLP + "step_qmlp_finn_domains",
    "step_hw_codegen",
    "step_hw_ipgen",
    "step_set_fifo_depths",
    "step_create_stitched_ip",
    "step_measure_rtlsim_performance",
    "step_out_of_context_synthesis",
    "step_synthesize_bitfile",
    "step_make_driver",
    "step_deployment_package",
]
DEFAULT_PART = "xczu7ev-ffvc1156-2-e"
NO_VIVADO_MESSAGE = (
    "stopped after the estimates: IP generation, stitching and synthesis need Vivado/Vitis "
    "(set XILINX_VIVADO to go on with FINN's hardware steps)"
)


class BuildError(RuntimeError):
    """A FINN build that did not finish; the message names the step and the cause."""


@dataclass
class BuildRequest:
    """What to build: the exported model folder, where to, and for which device and speed."""

    model_dir: str | Path
    out_dir: str | Path
    part: str | None = None
    board: str | None = None
    clock_ns: float = 5.0
    target_fps: int | None = None
    folding_config: str | Path | None = None
    hardware: bool | None = None  # None: go on with the hardware steps when Vivado is there
    # qonnx's graph look-ups in constant time (same graph; see .fast_lookups)
    fast_lookups: bool = True
    # thresholds of this many output bits or more become Requant layers where exact
    requant_bits: int | None = None

    def __post_init__(self):
        if self.part and self.board:
            raise ValueError("give either --part or --board, not both")
        if (self.target_fps is None) == (self.folding_config is None):
            raise ValueError("give a throughput target (--target-fps) or a folding config file")
        if self.target_fps is not None and self.target_fps <= 0:
            raise ValueError(f"--target-fps must be positive, got {self.target_fps}")
        if self.clock_ns <= 0:
            raise ValueError(f"--clock-ns must be positive, got {self.clock_ns}")
        if self.requant_bits is not None and not 2 <= self.requant_bits <= 32:
            raise ValueError(f"--requant-bits must be 2 to 32, got {self.requant_bits}")
        if self.folding_config is not None and not Path(self.folding_config).is_file():
            raise FileNotFoundError(f"folding config file {self.folding_config} does not exist")


def make_config(request: BuildRequest, steps: list[str]):
    """The ``DataflowBuildConfig`` of ``request`` (FINN must be set up)."""
    from finn.builder.build_dataflow_config import (
        DataflowBuildConfig,
        DataflowOutputType,
        VerificationStepType,
    )

    model_dir = Path(request.model_dir)
    outputs = [DataflowOutputType.ESTIMATE_REPORTS]
    if any(step in steps for step in HARDWARE_STEPS):
        outputs += [DataflowOutputType.STITCHED_IP, DataflowOutputType.OOC_SYNTH]
    return DataflowBuildConfig(
        output_dir=str(Path(request.out_dir).absolute()),
        synth_clk_period_ns=request.clock_ns,
        fpga_part=None if request.board else (request.part or DEFAULT_PART),
        board=request.board,
        target_fps=request.target_fps,
        folding_config_file=request.folding_config,
        generate_outputs=outputs,
        steps=steps,
        # MVAUs with embedded thresholds do not execute on token (3-D) streams.
        standalone_thresholds=True,
        # Every token transpose becomes a Shuffle layer, the first one included.
        infer_shuffle_skip_first=False,
        verify_steps=[
            VerificationStepType.QONNX_TO_FINN_PYTHON,
            VerificationStepType.TIDY_UP_PYTHON,
        ],
        verify_input_npy=str((model_dir / INPUT_NAME).absolute()),
        verify_expected_output_npy=str((model_dir / EXPECTED_NAME).absolute()),
        save_intermediate_models=True,
        # FINN's default (9) unless exact Requant layers are asked for (see steps)
        requant_bitwidth_threshold=request.requant_bits or 9,
    )


def resolve_model_dir(run: str | Path | None = None, onnx: str | Path | None = None) -> Path:
    """The folder with ``model.onnx``, ``input.npy`` and ``expected_output.npy`` to build."""
    if run is not None and onnx is not None:
        raise ValueError("give either --run or --onnx, not both")
    model_dir = Path(onnx).parent if onnx is not None else Path(run)
    onnx_path = Path(onnx) if onnx is not None else model_dir / "model.onnx"
    load_onnx(onnx_path)  # clear error for a missing or corrupt file
    if onnx_path.name != "model.onnx":
        raise ValueError(f"{onnx_path}: the flow expects the export's model.onnx")
    for name in (INPUT_NAME, EXPECTED_NAME):
        if not (model_dir / name).is_file():
            raise FileNotFoundError(
                f"{model_dir / name} is missing: the build verifies every stage against the "
                "export's input.npy and expected_output.npy; re-export with scripts/export_qonnx.py"
            )
    return model_dir


def run_build(request: BuildRequest) -> dict:
    """Run the FINN build of ``request``; returns the summary (also in ``summary.json``)."""
    out_dir = Path(request.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    setup_finn(out_dir / "finn_tmp")
    from finn.builder.build_dataflow import build_dataflow_cfg

    from . import report
    from .fast_lookups import fast_graph_lookups

    hardware = vivado_available() if request.hardware is None else request.hardware
    steps = ESTIMATE_STEPS + (HARDWARE_STEPS if hardware else [])
    cfg = make_config(request, steps)
    (out_dir / "build_config.json").write_text(cfg.to_json() + "\n")
    start = time.time()
    _clear_intermediate(out_dir)
    lookups = fast_graph_lookups() if request.fast_lookups else contextlib.nullcontext()
    try:
        with lookups:
            status = build_dataflow_cfg(str(Path(request.model_dir) / "model.onnx"), cfg)
    except Exception as err:  # the step's own error, raised in a pytest session
        raise BuildError(_failure(out_dir, steps, err)) from err
    finally:
        _restore_streams()
    seconds = time.time() - start
    if status != 0:
        raise BuildError(_failure(out_dir, steps, None))
    summary = report.write_summary(out_dir, cfg, seconds, hardware)
    summary["message"] = None if hardware else NO_VIVADO_MESSAGE
    report.save_summary(out_dir, summary)
    return summary


def _restore_streams() -> None:
    """FINN's builder redirects stdout/stderr into its log; give them back."""
    import sys

    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if hasattr(stream, "console"):
            setattr(sys, name, stream.console)


def _failure(out_dir: Path, steps: list[str], err: Exception | None) -> str:
    """One line: the step that failed and the cause, from the error or FINN's build log."""
    from .steps import UnmappedNodeError

    done = _finished_steps(out_dir)
    failed = next((s.split(".")[-1] for s in steps if s.split(".")[-1] not in done), "?")
    if isinstance(err, UnmappedNodeError) or isinstance(err, ValueError):
        return f"{failed}: {err}"
    cause = f"{type(err).__name__}: {err}" if err is not None else _log_error(out_dir)
    return f"FINN build failed in {failed}: {cause} (log: {out_dir / 'build_dataflow.log'})"


def _clear_intermediate(out_dir: Path) -> None:
    """Remove the step models of an earlier build in ``out_dir`` (they name finished steps)."""
    folder = out_dir / "intermediate_models"
    if folder.is_dir():
        for path in folder.glob("*.onnx"):
            path.unlink()


def _finished_steps(out_dir: Path) -> set[str]:
    folder = out_dir / "intermediate_models"
    return {p.stem for p in folder.glob("*.onnx")} if folder.is_dir() else set()


def _log_error(out_dir: Path) -> str:
    log = out_dir / "build_dataflow.log"
    if not log.exists():
        return "no build log"
    lines = [line for line in log.read_text().splitlines() if "ERROR" in line]
    for line in lines:
        for marker in ("FINN ERROR:", "FINN INTERNAL COMPILER ERROR:"):
            if marker in line:
                return line.split(marker, 1)[1].strip()
    return lines[-1].strip() if lines else "see the build log"


SEARCH_MODEL_STEP = "step_minimize_bit_width"
SEARCH_NAME = "folding_search.json"


def run_budget_build(request: BuildRequest, budget_text: str | None, log=print) -> dict:
    """The highest-fps folding within a resource budget, confirmed by a build.

    A first build at ``request``'s target (``<out>/search_base``) gives the folded graph; the
    folding search (:func:`qmlp_brevitas.finn.folding_search.search_folding`) picks PE/SIMD
    per layer from the cost models within ``budget_text`` (``"LUT=30000,DSP=200"``; resources
    not named get the part's capacity); then the chosen folding is built into ``request``'s
    output folder. The summary gets ``folding_search``: budget, the search's estimate, and what
    stopped it.
    """
    import json
    from dataclasses import replace

    from qonnx.core.modelwrapper import ModelWrapper

    from . import report
    from .folding_search import search_folding
    from .layer_costs import stream_costs
    from .parts import parse_budget

    if request.board is None:  # check the budget before building (a board's part: after)
        parse_budget(budget_text, request.part or DEFAULT_PART)
    out_dir = Path(request.out_dir)
    base = replace(request, out_dir=out_dir / "search_base")
    if base.folding_config is None and base.target_fps is None:
        base = replace(base, target_fps=1000)
    log(f"folding search: first build in {base.out_dir}")
    base_summary = run_build(base)
    fpgapart = base_summary["fpga_part"]
    budget = parse_budget(budget_text, fpgapart)
    inter = Path(base.out_dir) / "intermediate_models"
    model = ModelWrapper(str(inter / f"{SEARCH_MODEL_STEP}.onnx"))
    final = ModelWrapper(str(inter / f"{report.FINAL_MODEL_STEP}.onnx"))
    fifos = [c for c in stream_costs(final, fpgapart) if c.op_type == "StreamingFIFO"]
    result = search_folding(model, fpgapart, request.clock_ns, budget, fifos)
    log(
        f"folding search: {result.estimated_fps:,.0f} frames/s modelled after {result.steps} "
        f"moves; stopped: {result.limited_by}"
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    config = out_dir / "folding_config.json"
    config.write_text(json.dumps(result.folding_config(), indent=2) + "\n")
    record = {
        "budget": budget,
        "search_estimated_fps": result.estimated_fps,
        "search_totals": result.totals,
        "search_bottleneck": result.bottleneck,
        "limited_by": result.limited_by,
        "steps": result.steps,
        "folding_config": str(config),
    }
    (out_dir / SEARCH_NAME).write_text(json.dumps({**record, "trace": result.trace}, indent=2))
    summary = run_build(replace(request, target_fps=None, folding_config=config))
    from .layer_costs import fits

    summary["folding_search"] = {**record, "confirmed_fits": fits(summary["totals"], budget)}
    report.save_summary(out_dir, summary)
    return summary
