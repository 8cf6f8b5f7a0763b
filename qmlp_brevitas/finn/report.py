"""The build summary: per-layer table, throughput and latency, totals, missing estimates.

Reads FINN's own reports (``report/estimate_layer_cycles.json``,
``report/estimate_layer_resources.json``, ``report/estimate_network_performance.json``) and the
final folded model, and writes ``summary.json`` beside them. A layer whose FINN estimate is 0
(some HLS elementwise ops, shuffles and LayerNorm report none) is listed as missing, and the
totals say that they leave it out, instead of silently adding a zero. The summary also counts
the layers per op type, names the HLS layers (those need Vitis HLS to build; all others are RTL
and need Vivado only for synthesis), and the nodes FINN's dataflow partition leaves to the host.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

RESOURCES = ("LUT", "BRAM_18K", "URAM", "DSP")
FOLDING_ATTRS = ("PE", "SIMD")
SUMMARY_NAME = "summary.json"
FINAL_MODEL_STEP = "step_qmlp_generate_estimate_reports"


def _load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def _final_model_path(out_dir: Path) -> Path:
    return out_dir / "intermediate_models" / f"{FINAL_MODEL_STEP}.onnx"


def layer_rows(out_dir: Path) -> list[dict]:
    """One row per hardware layer of the final model, in graph order."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp

    report = out_dir / "report"
    cycles = _load(report / "estimate_layer_cycles.json")
    resources = _load(report / "estimate_layer_resources.json")
    model = ModelWrapper(str(_final_model_path(out_dir)))
    rows = []
    for node in model.graph.node:
        inst = getCustomOp(node)
        folding = {}
        for attr in FOLDING_ATTRS:
            try:
                folding[attr] = int(inst.get_nodeattr(attr))
            except AttributeError:  # the op has no such attribute
                continue
        res = resources.get(node.name, {})
        row = {
            "name": node.name,
            "op_type": node.op_type,
            **folding,
            "cycles": int(cycles.get(node.name, 0)),
            **{r: float(res.get(r, 0)) for r in RESOURCES},
        }
        # Every layer uses LUTs: a LUT estimate of 0 means FINN has none for this op.
        row["missing"] = [k for k in ("cycles", "LUT") if not row[k]]
        row["no_resource_estimate"] = not any(row[r] for r in RESOURCES)
        rows.append(row)
    return rows


def hls_layers(rows: list[dict]) -> dict:
    """How many layers are HLS variants (``*_hls``), which, and of which op types."""
    names = [r["name"] for r in rows if r["op_type"].endswith("_hls")]
    types = Counter(r["op_type"] for r in rows if r["op_type"].endswith("_hls"))
    return {"count": len(names), "layers": names, "op_types": dict(sorted(types.items()))}


def host_nodes(out_dir: Path) -> list[dict]:
    """The nodes of FINN's dataflow parent model outside the accelerator (run on the host)."""
    from qonnx.core.modelwrapper import ModelWrapper

    path = out_dir / "intermediate_models" / "dataflow_parent.onnx"
    if not path.is_file():
        return []
    parent = ModelWrapper(str(path))
    return [
        {"name": n.name, "op_type": n.op_type}
        for n in parent.graph.node
        if n.op_type != "StreamingDataflowPartition"
    ]


def layernorm_cost(rows: list[dict]) -> dict:
    """Cycles and resources of the LayerNorm layers (FINN's float ``LayerNorm_*`` and the
    project's ``IntLayerNorm_*``), their kinds, and which of them have no estimate."""
    norms = [r for r in rows if r["op_type"].split("_")[0] in ("LayerNorm", "IntLayerNorm")]
    kinds: dict[str, int] = {}
    for norm in norms:
        kinds[norm["op_type"]] = kinds.get(norm["op_type"], 0) + 1
    return {
        "layers": len(norms),
        "kinds": kinds,
        "max_cycles": max((r["cycles"] for r in norms), default=0),
        **{r: sum(n[r] for n in norms) for r in RESOURCES},
        "missing": [n["name"] for n in norms if n["missing"]],
    }


