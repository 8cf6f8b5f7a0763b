"""The build summary: per-layer table with every number's source, performance, totals.

Reads FINN's reports (``report/estimate_layer_cycles.json``,
``report/estimate_layer_resources.json``, ``report/estimate_network_performance.json``) and the
final folded model, costs every layer with :mod:`qmlp_brevitas.finn.layer_costs` (FINN's
estimate where FINN has one, the project's model otherwise, Yosys' count where the layer was
synthesised) and writes ``summary.json`` beside them: per layer its cycles and LUT, FF,
BRAM_18K, URAM and DSP with their sources, the FIFOs and width converters the hardware steps
would insert, totals over all of them, the critical path, frames/s, the MAC utilisation
(MACs per frame / (sum of PE x SIMD of the MAC layers x bottleneck cycles)) and the fraction
of the part used. FINN's own totals, which leave out what it does not estimate, are kept as
``finn_totals``. The summary also counts the layers per op type, names the HLS layers (those
need Vitis HLS to build; all others are RTL and need Vivado only for synthesis), and the nodes
FINN's dataflow partition leaves to the host.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from ..layout import BuildFolder
from .parts import RESOURCES

FINN_RESOURCES = ("LUT", "BRAM_18K", "URAM", "DSP")


def _load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def synthesized_layers(folder: BuildFolder) -> dict[str, dict]:
    """Yosys' counts per layer name from the build's ``synthesis.json``
    (:func:`qmlp_brevitas.finn.synth.synthesize_node` results by layer name)."""
    data = _load(folder.synthesis)
    return {name: {r: v[r] for r in RESOURCES if r in v} for name, v in data.items()}


def cost_row(cost) -> dict:
    """A summary row of a :class:`~qmlp_brevitas.finn.layer_costs.LayerCost`."""
    return {
        "name": cost.name,
        "op_type": cost.op_type,
        **cost.folding,
        "cycles": cost.cycles,
        **{r: cost.resources[r] for r in RESOURCES},
        "sources": cost.sources,
        "macs": cost.macs,
        **({"note": cost.note} if cost.note else {}),
    }


def layer_rows(folder: BuildFolder, fpgapart: str, clock_ns: float) -> tuple[list[dict], dict]:
    """One row per hardware layer of the final model, in graph order, and the network costs."""
    from qonnx.core.modelwrapper import ModelWrapper

    from .layer_costs import network_costs

    model = ModelWrapper(str(folder.final_model))
    costs = network_costs(model, fpgapart, clock_ns, synthesized_layers(folder))
    finn_cycles = _load(folder.layer_cycles)
    finn_res = _load(folder.layer_resources)
    rows = []
    for cost in costs["layers"]:
        row = cost_row(cost)
        res = finn_res.get(cost.name, {})
        row["finn"] = {
            "cycles": int(finn_cycles.get(cost.name, 0)),
            **{r: float(res.get(r, 0)) for r in FINN_RESOURCES},
        }
        rows.append(row)
    return rows, costs


def hls_layers(rows: list[dict]) -> dict:
    """How many layers are HLS variants (``*_hls``), which, and of which op types."""
    names = [r["name"] for r in rows if r["op_type"].endswith("_hls")]
    types = Counter(r["op_type"] for r in rows if r["op_type"].endswith("_hls"))
    return {"count": len(names), "layers": names, "op_types": dict(sorted(types.items()))}


def host_nodes(folder: BuildFolder) -> list[dict]:
    """The nodes of FINN's dataflow parent model outside the accelerator (run on the host)."""
    from qonnx.core.modelwrapper import ModelWrapper

    path = folder.dataflow_parent
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
    project's ``IntLayerNorm_*``), their kinds, and the sources of their numbers."""
    norms = [r for r in rows if r["op_type"].split("_")[0] in ("LayerNorm", "IntLayerNorm")]
    kinds: dict[str, int] = {}
    for norm in norms:
        kinds[norm["op_type"]] = kinds.get(norm["op_type"], 0) + 1
    return {
        "layers": len(norms),
        "kinds": kinds,
        "max_cycles": max((r["cycles"] for r in norms), default=0),
        **{r: sum(n[r] for n in norms) for r in RESOURCES},
        "sources": sorted({s for n in norms for s in n["sources"].values()}),
    }


