"""The FINN dataflow build of a QONNX model: one ``DataflowBuildConfig`` and a list of steps.

FINN's built-in steps are used by name where they serve; the Q-MLP steps of
:mod:`qmlp_brevitas.finn.steps` sit between them. Without Vivado the build ends after the
estimate reports (FINN's ``estimate_only`` outputs); with ``XILINX_VIVADO`` set the same config
goes on with FINN's standard hardware steps (IP generation, stitching, synthesis).

The model is any ONNX file (this project's export or a client's Brevitas ``export_qonnx``);
its verification data are the export's, a given input, or generated from the model's input
quantizer (:mod:`qmlp_brevitas.finn.verification`). The build folder's layout is
:class:`qmlp_brevitas.layout.BuildFolder`; its ``summary.json`` says ``status`` ``running``,
``failed`` (with the step and reason) or ``ok``.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import ConfigError, QMLPError
from ..export import load_onnx
from ..layout import (
    BUILD_FAILED,
    BUILD_OK,
    BUILD_RUNNING,
    BuildFolder,
    RunFolder,
    check_output_folder,
)
from . import report
from .errors import BuildError, UnmappedNodeError, read_unmapped
from .settings import setup_finn, vivado_available
from .verification import VerificationData

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
    QMLP + "step_qmlp_specialize_rtl",
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
# A Xilinx part as Vivado names it: family and device, package and pin count, speed grade and
# temperature/voltage suffixes (xc7z020clg400-1, xczu7ev-ffvc1156-2-e, xcvc1902-vsva2197-2MP-e-S).
PART_NAME = re.compile(
    r"x[acq](?:7[aksvz]\d{2,3}t?|[a-z]+\d+[a-z]*)-?[a-z]{2,5}\d{3,4}(?:-[0-9a-z]+)+", re.IGNORECASE
)
NO_VIVADO_MESSAGE = (
    "stopped after the estimates: IP generation, stitching and synthesis need Vivado/Vitis "
    "(set XILINX_VIVADO to go on with FINN's hardware steps)"
)


@dataclass
class BuildRequest:
    """What to build: a QONNX model, where to, and for which device and speed.

    ``model`` is a run folder (its ``model.onnx``) or any ONNX file. ``verify_input`` is an input
    to verify every stage on instead of the export's or a generated one
    (:mod:`qmlp_brevitas.finn.verification`). Every setting is checked on construction, before
    any folder is made or any FINN step runs.
    """

    model: str | Path
    out_dir: str | Path
    part: str | None = None
    board: str | None = None
    clock_ns: float = 5.0
    target_fps: int | None = None
    folding_config: str | Path | None = None
    hardware: bool | None = None  # None: go on with the hardware steps when Vivado is there
    verify_input: str | Path | None = None
    seed: int = 0  # of a generated verification input
    # qonnx's graph look-ups in constant time (same graph; see .fast_lookups)
    fast_lookups: bool = True
    # thresholds of this many output bits or more become Requant layers where exact
    requant_bits: int | None = None

    def __post_init__(self):
        if self.part and self.board:
            raise ConfigError("give either --part or --board, not both")
        if self.part is not None:
            check_part(self.part)
        if self.board is not None:
            check_board(self.board)
        if (self.target_fps is None) == (self.folding_config is None):
            raise ConfigError("give a throughput target (--target-fps) or a folding config file")
        if self.target_fps is not None and self.target_fps <= 0:
            raise ConfigError(f"--target-fps must be positive, got {self.target_fps}")
        if not self.clock_ns > 0:
            raise ConfigError(f"--clock-ns must be positive, got {self.clock_ns}")
        if self.requant_bits is not None and not 2 <= self.requant_bits <= 32:
            raise ConfigError(f"--requant-bits must be 2 to 32, got {self.requant_bits}")
        if self.folding_config is not None:
            self.folding_config = Path(self.folding_config)
            check_folding_config(self.folding_config)
        if self.verify_input is not None and not Path(self.verify_input).is_file():
            raise ConfigError(f"--input {self.verify_input} does not exist")
        check_output_folder(self.out_dir)

    @property
    def model_path(self) -> Path:
        """The ONNX file to build."""
        model = Path(self.model)
        return RunFolder(model).model if model.is_dir() else model


def check_part(part: str) -> None:
    """Refuse an FPGA part that is neither in FINN's tables nor a Xilinx part name."""
    from finn.util.basic import part_map

    if part in part_map.values() or PART_NAME.fullmatch(part):
        return
    raise ConfigError(
        f"--part {part!r} is not a Xilinx FPGA part name (device-package-speed grade, as Vivado "
        f"spells it, e.g. {DEFAULT_PART} or xc7z020clg400-1); FINN's boards use "
        f"{', '.join(sorted(set(part_map.values())))}"
    )


