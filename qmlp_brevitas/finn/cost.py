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
import re
from pathlib import Path

from ..export import EXPECTED_NAME, INPUT_NAME, write_json
from .build import DEFAULT_PART, BuildError, BuildRequest

COST_NAME = "hardware.json"
_NODE = re.compile(r"node (\S+) \((\w+)\)")
_STEP = re.compile(r"\b(step_\w+)")


def cost_dir(run_dir: str | Path, target_fps: int) -> Path:
    return Path(run_dir) / f"fpga-{target_fps}fps"


def _request_key(target_fps: int, clock_ns: float, part: str) -> dict:
    return {"target_fps": target_fps, "clock_ns": clock_ns, "part": part}


def failure_reason(message: str, mismatch: str = "") -> str:
    """A short form of a build error: the node that did not map, or the failing step; with the
    verified stages that did not match, if any."""
    node, step = _NODE.search(message), _STEP.search(message)
    if node:
        reason = f"{node.group(2)} node {node.group(1)} not mappable"
        reason += f" ({step.group(1)})" if step else ""
    else:
        reason = message if len(message) <= 120 else message[:117] + "..."
    return f"{reason}; before that, {mismatch}" if mismatch else reason


def _mismatched_stages(out_dir: Path) -> str:
    """The verified stages of a build that did not match the export, as text ('' if none)."""
    from .steps import read_verification  # FINN is set up once a build has run

    stages = read_verification(out_dir)
    bad = [f"{k} ({v['max_abs_diff']:.3g})" for k, v in stages.items() if not v["ok"]]
    return "stage " + ", ".join(bad) + " did not match the export" if bad else ""


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

    run_dir = Path(run_dir)
    for name in ("model.onnx", INPUT_NAME, EXPECTED_NAME):
        if not (run_dir / name).is_file():
            raise FileNotFoundError(
                f"{run_dir / name} is missing: the hardware cost needs the run's QONNX export "
                "(train with --export, or run scripts/export_qonnx.py --run on it)"
            )
    out = cost_dir(run_dir, target_fps)
    key = _request_key(target_fps, clock_ns, part)
    cached = out / COST_NAME
    if cached.is_file():
        saved = json.loads(cached.read_text())
        if saved.get("request") == key:
            return saved
    out.mkdir(parents=True, exist_ok=True)
    request = BuildRequest(
        run_dir, out, part=part, clock_ns=clock_ns, target_fps=target_fps, hardware=False
    )
    with open(out / "build_console.log", "w") as log, contextlib.redirect_stdout(log):
        with contextlib.redirect_stderr(log):
            try:
                cost = cost_from_summary(run_build(request))
            except BuildError as err:
                mismatch = _mismatched_stages(out)
                cost = {
                    "compiles": False,
                    "reason": failure_reason(str(err), mismatch),
                    "error": str(err),
                    "mismatch": mismatch,
                }
    cost["request"] = key
    write_json(cached, cost)
    return cost


LUT_COLUMN = "LUT (all layers)"


def cost_columns(cost: dict) -> dict[str, object]:
    """The table cells of one cost: FINN mapping, frames/s and resource totals.

    The totals cover every layer: FINN's estimate where it has one, the project's model
    otherwise (:mod:`qmlp_brevitas.finn.layer_costs`).
    """
    fps_column = f"fps (target {cost['request']['target_fps']})"
    if not cost["compiles"]:
        reason = failure_reason(cost["error"], cost.get("mismatch", ""))
        cells = {"FINN": f"no: {reason}"}
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
