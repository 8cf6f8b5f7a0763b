"""What a trained model costs in hardware: one FINN estimate build, condensed to a few numbers.

:func:`hardware_cost` builds a run's QONNX export with :func:`qmlp_brevitas.finn.build.run_build`
at a fixed folding target and keeps the outcome in ``<run>/fpga-<fps>fps/hardware.json``: whether
every node became a FINN hardware layer (and if not, which node stopped it), whether every
verified stage matched the export, the estimated frames/s and the resource totals. A second call
with the same request reads that file instead of building again, so an interrupted ablation
resumes without rebuilding.

:func:`hardware_column` turns it into an ablation column
(:data:`qmlp_brevitas.ablation.ColumnHook`).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from ..errors import RunFolderError
from ..export import write_json
from ..layout import BuildFolder, RunFolder
from .build import DEFAULT_PART, BuildRequest
from .errors import BuildError, UnmappedNode

# Bumped when the saved cost changes its fields: a saved cost of another format is built again.
COST_FORMAT = 3


def cost_dir(run_dir: str | Path, target_fps: int) -> Path:
    return RunFolder(run_dir).cost_build(target_fps).root


def _request_key(target_fps: int, clock_ns: float, part: str) -> dict:
    return {"target_fps": target_fps, "clock_ns": clock_ns, "part": part, "format": COST_FORMAT}


def failure_reason(cost: dict) -> str:
    """A short form of why a build did not compile, from the cost's fields: the node that did
    not map (and the step), or the failing step and its reason; with the verified stages that
    did not match before that, if any."""
    unmapped = cost.get("unmapped_nodes") or []
    if unmapped:
        first = UnmappedNode(**unmapped[0])
        reason = f"{first.op_type} node {first.node} not mappable ({cost['failed_step']})"
    else:
        reason = f"{cost['failed_step']}: {cost['reason']}"
        reason = reason if len(reason) <= 120 else reason[:117] + "..."
    mismatch = mismatch_text(cost.get("mismatched_stages") or [])
    return f"{reason}; before that, {mismatch}" if mismatch else reason


def mismatch_text(stages: list[dict]) -> str:
    """The verified stages that did not match the export, as text ('' if none)."""
    bad = [f"{s['stage']} ({s['max_abs_diff']:.3g})" for s in stages]
    return "stage " + ", ".join(bad) + " did not match the export" if bad else ""


def _mismatched_stages(folder: BuildFolder) -> list[dict]:
    return [
        {"stage": stage, "max_abs_diff": result["max_abs_diff"]}
        for stage, result in folder.read_verification().items()
        if not result["ok"]
    ]


def cost_from_summary(summary: dict) -> dict:
    """The hardware cost of a finished build from its ``summary.json`` contents."""
    stages = summary["verification"]
    return {
        "compiles": True,
        "layers": len(summary["layers"]),
        "verified": all(s["ok"] for s in stages.values()),
        "worst_abs_diff": max((s["max_abs_diff"] for s in stages.values()), default=None),
        "fps": summary["estimated_fps"],
        "latency_ms": summary["estimated_latency_ns"] / 1e6,
        "bottleneck": summary["bottleneck"],
        **{k: summary["totals"][k] for k in ("LUT", "BRAM_18K", "DSP")},
        "layers_modelled_lut": len(summary["finn_missing_lut_estimates"]),
        "build_seconds": summary["build_seconds"],
    }


def hardware_cost(
    run_dir: str | Path,
    target_fps: int = 1000,
    clock_ns: float = 5.0,
    part: str = DEFAULT_PART,
) -> dict:
    """The FINN estimate cost of the export in ``run_dir`` (built once, then read back).

    Returns ``compiles`` (every node a FINN hardware layer) and, when it does, ``verified``,
    ``fps``, ``LUT``, ``BRAM_18K``, ``DSP`` (all layers, FINN's estimates or the project's
    models) and ``layers_modelled_lut``; when it does not,
    ``reason`` (the node or step that stopped the build). FINN's output goes to the build
    folder's ``build_console.log``.
    """
    from .build import run_build

    run = RunFolder(run_dir)
    if not run.has_export():
        raise RunFolderError(
            f"{run.root} has no QONNX export (model.onnx, input.npy, expected_output.npy): the "
            "hardware cost needs it (train with --export, or run qmlp-export on its checkpoint)"
        )
    folder = run.cost_build(target_fps)
    key = _request_key(target_fps, clock_ns, part)
    if folder.hardware_cost.is_file():
        saved = json.loads(folder.hardware_cost.read_text())
        if saved.get("request") == key:
            return saved
    request = BuildRequest(
        run.root, folder.root, part=part, clock_ns=clock_ns, target_fps=target_fps, hardware=False
    )
    folder.root.mkdir(parents=True, exist_ok=True)
    with open(folder.console_log, "w") as log, contextlib.redirect_stdout(log):
        with contextlib.redirect_stderr(log):
            try:
                cost = cost_from_summary(run_build(request))
            except BuildError as err:
                cost = {
                    "compiles": False,
                    "failed_step": err.step,
                    "reason": err.reason,
                    "unmapped_nodes": [vars(n) for n in err.unmapped],
                    "mismatched_stages": _mismatched_stages(folder),
                }
    cost["request"] = key
    write_json(folder.hardware_cost, cost)
    return cost


LUT_COLUMN = "LUT (all layers)"


def cost_columns(cost: dict) -> dict[str, object]:
    """The table cells of one cost: FINN mapping, frames/s and resource totals.

    The totals cover every layer: FINN's estimate where it has one, the project's model
    otherwise (:mod:`qmlp_brevitas.finn.layer_costs`).
    """
    fps_column = f"fps (target {cost['request']['target_fps']})"
    if not cost["compiles"]:
        cells = {"FINN": f"no: {failure_reason(cost)}"}
        return {**cells, fps_column: "", LUT_COLUMN: "", "DSP": "", "BRAM_18K": ""}
    verdict = f"yes, {cost['layers']} layers" + ("" if cost["verified"] else ", MISMATCH")
    return {
        "FINN": verdict,
        fps_column: round(cost["fps"]),
        LUT_COLUMN: round(cost["LUT"]),
        "DSP": round(cost["DSP"]),
        "BRAM_18K": round(cost["BRAM_18K"]),
    }


def hardware_column(target_fps: int = 1000, clock_ns: float = 5.0, part: str = DEFAULT_PART):
    """An ablation column hook: the hardware cost of each quantized row's first seed."""

    def column(result) -> dict[str, object]:
        cost = hardware_cost(result.run_dirs[0], target_fps, clock_ns, part)
        return cost_columns(cost)

    column.__name__ = f"hardware_column_{target_fps}fps"
    return column