def check_board(board: str) -> None:
    """Refuse a board that FINN does not know (``finn.util.basic.part_map``)."""
    from finn.util.basic import part_map

    if board not in part_map:
        raise ConfigError(
            f"--board {board!r} is not a board FINN knows; choose one of "
            f"{', '.join(sorted(part_map))}, or give the FPGA with --part"
        )


def check_folding_config(path: Path) -> None:
    """Refuse a folding config that is missing or not a JSON object of per-layer settings."""
    if not path.is_file():
        raise ConfigError(f"folding config file {path} does not exist")
    try:
        values = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"folding config {path} is not valid JSON ({err})") from err
    if not isinstance(values, dict) or not all(isinstance(v, dict) for v in values.values()):
        raise ConfigError(
            f"folding config {path} must be a JSON object of layer name -> settings, like FINN's "
            "auto_folding_config.json of an earlier build"
        )


def make_config(request: BuildRequest, steps: list[str]):
    """The ``DataflowBuildConfig`` of ``request`` (FINN must be set up).

    Verification reads the build folder's ``verification/`` files and a folding config its copy
    ``folding_config.json``; :func:`prepare_build` writes them before the build starts.
    """
    from finn.builder.build_dataflow_config import (
        DataflowBuildConfig,
        DataflowOutputType,
        VerificationStepType,
    )

    folder = BuildFolder(Path(request.out_dir).absolute())
    outputs = [DataflowOutputType.ESTIMATE_REPORTS]
    if any(step in steps for step in HARDWARE_STEPS):
        outputs += [DataflowOutputType.STITCHED_IP, DataflowOutputType.OOC_SYNTH]
    return DataflowBuildConfig(
        output_dir=str(folder.root),
        synth_clk_period_ns=request.clock_ns,
        fpga_part=None if request.board else (request.part or DEFAULT_PART),
        board=request.board,
        target_fps=request.target_fps,
        # FINN's field is a Path: its JSON and folding steps call Path methods on it.
        folding_config_file=folder.folding_config if request.folding_config else None,
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
        verify_input_npy=str(folder.verify_input),
        verify_expected_output_npy=str(folder.verify_expected_output),
        save_intermediate_models=True,
        # FINN's default (9) unless exact Requant layers are asked for (see steps)
        requant_bitwidth_threshold=request.requant_bits or 9,
    )


def load_verification(request: BuildRequest) -> VerificationData:
    """Read and check the model; its verification data (export's, given or generated)."""
    from .verification import verification_data

    model = load_onnx(request.model_path)  # a clear error for a missing or corrupt file
    return verification_data(model, request.model_path, request.verify_input, request.seed)


def prepare_build(
    request: BuildRequest, data: VerificationData | None = None
) -> tuple[BuildFolder, VerificationData]:
    """Check the model, make its verification data (unless given), and start the build folder.

    Outputs of an earlier build in the folder are removed first (``summary.json``, reports,
    step models, verification data: a failed rebuild must not leave them pointing at files that
    are gone), and ``summary.json`` says ``status: "running"``.
    """
    data = data or load_verification(request)
    model_path = request.model_path
    folder = BuildFolder(request.out_dir)
    folder.root.mkdir(parents=True, exist_ok=True)
    # Read first: it may be an earlier build's report/auto_folding_config.json in this folder.
    folding = Path(request.folding_config).read_text() if request.folding_config else None
    for path in folder.stale_outputs():
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    report.save_summary(folder, {"status": BUILD_RUNNING, "model": str(model_path.absolute())})
    data.save(folder)
    if folding is not None:
        folder.folding_config.write_text(folding)
    return folder, data


