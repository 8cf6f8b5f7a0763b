"""Accuracy against hardware: bit widths and Q-MLP vs naive quantization, at the best folding.

For each design point (a trained, exported run of :mod:`qmlp_brevitas.ablation`'s plan: Q-MLP
at W2A2, W4A4, W8A8, the same with FINN's float LayerNorm, and the naive model made mappable),
one FINN estimate build gives the folded graph, and the folding search
(:mod:`qmlp_brevitas.finn.folding_search`) finds the highest-fps folding within the whole part
and within each LUT budget, from the cost models. The result per point: test accuracy, the
smallest design's LUTs, and per budget the modelled frames/s, LUTs and what stopped the search.

The naive model quantizes MLP-Mixer's GELU, and GELU's ``Erf`` has no FINN hardware layer, so
the naive row that maps is the ablation's "+ bounded activation" row: naive min-max symmetric
quantizers with ReLU6, the closest mappable naive model.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from .layout import RunFolder

DEFAULT_LUT_BUDGETS = (30_000,)


@dataclass(frozen=True)
class DesignPoint:
    """One trained model to cost: a label and its run folder."""

    label: str
    technique: str
    bits: int
    run_dir: Path
    requant_bits: int | None = None  # thresholds of this width as exact Requant layers
    row: str = "int_layernorm"  # the ablation row (qmlp_brevitas.ablation.plan) it trains


# (technique, ablation row) of every design point: the Q-MLP model (integer LayerNorm, the
# preset), the Q-MLP with FINN's float LayerNorm (the row before), and the naive model made
# mappable.
QMLP, QMLP_FLOAT_LN, NAIVE = "Q-MLP", "Q-MLP, float LayerNorm", "naive + ReLU6"
TECHNIQUE_ROWS = {QMLP: "int_layernorm", QMLP_FLOAT_LN: "asymmetric", NAIVE: "bounded"}


def default_points(ablation_out: str | Path, model: str = "qmlp_mixer_28") -> list[DesignPoint]:
    """Q-MLP, Q-MLP with float LayerNorm and naive (ReLU6) at W2A2, W4A4, W8A8 (and Q-MLP W8A8
    with Requant layers), seed 0 of the ablation's run folders."""
    root = Path(ablation_out) / model
    points = []
    for bits in (2, 4, 8):
        for technique, row in TECHNIQUE_ROWS.items():
            run = root / f"w{bits}a{bits}" / row / "seed0"
            label = f"{technique} W{bits}A{bits}"
            points.append(DesignPoint(label, technique, bits, run, row=row))
            if bits == 8 and technique == QMLP:
                points.append(
                    DesignPoint(f"{label}, Requant", "Q-MLP + Requant", bits, run, 8, row)
                )
    return points


def cost_point(
    point: DesignPoint,
    budgets: tuple[int, ...] = DEFAULT_LUT_BUDGETS,
    part: str = "xczu7ev-ffvc1156-2-e",
    clock_ns: float = 5.0,
) -> dict:
    """Accuracy and the folding search's results for one point (cached in its build folder,
    :meth:`~qmlp_brevitas.layout.RunFolder.design_build`)."""
    from qonnx.core.modelwrapper import ModelWrapper

    from .export import write_json
    from .finn.build import BuildRequest, run_build
    from .finn.folding_search import BudgetTooSmallError, search_folding
    from .finn.parts import parse_budget

    run = RunFolder(point.run_dir)
    metrics = run.read_metrics()
    folder = run.design_build(point.requant_bits)
    cached = folder.design_point
    key = {
        "budgets": list(budgets),
        "part": part,
        "clock_ns": clock_ns,
        "requant_bits": point.requant_bits,
        "search_counts_inserted": True,  # searches that count DWCs and FIFOs (not older caches)
    }
    if cached.is_file():
        saved = json.loads(cached.read_text())
        if saved.get("request") == key:
            return saved
    request = BuildRequest(
        run.root,
        folder.root,
        part=part,
        clock_ns=clock_ns,
        target_fps=1000,
        requant_bits=point.requant_bits,
    )
    summary = run_build(request)
    model = ModelWrapper(str(folder.search_model))
    searches = {}
    for name, text in [("part", None)] + [(f"LUT={b}", f"LUT={b}") for b in budgets]:
        try:
            found = search_folding(model, part, clock_ns, parse_budget(text, part))
            searches[name] = {
                "fps": found.estimated_fps,
                "LUT": found.totals["LUT"],
                "DSP": found.totals["DSP"],
                "bottleneck": found.bottleneck,
                "limited_by": found.limited_by,
            }
        except BudgetTooSmallError as err:
            searches[name] = {"fps": None, "LUT": None, "DSP": None, "limited_by": str(err)}
    result = {
        "label": point.label,
        "technique": point.technique,
        "bits": point.bits,
        "test_acc": metrics["test_acc"],
        "layers": len(summary["layers"]),
        "requant_layers": sum(r["op_type"].startswith("Requant") for r in summary["layers"]),
        "verified": all(s["ok"] for s in summary["verification"].values()),
        "lut_1000fps": summary["totals"]["LUT"],
        "fps_1000fps": summary["estimated_fps"],
        "min_lut": _min_lut(model, part, clock_ns),
        "search": searches,
        "request": key,
    }
    write_json(cached, result)
    return result


