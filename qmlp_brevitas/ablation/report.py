"""The ablation's reports: a Markdown table with per-bit-width details, a CSV file, a bar plot.

Each row's accuracy is the mean over seeds with the sample standard deviation; the change
against the previous row is flagged when it lies within the seeds' spread.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from .plan import AblationConfig, RowResult


def _fmt(result: RowResult) -> str:
    spread = "" if math.isnan(result.std) else f" ± {100 * result.std:.2f}"
    return f"{100 * result.mean:.2f}{spread}"


def _by_bits(results: Sequence[RowResult]) -> dict[str, list[RowResult]]:
    groups: dict[str, list[RowResult]] = {}
    for r in results:
        groups.setdefault(r.bit_label, []).append(r)
    return groups


def delta_note(prev: RowResult, cur: RowResult) -> str:
    """Accuracy change from the previous row in points, flagged when within the seed spread."""
    if cur.same_as:
        return "same model as previous row"
    delta = 100 * (cur.mean - prev.mean)
    spreads = [s for s in (prev.std, cur.std) if not math.isnan(s)]
    note = ""
    if spreads and abs(delta) <= 100 * max(spreads):
        note = " (within seed spread)"
    return f"{delta:+.2f}{note}"


def headline(results: Sequence[RowResult]) -> list[str]:
    """Per bit width: how much the naive model loses against float and how much Q-MLP recovers."""
    float_rows = [r for r in results if r.bits is None]
    lines = []
    for label, group in _by_bits(results).items():
        if label == "float" or not float_rows:
            continue
        ref, naive, qmlp = float_rows[0].mean, group[0].mean, group[-1].mean
        loss = 100 * (ref - naive)
        gain = 100 * (qmlp - naive)
        if qmlp >= ref:
            share = " (Q-MLP reaches or passes float)"
        else:
            share = f" ({100 * gain / loss:.0f}% of the loss)" if loss > 0 else ""
        lines.append(
            f"{label}: naive quantization {100 * naive:.2f}% vs float {100 * ref:.2f}% "
            f"({-loss:+.2f} points); Q-MLP {100 * qmlp:.2f}% recovers {gain:+.2f} points{share}."
        )
    return lines


def markdown_table(cfg: AblationConfig, results: Sequence[RowResult]) -> str:
    """Overview (rows x bit widths) and one detail table per bit width, as Markdown."""
    groups = _by_bits(results)
    labels = [b for b in groups if b != "float"]
    n_train = "all" if cfg.train_limit is None else str(cfg.train_limit)
    n_test = "all" if cfg.test_limit is None else str(cfg.test_limit)
    lines = [
        f"## Ablation: {cfg.model} on {cfg.data}",
        "",
        f"Test accuracy (%), mean ± sample std over seeds {list(cfg.seeds)}; {cfg.epochs} "
        f"epoch(s), batch {cfg.batch_size}, lr {cfg.lr}, {n_train} training / {n_test} test "
        "images; every row the same budget.",
        "",
        "| row | " + " | ".join(["float", *labels]) + " |",
        "|---|" + "---:|" * (1 + len(labels)),
    ]
    rows = list({r.row.key: r.row for r in results}.values())
    for row in rows:
        cells = []
        for label in ["float", *labels]:
            match = [r for r in groups.get(label, []) if r.row.key == row.key]
            cells.append(_fmt(match[0]) if match else "")
        lines.append(f"| {row.label} | " + " | ".join(cells) + " |")
    lines += ["", *headline(results)]
    for label in labels:
        group = groups[label]
        extra = list(dict.fromkeys(k for r in group for k in r.extra))
        lines += [
            "",
            f"### {label}",
            "",
            "| row | accuracy (%) | per seed | Δ previous row | " + " | ".join(extra) + " |",
            "|---|---:|---|---|" + "---:|" * len(extra),
        ]
        for i, r in enumerate(group):
            seeds = ", ".join(f"{100 * a:.2f}" for a in r.accs)
            delta = "" if i == 0 else delta_note(group[i - 1], r)
            cells = [str(r.extra.get(k, "")) for k in extra]
            lines.append(
                f"| {r.row.label} | {_fmt(r)} | {seeds} | {delta} | " + " | ".join(cells) + " |"
            )
    return "\n".join(lines) + "\n"


def _mean_of(metrics: Sequence[dict], key: str) -> float:
    return statistics.fmean(float(m[key]) for m in metrics)


CSV_FIELDS = [
    "model",
    "row",
    "label",
    "bits",
    "seeds",
    "n",
    "mean_acc",
    "std_acc",
    "min_acc",
    "max_acc",
    "accs",
    "same_as",
    "train_seconds_mean",
]


def write_csv(path: str | Path, cfg: AblationConfig, results: Sequence[RowResult]) -> Path:
    extra = list(dict.fromkeys(k for r in results for k in r.extra))
    path = Path(path)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS + extra)
        writer.writeheader()
        for r in results:
            writer.writerow(
                {
                    "model": cfg.model,
                    "row": r.row.key,
                    "label": r.row.label,
                    "bits": r.bit_label,
                    "seeds": " ".join(map(str, r.seeds)),
                    "n": len(r.accs),
                    "mean_acc": f"{r.mean:.6f}",
                    "std_acc": "" if math.isnan(r.std) else f"{r.std:.6f}",
                    "min_acc": f"{min(r.accs):.6f}",
                    "max_acc": f"{max(r.accs):.6f}",
                    "accs": " ".join(f"{a:.6f}" for a in r.accs),
                    "same_as": r.same_as or "",
                    "train_seconds_mean": f"{_mean_of(r.metrics, 'train_seconds'):.1f}",
                    **r.extra,
                }
            )
    return path


def plot_ablation(cfg: AblationConfig, results: Sequence[RowResult], path: str | Path) -> Path:
    """Grouped bars: accuracy per row (x) and bit width (colour), std error bars, seed dots;
    hatched bars reuse the previous row's model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = _by_bits(results)
    labels = [b for b in groups if b != "float"]
    rows = groups[labels[0]]
    fig, ax = plt.subplots(figsize=(1.3 * len(rows) + 3, 4.8))
    width = 0.8 / len(labels)
    values: list[float] = []
    for j, label in enumerate(labels):
        for i, r in enumerate(groups[label]):
            x = i - 0.4 + width * (j + 0.5)
            err = None if math.isnan(r.std) else 100 * r.std
            ax.bar(
                x,
                100 * r.mean,
                width,
                yerr=err,
                color=f"C{j}",
                capsize=3,
                label=label if i == 0 else None,
                alpha=0.85,
                hatch="//" if r.same_as else None,  # the previous row's model, reused
            )
            ax.plot([x] * len(r.accs), [100 * a for a in r.accs], "k.", ms=4)
            values.extend(100 * a for a in r.accs)
    for r in groups.get("float", []):
        ax.axhline(100 * r.mean, color="k", ls="--", lw=1, label=f"float {_fmt(r)}%")
        values.extend(100 * a for a in r.accs)
    ax.set_xticks(range(len(rows)))
    names = [
        r.row.label.split(":")[0] + ("\n(same model as previous)" if r.same_as else "")
        for r in groups[labels[0]]
    ]
    ax.set_xticklabels(names, rotation=20, ha="right", fontsize=8)
    ax.set_ylim(max(0.0, min(values) - 5), min(100.0, max(values) + 6))
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"Q-MLP ablation, {cfg.model} on {cfg.data} ({len(cfg.seeds)} seed(s))")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", ncol=len(labels) + 1)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_reports(cfg: AblationConfig, results: Sequence[RowResult]) -> dict[str, Path]:
    """``ablation.md``, ``ablation.csv``, ``ablation.png`` and ``ablation.json`` in the model's
    folder of ``cfg.out``."""
    out = Path(cfg.out) / cfg.model
    out.mkdir(parents=True, exist_ok=True)
    md = out / "ablation.md"
    md.write_text(markdown_table(cfg, results))
    (out / "ablation.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    return {
        "table": md,
        "csv": write_csv(out / "ablation.csv", cfg, results),
        "plot": plot_ablation(cfg, results, out / "ablation.png"),
        "config": out / "ablation.json",
    }