def run_build(request: BuildRequest, verification: VerificationData | None = None) -> dict:
    """Run the FINN build of ``request``; returns the summary (also in ``summary.json``).

    ``verification`` is :func:`load_verification`'s result if the caller has it already. A
    build that stops raises :class:`BuildError` (the step, the reason, the nodes that did not
    map) after writing ``summary.json`` with ``status: "failed"`` and the same fields.
    """
    folder, data = prepare_build(request, verification)
    setup_finn(folder.finn_tmp)
    from finn.builder.build_dataflow import build_dataflow_cfg

    from .fast_lookups import fast_graph_lookups

    hardware = vivado_available() if request.hardware is None else request.hardware
    steps = ESTIMATE_STEPS + (HARDWARE_STEPS if hardware else [])
    cfg = make_config(request, steps)
    folder.build_config.write_text(cfg.to_json() + "\n")
    start = time.time()
    lookups = fast_graph_lookups() if request.fast_lookups else contextlib.nullcontext()
    try:
        with lookups:
            status = build_dataflow_cfg(str(request.model_path), cfg)
    except Exception as err:  # the step's own error, raised in a pytest session
        raise _failed(folder, request, steps, err) from err
    finally:
        _restore_streams()
    seconds = time.time() - start
    if status != 0:
        raise _failed(folder, request, steps, None)
    summary = {
        "status": BUILD_OK,
        **report.write_summary(folder, cfg, seconds, hardware),
        "model": str(request.model_path.absolute()),
        "verification_source": data.source,
        "verification_note": data.note,
        "folding_config": str(request.folding_config) if request.folding_config else None,
        "message": None if hardware else NO_VIVADO_MESSAGE,
    }
    report.save_summary(folder, summary)
    return summary


def _restore_streams() -> None:
    """FINN's builder redirects stdout/stderr into its log; give them back."""
    import sys

    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if hasattr(stream, "console"):
            setattr(sys, name, stream.console)


def _failed(
    folder: BuildFolder, request: BuildRequest, steps: list[str], err: Exception | None
) -> BuildError:
    """The :class:`BuildError` of a build that stopped; ``summary.json`` marked failed."""
    done = {p.stem for p in folder.intermediate_models.glob("*.onnx")}
    step = next((s.split(".")[-1] for s in steps if s.split(".")[-1] not in done), "?")
    unmapped = read_unmapped(folder.unmapped_nodes)
    if unmapped:
        reason = str(UnmappedNodeError(unmapped))
    elif isinstance(err, QMLPError):
        reason = str(err)
    elif err is not None:
        reason = f"{type(err).__name__}: {err}"
    else:
        reason = _log_error(folder)
    error = BuildError(step, reason, folder.build_log, unmapped)
    report.save_summary(
        folder,
        {
            "status": BUILD_FAILED,
            "model": str(request.model_path.absolute()),
            "failed_step": step,
            "reason": reason,
            "unmapped_nodes": [asdict(n) for n in unmapped],
            "log": str(folder.build_log),
        },
    )
    return error


def _log_error(folder: BuildFolder) -> str:
    """The error FINN logged (it catches a step's error and logs only its message)."""
    if not folder.build_log.exists():
        return "no build log"
    lines = [line for line in folder.build_log.read_text().splitlines() if "ERROR" in line]
    for line in lines:
        for marker in ("FINN ERROR:", "FINN INTERNAL COMPILER ERROR:"):
            if marker in line:
                return line.split(marker, 1)[1].strip()
    return lines[-1].strip() if lines else "see the build log"


def budget_part(request: BuildRequest) -> str:
    """The FPGA part a resource budget is measured against: ``--part``, the part of
    ``--board`` (FINN's ``part_map``, as FINN resolves it), or the default part."""
    if request.board is not None:
        from finn.util.basic import part_map

        return part_map[request.board]
    return request.part or DEFAULT_PART


