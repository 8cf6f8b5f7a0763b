"""The files of a training run folder and of a FINN build folder, by name, and their readers.

Every stage names the files it writes or reads through :class:`RunFolder` and
:class:`BuildFolder`; no other module spells these file names. A new file gets a property here.

A run folder (``scripts/train_brevitas.py --out``) holds the training results and the QONNX
export; a build folder (``fpga/build.py --out``) holds FINN's outputs, the verification data
the build used and ``summary.json``. ``summary.json`` has a ``status``: ``"running"`` while a
build runs, ``"failed"`` (with ``failed_step`` and ``reason``) when it stopped, ``"ok"`` when it
finished; the readers below refuse a folder whose build did not finish. Two more folders hold
studies over builds: the Yosys synthesis of single layers (:class:`SynthesisFolder`) and the
design-space report (:class:`DesignSpaceFolder`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .errors import QMLPError, RunFolderError

# The build step whose output model the summary, the cost and the RTL check describe: the folded,
# specialised model on which FINN's estimates are made (FINN's step, with the project's RTL
# layers in FINN's view: qmlp_brevitas.finn.steps.step_qmlp_generate_estimate_reports).
FINAL_MODEL_STEP = "step_qmlp_generate_estimate_reports"
# The folded model before FINN's transpose decomposition: the graph a folding config applies to,
# on which the folding search works.
SEARCH_MODEL_STEP = "step_minimize_bit_width"
SYNTHESIS_FILE = "synthesis.json"
BUILD_OK, BUILD_FAILED, BUILD_RUNNING = "ok", "failed", "running"


class BuildFolderError(QMLPError, ValueError):
    """A build folder without what a stage needs; the message says what to do."""


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise BuildFolderError(f"{path} is not valid JSON ({err}); build again") from err


@dataclass(frozen=True)
class RunFolder:
    """A training run: resolved config, checkpoint, history, metrics and the QONNX export."""

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def checkpoint(self) -> Path:
        return self.root / "checkpoint.pt"

    @property
    def history(self) -> Path:
        return self.root / "history.json"

    @property
    def history_plot(self) -> Path:
        return self.root / "history.png"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def summary(self) -> Path:
        return self.root / "summary.txt"

    @property
    def model(self) -> Path:
        """The QONNX export."""
        return self.root / "model.onnx"

    @property
    def qdq_model(self) -> Path:
        """The standard-ONNX QDQ export (onnxruntime)."""
        return self.root / "model_qdq.onnx"

    @property
    def input(self) -> Path:
        """The verification input of the export."""
        return self.root / "input.npy"

    @property
    def expected_output(self) -> Path:
        """The Brevitas model's output on :attr:`input`."""
        return self.root / "expected_output.npy"

    @property
    def export_record(self) -> Path:
        return self.root / "export.json"

    @property
    def default_build(self) -> BuildFolder:
        """Where ``fpga/build.py --run`` builds by default."""
        return BuildFolder(self.root / "fpga")

    def cost_build(self, target_fps: int) -> BuildFolder:
        """The build folder of the ablation's hardware cost at ``target_fps``."""
        return BuildFolder(self.root / f"fpga-{target_fps}fps")

    def design_build(self, requant_bits: int | None = None) -> BuildFolder:
        """The build folder of the design-space report's point (with exact Requant layers from
        ``requant_bits`` output bits, if given)."""
        suffix = f"-requant{requant_bits}" if requant_bits else ""
        return BuildFolder(self.root / f"fpga-design{suffix}")

    def has_export(self) -> bool:
        return all(p.is_file() for p in (self.model, self.input, self.expected_output))

    def read_config(self) -> dict:
        return json.loads(self.config.read_text())

    def read_metrics(self) -> dict:
        return json.loads(self.metrics.read_text())