def _min_lut(model, part: str, clock_ns: float) -> float:
    """LUTs of the smallest folding (PE = SIMD = 1 everywhere)."""
    from .finn.folding_search import BudgetTooSmallError, search_folding
    from .finn.parts import parse_budget

    try:
        search_folding(model, part, clock_ns, parse_budget("LUT=0", part))
    except BudgetTooSmallError as err:
        return err.totals["LUT"]
    raise AssertionError("a design of 0 LUT cannot fit")


def markdown(results: list[dict], budgets: tuple[int, ...] = DEFAULT_LUT_BUDGETS) -> str:
    """The design-space table."""
    head = ["design", "test acc.", "layers", "LUT (smallest)", "fps (whole part)", "LUT there"]
    for b in budgets:
        head += [f"fps within {b // 1000}k LUT"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for r in results:
        part = r["search"]["part"]
        cells = [
            r["label"],
            f"{100 * r['test_acc']:.2f}%",
            str(r["layers"]),
            f"{r['min_lut']:,.0f}",
            f"{part['fps']:,.0f}" if part["fps"] else "-",
            f"{part['LUT']:,.0f}" if part["LUT"] else "-",
        ]
        for b in budgets:
            s = r["search"][f"LUT={b}"]
            cells.append(f"{s['fps']:,.0f}" if s["fps"] else "none fits")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(results: list[dict], path: str | Path) -> Path:
    """Accuracy against LUTs (smallest design, best design in the part) and against fps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_lut, ax_fps) = plt.subplots(1, 2, figsize=(11, 4.2))
    markers = {QMLP: "o", QMLP_FLOAT_LN: "v", NAIVE: "s", "Q-MLP + Requant": "D"}
    colors = {2: "tab:red", 4: "tab:blue", 8: "tab:green"}
    for r in results:
        acc = 100 * r["test_acc"]
        m, c = markers.get(r["technique"], "^"), colors.get(r["bits"], "k")
        part = r["search"]["part"]
        ax_lut.scatter(r["min_lut"] / 1000, acc, marker=m, color=c, facecolors="none")
        if part["LUT"]:
            ax_lut.scatter(part["LUT"] / 1000, acc, marker=m, color=c)
            ax_lut.plot([r["min_lut"] / 1000, part["LUT"] / 1000], [acc, acc], color=c, lw=0.6)
            ax_fps.scatter(part["fps"] / 1000, acc, marker=m, color=c, label=r["label"])
    ax_lut.set_xlabel("LUT (thousands): open = smallest folding, filled = fastest in the part")
    ax_fps.set_xlabel("modelled frames/s (thousands), fastest folding in the part")
    for ax in (ax_lut, ax_fps):
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    ax_fps.legend(fontsize=7)
    fig.suptitle("qmlp_mixer_28 on Fashion-MNIST, xczu7ev at 200 MHz (FINN + project cost models)")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_csv(results: list[dict], path: str | Path) -> Path:
    fields = ["label", "technique", "bits", "test_acc", "layers", "min_lut", "verified"]
    path = Path(path)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*fields, "fps_part", "lut_part", "limited_by_part"])
        for r in results:
            part = r["search"]["part"]
            writer.writerow([r[k] for k in fields] + [part["fps"], part["LUT"], part["limited_by"]])
    return path