def check_budget(request: BuildRequest, budget_text: str | None) -> dict[str, float]:
    """The budget of ``budget_text`` (``"LUT=30000,DSP=200"``; resources not named: the part's
    capacity) for ``request``'s part; a :class:`~qmlp_brevitas.finn.parts.BudgetError` or
    :class:`~qmlp_brevitas.finn.parts.UnknownPartError` before anything is built."""
    from .parts import parse_budget

    return parse_budget(budget_text, budget_part(request))


def run_budget_build(
    request: BuildRequest,
    budget_text: str | None,
    verification: VerificationData | None = None,
    log=print,
) -> dict:
    """The highest-fps folding within a resource budget, confirmed by a build.

    The budget is checked first (:func:`check_budget`). A first build at ``request``'s target
    (the build folder's ``search_base``) gives the folded graph; the folding search
    (:func:`qmlp_brevitas.finn.folding_search.search_folding`) picks PE/SIMD per layer from the
    cost models within the budget, counting the width converters and FIFOs that folding needs;
    then the chosen folding is built into ``request``'s output folder, verified on the same
    data as the first build. Should the built totals exceed the budget anyway, the search runs
    again within a budget tightened by the difference and the new folding is built
    (:func:`~qmlp_brevitas.finn.folding_search.search_and_confirm`), so the result is a built
    design within the budget. The summary gets ``folding_search``: the budget, the last
    search's estimate (``search_totals``, ``search_estimated_fps``) beside the built
    ``built_totals``, what stopped the search, ``confirm_rounds`` and each round's record, and
    ``confirmed_fits``; the search with its trace is also written to the folder's
    ``folding_search.json``. A budget that even the smallest folding exceeds raises
    :class:`~qmlp_brevitas.finn.folding_search.BudgetTooSmallError`; a build still over budget
    after the last round raises :class:`~qmlp_brevitas.finn.folding_search.BudgetNotMetError`,
    with its summary saved (``confirmed_fits`` false).
    """
    from dataclasses import replace

    from qonnx.core.modelwrapper import ModelWrapper

    from ..export import write_json
    from .folding_search import BudgetNotMetError, search_and_confirm, search_folding
    from .parts import parse_budget

    check_budget(request, budget_text)
    data = verification or load_verification(request)
    folder = BuildFolder(request.out_dir)
    base = replace(request, out_dir=folder.search_base.root)
    log(f"folding search: first build in {base.out_dir}")
    base_summary = run_build(base, data)
    fpgapart = base_summary["fpga_part"]
    budget = parse_budget(budget_text, fpgapart)
    model = ModelWrapper(str(folder.search_base.search_model))
    records: list[dict] = []

    def search(search_budget: dict[str, float]):
        result = search_folding(model, fpgapart, request.clock_ns, search_budget)
        log(
            f"folding search: {result.estimated_fps:,.0f} frames/s modelled after "
            f"{result.steps} moves; stopped: {result.limited_by}"
        )
        return result

    def build(result) -> dict:
        folder.root.mkdir(parents=True, exist_ok=True)
        folder.folding_config.write_text(json.dumps(result.folding_config(), indent=2) + "\n")
        record = {
            "budget": budget,
            "search_budget": result.budget,
            "search_estimated_fps": result.estimated_fps,
            "search_totals": result.totals,
            "search_inserted": result.inserted,
            "search_bottleneck": result.bottleneck,
            "limited_by": result.limited_by,
            "steps": result.steps,
            "trimmed": result.trimmed,
            "folding_config": str(folder.folding_config),
        }
        records.append(record)
        try:
            return run_build(
                replace(request, target_fps=None, folding_config=folder.folding_config), data
            )
        finally:  # after the build cleared the folder's earlier outputs; also when it failed
            write_json(folder.folding_search, {**record, "trace": result.trace})

    def finish(summary: dict, rounds: list[dict], ok: bool) -> None:
        built = {r: summary["totals"][r] for r in budget}
        summary["folding_search"] = {
            **records[-1],
            "built_totals": built,
            "confirm_rounds": len(rounds),
            "rounds": rounds,
            "confirmed_fits": ok,
        }
        report.save_summary(folder, summary)

    try:
        _, summary, rounds = search_and_confirm(search, build, budget, log=log)
    except BudgetNotMetError as error:
        finish(error.summary, error.rounds, False)
        raise
    finish(summary, rounds, True)
    return summary