@dataclass(frozen=True)
class BuildFolder:
    """A FINN build: its config, FINN's reports and step models, verification data, summary."""

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    @property
    def build_config(self) -> Path:
        return self.root / "build_config.json"

    @property
    def build_log(self) -> Path:
        """FINN's own log."""
        return self.root / "build_dataflow.log"

    @property
    def console_log(self) -> Path:
        """What FINN printed, unless the build ran with ``--verbose``."""
        return self.root / "build_console.log"

    @property
    def report_dir(self) -> Path:
        return self.root / "report"

    @property
    def verification_report(self) -> Path:
        """Each verified stage's difference to the expected output."""
        return self.report_dir / "verification.json"

    @property
    def unmapped_nodes(self) -> Path:
        """The nodes that did not become FINN hardware layers, if a build stopped there."""
        return self.report_dir / "unmapped_nodes.json"

    @property
    def layer_cycles(self) -> Path:
        return self.report_dir / "estimate_layer_cycles.json"

    @property
    def layer_resources(self) -> Path:
        return self.report_dir / "estimate_layer_resources.json"

    @property
    def network_performance(self) -> Path:
        return self.report_dir / "estimate_network_performance.json"

    @property
    def intermediate_models(self) -> Path:
        return self.root / "intermediate_models"

    def step_model(self, step: str) -> Path:
        """The model FINN saved after ``step`` (a step name without its module)."""
        return self.intermediate_models / f"{step}.onnx"

    @property
    def final_model(self) -> Path:
        return self.step_model(FINAL_MODEL_STEP)

    @property
    def search_model(self) -> Path:
        """The folded model the folding search works on (before transpose decomposition)."""
        return self.step_model(SEARCH_MODEL_STEP)

    @property
    def dataflow_parent(self) -> Path:
        return self.intermediate_models / "dataflow_parent.onnx"

    @property
    def verify_input(self) -> Path:
        """The input every stage is executed on (copied from the export, given or generated)."""
        return self.root / "verification" / "input.npy"

    @property
    def verify_expected_output(self) -> Path:
        return self.root / "verification" / "expected_output.npy"

    @property
    def finn_tmp(self) -> Path:
        """FINN's temporary files (``FINN_BUILD_DIR``)."""
        return self.root / "finn_tmp"

    @property
    def auto_folding_config(self) -> Path:
        """The folding FINN chose for a throughput target; ``--folding`` takes it back."""
        return self.report_dir / "auto_folding_config.json"

    @property
    def folding_config(self) -> Path:
        """The copy of a ``--folding`` file that the build used."""
        return self.root / "folding_config.json"

    @property
    def rtlsim_dir(self) -> Path:
        return self.root / "rtlsim"

    @property
    def rtlsim_report(self) -> Path:
        return self.root / "rtlsim.json"

    @property
    def rtlsim_whole_dir(self) -> Path:
        """The whole-design simulation's work: generated HDL, simulator cache, runs."""
        return self.root / "rtlsim_whole"

    @property
    def rtlsim_whole_report(self) -> Path:
        return self.root / "rtlsim_whole.json"

    @property
    def fifo_depths(self) -> Path:
        """The FIFO depths the whole-design simulation sized (and reuses)."""
        return self.rtlsim_whole_dir / "fifo_depths.json"

    @property
    def hardware_cost(self) -> Path:
        """The ablation's condensed cost of this build."""
        return self.root / "hardware.json"

    @property
    def synthesis(self) -> Path:
        """Yosys' counts of this build's layers, by layer name (the summary's ``synthesized``
        source)."""
        return self.root / SYNTHESIS_FILE

    @property
    def search_base(self) -> BuildFolder:
        """The first build of ``--budget``, whose folded graph the folding search starts from."""
        return BuildFolder(self.root / "search_base")

    @property
    def folding_search(self) -> Path:
        """``--budget``'s search: budget, modelled result, what stopped it, the trace."""
        return self.root / "folding_search.json"

    @property
    def design_point(self) -> Path:
        """The design-space report's result for this build's run (accuracy, searches)."""
        return self.root / "design_point.json"

    def stale_outputs(self) -> list[Path]:
        """What describes a previous build and must not outlive a new one that fails."""
        return [
            self.summary,
            self.report_dir,
            self.verify_input.parent,
            self.folding_config,
            self.rtlsim_report,
            self.rtlsim_whole_report,
            self.fifo_depths,
            self.hardware_cost,
            self.synthesis,
            self.folding_search,
            self.design_point,
            *sorted(self.intermediate_models.glob("*.onnx")),
        ]

    def read_summary(self) -> dict:
        """``summary.json`` of a finished build; a clear error if the build did not finish."""
        if not self.summary.is_file():
            raise BuildFolderError(
                f"{self.summary} does not exist: no finished FINN build in {self.root}; run "
                "fpga/build.py with --out there first"
            )
        summary = _read_json(self.summary)
        status = summary.get("status", BUILD_OK)  # summaries written before status existed
        if status != BUILD_OK:
            where = f" in {summary['failed_step']}" if summary.get("failed_step") else ""
            reason = f": {summary['reason']}" if summary.get("reason") else ""
            raise BuildFolderError(
                f"the FINN build in {self.root} is {status}{where}{reason}; build it again"
            )
        return summary

    def read_verification(self) -> dict:
        """The verified stages (stage -> max_abs_diff, ok, ...), or an empty dict."""
        path = self.verification_report
        return _read_json(path) if path.is_file() else {}

    def final_model_path(self) -> Path:
        """The folded, specialised model of a finished build."""
        if self.summary.is_file():
            self.read_summary()  # refuses a failed or unfinished build
        if not self.final_model.is_file():
            raise BuildFolderError(
                f"{self.final_model} does not exist: no finished FINN build in {self.root}; run "
                "fpga/build.py to the estimates first, or pass the model with --model"
            )
        return self.final_model

    def verification_input_path(self) -> Path:
        """The input the build verified every stage on."""
        if self.verify_input.is_file():
            return self.verify_input
        if self.summary.is_file():  # builds that read the input from the export's folder
            named = self.read_summary().get("verify_input")
            if named and Path(named).is_file():
                return Path(named)
        raise BuildFolderError(
            f"no verification input in {self.root} ({self.verify_input} is missing); pass "
            "--input with the .npy the build was verified on"
        )


def check_output_folder(path: str | Path, option: str = "--out") -> Path:
    """``path`` if it is, or can become, a folder; else a clear error before any work starts."""
    path = Path(path)
    for ancestor in (path, *path.parents):
        if ancestor.exists():
            if not ancestor.is_dir():
                raise RunFolderError(
                    f"{option} {path} cannot be a folder: {ancestor} is a file; choose another "
                    f"{option}"
                )
            break
    return path


@dataclass(frozen=True)
class SynthesisFolder:
    """The Yosys synthesis of single layers (``qmlp_brevitas.finn.synth.run_calibration``)."""

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    @property
    def results(self) -> Path:
        """Label -> layer attributes and Yosys' counts."""
        return self.root / SYNTHESIS_FILE

    def layer_dir(self, label: str) -> Path:
        """The HDL, sources and Yosys log of one layer."""
        return self.root / label


@dataclass(frozen=True)
class DesignSpaceFolder:
    """The design-space report (``qmlp-design-space --out``): table, csv, plot, FINN's log."""

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    @property
    def table(self) -> Path:
        return self.root / "design_space.md"

    @property
    def csv(self) -> Path:
        return self.root / "design_space.csv"

    @property
    def plot(self) -> Path:
        return self.root / "design_space.png"

    @property
    def console_log(self) -> Path:
        """What FINN printed during the points' builds."""
        return self.root / "build_console.log"