def write_summary(out_dir: str | Path, cfg, seconds: float, hardware: bool) -> dict:
    """Collect the summary of a finished build in ``out_dir`` (see module docstring)."""
    from .steps import read_verification

    out_dir = Path(out_dir)
    perf = _load(out_dir / "report" / "estimate_network_performance.json")
    rows = layer_rows(out_dir)
    missing_cycles = [r["name"] for r in rows if not r["cycles"]]
    missing_resources = [r["name"] for r in rows if r["no_resource_estimate"]]
    missing_lut = [r["name"] for r in rows if not r["LUT"]]
    totals = {r: sum(row[r] for row in rows) for r in RESOURCES}
    bottleneck = perf.get("max_cycles_node_name")
    return {
        "model": str(cfg.verify_input_npy).rsplit("/", 1)[0],
        "fpga_part": cfg._resolve_fpga_part(),  # noqa: SLF001 (FINN's own resolution)
        "board": cfg.board,
        "clock_ns": cfg.synth_clk_period_ns,
        "target_fps": cfg.target_fps,
        "folding_config": str(cfg.folding_config_file) if cfg.folding_config_file else None,
        "build_seconds": round(seconds, 1),
        "hardware_steps": hardware,
        "layers": rows,
        "layer_counts": dict(sorted(Counter(r["op_type"] for r in rows).items())),
        "hls_layers": hls_layers(rows),
        "host_nodes": host_nodes(out_dir),
        "critical_path_cycles": perf.get("critical_path_cycles"),
        "max_cycles": perf.get("max_cycles"),
        "bottleneck": bottleneck,
        "bottleneck_op": next((r["op_type"] for r in rows if r["name"] == bottleneck), None),
        "estimated_fps": perf.get("estimated_throughput_fps"),
        "estimated_latency_ns": perf.get("estimated_latency_ns"),
        "totals": totals,
        "totals_exclude": {"LUT": missing_lut, "all": missing_resources},
        "missing_lut_estimates": missing_lut,
        "missing_cycle_estimates": missing_cycles,
        "missing_resource_estimates": missing_resources,
        "layernorm": layernorm_cost(rows),
        "verification": read_verification(out_dir),
        "final_model": str(_final_model_path(out_dir).absolute()),
        "intermediate_models": str((out_dir / "intermediate_models").absolute()),
        "verify_input": str(Path(cfg.verify_input_npy).absolute()),
        "verify_expected_output": str(Path(cfg.verify_expected_output_npy).absolute()),
    }


def save_summary(out_dir: str | Path, summary: dict) -> Path:
    path = Path(out_dir) / SUMMARY_NAME
    path.write_text(json.dumps(summary, indent=2) + "\n")
    return path


def format_summary(summary: dict) -> str:
    """The summary table and totals as text."""
    head = f"{'layer':<34} {'op':<26} {'PE':>4} {'SIMD':>4} {'cycles':>8} " + " ".join(
        f"{r:>8}" for r in RESOURCES
    )
    lines = [head, "-" * len(head)]
    for row in summary["layers"]:
        cells = [
            f"{row['name'][:34]:<34}",
            f"{row['op_type'][:26]:<26}",
            f"{row.get('PE', '-'):>4}",
            f"{row.get('SIMD', '-'):>4}",
            f"{row['cycles'] or 'n/a':>8}",
        ]
        cells += [
            f"{'n/a':>8}"
            if row["no_resource_estimate"] or (r == "LUT" and not row[r])
            else f"{row[r]:>8.0f}"
            for r in RESOURCES
        ]
        lines.append(" ".join(cells))
    clock_mhz = 1000.0 / summary["clock_ns"]
    fps, latency = summary["estimated_fps"], summary["estimated_latency_ns"]
    totals = summary["totals"]
    lines += [
        "-" * len(head),
        f"critical path   {summary['critical_path_cycles']} cycles; bottleneck "
        f"{summary['bottleneck']} ({summary['bottleneck_op']}, {summary['max_cycles']} cycles)",
        f"throughput      {fps:,.0f} frames/s at {clock_mhz:.0f} MHz "
        f"(target {summary['target_fps'] or 'from folding config'})",
        f"latency         {latency / 1000:.2f} us",
        "totals          " + ", ".join(f"{r} {totals[r]:,.0f}" for r in RESOURCES),
    ]
    if summary["missing_resource_estimates"]:
        lines.append(
            "no estimate     "
            + ", ".join(summary["missing_resource_estimates"])
            + " (FINN reports 0 for every resource; not in the totals)"
        )
    only_lut = [
        n
        for n in summary["missing_lut_estimates"]
        if n not in summary["missing_resource_estimates"]
    ]
    if only_lut:
        lines.append("no LUT estimate " + ", ".join(only_lut) + " (LUT total leaves them out)")
    if summary["missing_cycle_estimates"]:
        lines.append("no cycle est.   " + ", ".join(summary["missing_cycle_estimates"]))
    hls = summary["hls_layers"]
    if hls["count"]:
        kinds = ", ".join(f"{k} x{v}" for k, v in hls["op_types"].items())
        lines.append(
            f"HLS layers      {hls['count']} of {len(summary['layers'])} ({kinds}); "
            "the others are RTL"
        )
    else:
        lines.append(f"HLS layers      none: all {len(summary['layers'])} layers are RTL")
    if summary["host_nodes"]:
        lines.append(
            "on the host     "
            + ", ".join(f"{n['name']} ({n['op_type']})" for n in summary["host_nodes"])
        )
    norm = summary["layernorm"]
    if norm["layers"]:
        kinds = ", ".join(f"{n} {op}" for op, n in norm.get("kinds", {}).items())
        lines.append(
            f"LayerNorm       {norm['layers']} layers"
            + (f" ({kinds})" if kinds else "")
            + ": "
            + ", ".join(f"{r} {norm[r]:,.0f}" for r in RESOURCES)
            + f", up to {norm['max_cycles']} cycles"
            + (f"; no estimate for {', '.join(norm['missing'])}" if norm["missing"] else "")
        )
    else:
        lines.append("LayerNorm       none in this model")
    for stage, res in summary["verification"].items():
        verdict = "match" if res["ok"] else "MISMATCH"
        lines.append(f"verify {stage:<16} {verdict} (max abs difference {res['max_abs_diff']:.3g})")
    return "\n".join(lines)