def write_summary(folder: BuildFolder, cfg, seconds: float, hardware: bool) -> dict:
    """Collect the summary of a finished build in ``folder`` (see module docstring)."""
    perf = _load(folder.network_performance)
    fpgapart = cfg._resolve_fpga_part()  # noqa: SLF001 (FINN's own resolution)
    rows, costs = layer_rows(folder, fpgapart, cfg.synth_clk_period_ns)
    finn_missing_lut = [r["name"] for r in rows if r["sources"]["LUT"] != "finn"]
    return {
        "fpga_part": fpgapart,
        "board": cfg.board,
        "clock_ns": cfg.synth_clk_period_ns,
        "target_fps": cfg.target_fps,
        "folding_config": str(cfg.folding_config_file) if cfg.folding_config_file else None,
        "build_seconds": round(seconds, 1),
        "hardware_steps": hardware,
        "layers": rows,
        "layer_counts": dict(sorted(Counter(r["op_type"] for r in rows).items())),
        "hls_layers": hls_layers(rows),
        "host_nodes": host_nodes(folder),
        "inserted": [cost_row(c) for c in costs["inserted"]],
        "critical_path_cycles": costs["critical_path_cycles"],
        "max_cycles": costs["max_cycles"],
        "bottleneck": costs["bottleneck"],
        "bottleneck_op": costs["bottleneck_op"],
        "estimated_fps": costs["estimated_fps"],
        "estimated_latency_ns": costs["critical_path_cycles"] * cfg.synth_clk_period_ns,
        "mac_utilisation": costs["mac_utilisation"],
        "macs_per_frame": costs["macs_per_frame"],
        "mac_lanes": costs["mac_lanes"],
        "totals": costs["totals"],
        "totals_by_source": costs["totals_by_source"],
        "part_capacity": costs["part_capacity"],
        "part_fraction": costs["part_fraction"],
        "missing_lut_estimates": [r["name"] for r in rows if not r["LUT"]],
        "missing_cycle_estimates": [r["name"] for r in rows if r["sources"]["cycles"] != "finn"],
        "finn_missing_lut_estimates": finn_missing_lut,
        "finn_totals": {r: sum(row["finn"][r] for row in rows) for r in FINN_RESOURCES},
        "finn_performance": perf,
        "layernorm": layernorm_cost(rows),
        "verification": folder.read_verification(),
        "final_model": str(folder.final_model.absolute()),
        "intermediate_models": str(folder.intermediate_models.absolute()),
        "verify_input": str(Path(cfg.verify_input_npy).absolute()),
        "verify_expected_output": str(Path(cfg.verify_expected_output_npy).absolute()),
    }


def refresh_summary(folder: BuildFolder) -> dict:
    """Cost a finished build again (after synthesis or a model change) and rewrite its summary;
    the build's status, time, message, verification source and the rest are kept. A build that
    did not finish is refused (:meth:`~qmlp_brevitas.layout.BuildFolder.read_summary`)."""
    from finn.builder.build_dataflow_config import DataflowBuildConfig

    old = folder.read_summary()
    cfg = DataflowBuildConfig.from_json(folder.build_config.read_text())
    fresh = write_summary(folder, cfg, old.get("build_seconds", 0.0), old.get("hardware_steps"))
    summary = {**old, **fresh}
    save_summary(folder, summary)
    return summary


def save_summary(folder: BuildFolder, summary: dict) -> Path:
    """Write ``summary.json`` atomically."""
    from ..export import write_json

    write_json(folder.summary, summary)
    return folder.summary


SOURCE_MARK = {"finn": "", "modelled": "*", "synthesized": "s"}


def _cell(row: dict, res: str) -> str:
    return f"{row[res]:,.0f}{SOURCE_MARK[row['sources'][res]]}"


def format_summary(summary: dict) -> str:
    """The summary table and totals as text (``*`` modelled, ``s`` synthesized, else FINN's)."""
    head = f"{'layer':<34} {'op':<28} {'PE':>4} {'SIMD':>4} {'cycles':>9} " + " ".join(
        f"{r:>9}" for r in RESOURCES
    )
    lines = [head, "-" * len(head)]
    for row in summary["layers"] + summary["inserted"]:
        cells = [
            f"{row['name'][:34]:<34}",
            f"{row['op_type'][:28]:<28}",
            f"{row.get('PE', '-'):>4}",
            f"{row.get('SIMD', '-'):>4}",
            f"{str(row['cycles']) + SOURCE_MARK[row['sources']['cycles']]:>9}",
        ]
        cells += [f"{_cell(row, r):>9}" for r in RESOURCES]
        lines.append(" ".join(cells))
    clock_mhz = 1000.0 / summary["clock_ns"]
    fps, latency = summary["estimated_fps"], summary["estimated_latency_ns"]
    totals, fraction = summary["totals"], summary["part_fraction"] or {}
    by_source = summary["totals_by_source"]
    lines += [
        "-" * len(head),
        "(* the project's model, s synthesized with Yosys, unmarked FINN's estimate)",
        f"critical path   {summary['critical_path_cycles']} cycles; bottleneck "
        f"{summary['bottleneck']} ({summary['bottleneck_op']}, {summary['max_cycles']} cycles)",
        f"throughput      {fps:,.0f} frames/s at {clock_mhz:.0f} MHz "
        f"(target {summary['target_fps'] or 'from folding config'})",
        f"latency         {latency / 1000:.2f} us",
        f"MAC utilisation {summary['mac_utilisation']:.3f} ({summary['macs_per_frame']:,} MACs "
        f"per frame on {summary['mac_lanes']} PE x SIMD lanes)",
        "totals          "
        + ", ".join(
            f"{r} {totals[r]:,.0f}"
            + (f" ({100 * fraction[r]:.1f}%)" if fraction.get(r) is not None else "")
            for r in RESOURCES
        )
        + (f" of {summary['fpga_part']}" if fraction else ""),
        "  of which      "
        + "; ".join(
            f"{src}: " + ", ".join(f"{r} {v:,.0f}" for r, v in by_source[src].items() if v)
            for src in by_source
            if any(by_source[src].values())
        ),
    ]
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
            + f", up to {norm['max_cycles']} cycles ({', '.join(norm['sources'])})"
        )
    if summary.get("verification_note"):
        lines.append(f"verified on     {summary['verification_note']}")
    for stage, res in summary["verification"].items():
        verdict = "match" if res["ok"] else "MISMATCH"
        lines.append(f"verify {stage:<16} {verdict} (max abs difference {res['max_abs_diff']:.3g})")
    return "\n".join(lines)
