"""The Q-MLP ablation: naive quantization, then the five techniques added one at a time (Sec. 5).

Rows, in order, all trained with the same :class:`~qmlp_brevitas.train.TrainConfig` budget:

* ``float`` -- the family's original architecture (own norm, GELU, one token-mixing MLP), float;
* ``naive`` -- the same architecture quantized with min-max symmetric quantizers (preset
  ``"naive"``);
* then, cumulatively, each technique switched to its Q-MLP setting (the values of the library's
  ``"qmlp"`` preset, :data:`qmlp_brevitas.recipe.PRESETS`): LayerNorm (Sec. 4.1, the paper's
  float LayerNorm), bounded activation (4.2), percentile calibration (4.3), multiple
  token-mixing MLPs (4.4) and the asymmetric quantizer on the sensitive operations (4.5);
  finally LayerNorm computed on integers as the hardware does (the preset's norm), so that the
  last row is full Q-MLP as the library builds it.

Each (row, bit width, seed) is one run folder under ``out/<model>/<bits>/<row>/seed<k>`` written
by :func:`qmlp_brevitas.train.train`. A run whose ``metrics.json`` exists is not trained again; an
interrupted one resumes from its checkpoint. A row whose model is identical to the previous
row's (LayerNorm on MLP-Mixer, whose original norm already is LayerNorm) reuses its runs.

Columns computed per quantized row plug in as :data:`ColumnHook` functions: :func:`size_column`,
and with ``hardware_fps`` set the FINN cost of :func:`qmlp_brevitas.finn.cost.hardware_column`
(does the row map fully to FINN hardware layers, and at what frames/s, LUT, DSP and BRAM).
"""

from __future__ import annotations

import csv
import json
import math
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from tqdm import tqdm

from .models import ORIGINAL_NORM, PAPER_VARIANTS, SMALL_VARIANTS
from .recipe import PRESETS, make_recipe
from .train import RESUMABLE_CHANGES, TrainConfig, train

# (row key, table label, recipe field switched on, paper section), in the order they are added.
# Each switches its field to the qmlp preset's value, except where STEP_VALUES says otherwise.
TECHNIQUES = (
    ("layernorm", "+ LayerNorm", "norm", "4.1"),
    ("bounded", "+ bounded activation", "act", "4.2"),
    ("percentile", "+ percentile calibration", "calibration", "4.3"),
    ("token_groups", "+ multiple token-mixing MLPs", "token_groups", "4.4"),
    ("asymmetric", "+ asymmetric quantizer", "asymmetric", "4.5"),
    ("int_layernorm", "+ integer LayerNorm (= Q-MLP)", "norm", "4.1"),
)
STEP_VALUES = {"layernorm": "layernorm"}  # the paper's LayerNorm is a float one
SPLIT_SIZES = {"fashion_mnist": (60000, 10000), "cifar10": (50000, 10000)}  # (train, test)
QUICK = dict(train_limit=192, test_limit=192, epochs=1, batch_size=64, calib_batches=2)
# TrainConfig fields that may differ between a finished run and the ablation that reuses it:
# those the library lets a resumed run change, except the budget (epochs), and data locations.
_IGNORED_FIELDS = (RESUMABLE_CHANGES - {"epochs"}) | {"download", "data_dir"}


@dataclass(frozen=True)
class AblationRow:
    """One row: recipe overrides on the naive preset; ``quantized=False`` for the float row."""

    key: str
    label: str
    overrides: dict = field(default_factory=dict)
    quantized: bool = True
    section: str = ""


def ablation_rows() -> list[AblationRow]:
    """Float, naive, then the techniques added one at a time with the ``qmlp`` preset's values."""
    rows = [
        AblationRow("float", "float (original architecture)", quantized=False),
        AblationRow("naive", "naive quantization"),
    ]
    overrides: dict = {}
    for key, label, setting, section in TECHNIQUES:
        overrides = {**overrides, setting: STEP_VALUES.get(key, PRESETS["qmlp"][setting])}
        rows.append(
            AblationRow(key, f"{label}: {setting}={overrides[setting]}", overrides, True, section)
        )
    if make_recipe("naive", **rows[-1].overrides) != make_recipe("qmlp"):
        raise RuntimeError("the last ablation row must equal the qmlp preset; update TECHNIQUES")
    return rows


@dataclass
class AblationConfig:
    """The ablation plan: model, bit widths, seeds and the training budget shared by every run."""

    model: str = "qmlp_mixer_28"
    bits: tuple[int, ...] = (8, 4)
    seeds: tuple[int, ...] = (0, 1)
    epochs: int = 1
    batch_size: int = 128
    lr: float = TrainConfig.lr
    train_limit: int | None = None
    test_limit: int | None = None
    calib_batches: int = TrainConfig.calib_batches
    data: str = "fashion_mnist"
    data_dir: str = "data"
    export: bool = False
    hardware_fps: int | None = None  # FINN cost columns at this folding target (needs export)
    hardware_bits: tuple[int, ...] | None = None  # bit widths that get them (default: all)
    out: str = "runs/ablation"

    def __post_init__(self):
        self.bits, self.seeds = tuple(self.bits), tuple(self.seeds)
        if self.hardware_fps is not None:
            if self.hardware_fps <= 0:
                raise ValueError(f"--hardware target must be positive, got {self.hardware_fps}")
            self.export = True  # the FINN build starts from the run's QONNX export
        if self.hardware_bits is not None:
            self.hardware_bits = tuple(self.hardware_bits)
            unknown = sorted(set(self.hardware_bits) - set(self.bits))
            if unknown:
                raise ValueError(f"--hardware-bits {unknown} are not among --bits {self.bits}")
        if self.model not in SMALL_VARIANTS and self.model not in PAPER_VARIANTS:
            known = ", ".join(sorted(SMALL_VARIANTS))
            raise ValueError(f"unknown model {self.model!r}; choose one of {known}")
        if not self.bits:
            raise ValueError("give at least one bit width (--bits 8 4)")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct and at least one, got {list(self.seeds)}")
        for b in self.bits:
            make_recipe("naive", w_bits=b, a_bits=b)  # validates the bit width

    @classmethod
    def quick(cls, **kwargs) -> AblationConfig:
        """The whole pipeline on a tiny slice (a few hundred images, one epoch, one seed)."""
        return cls(**{"seeds": (0,), **QUICK, **kwargs})

    def family(self) -> str:
        return {**SMALL_VARIANTS, **PAPER_VARIANTS}[self.model]["family"]

    def bit_labels(self) -> list[str]:
        return [f"W{b}A{b}" for b in self.bits]

    def run_dir(self, row: AblationRow, bits: int | None, seed: int) -> Path:
        sub = "float" if bits is None else f"w{bits}a{bits}"
        return Path(self.out) / self.model / sub / row.key / f"seed{seed}"

    def train_config(self, row: AblationRow, bits: int | None, seed: int) -> TrainConfig:
        return TrainConfig(
            model=self.model,
            data=self.data,
            data_dir=self.data_dir,
            w_bits=bits,
            a_bits=bits,
            preset="naive",
            recipe=dict(row.overrides),
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            calib_batches=self.calib_batches,
            train_limit=self.train_limit,
            test_limit=self.test_limit,
            seed=seed,
            export=self.export,
            out=str(self.run_dir(row, bits, seed)),
        )


@dataclass
class RowResult:
    """The runs of one (row, bit width): accuracies per seed and their summary."""

    row: AblationRow
    bits: int | None
    seeds: list[int]
    accs: list[float]
    metrics: list[dict]
    run_dirs: list[Path]
    same_as: str | None = None  # key of the row whose runs are reused
    extra: dict = field(default_factory=dict)

    @property
    def bit_label(self) -> str:
        return "float" if self.bits is None else f"W{self.bits}A{self.bits}"

    @property
    def mean(self) -> float:
        return statistics.fmean(self.accs)

    @property
    def std(self) -> float:
        """Sample standard deviation over seeds; NaN for a single seed."""
        return statistics.stdev(self.accs) if len(self.accs) > 1 else math.nan


ColumnHook = Callable[[RowResult], Mapping[str, object]]


def size_column(result: RowResult) -> dict[str, object]:
    """Model size at the quantized bit widths (MB), from the runs' metrics."""
    return {"size (MB)": round(result.metrics[0]["model_size_mb"], 4)}


def default_columns(cfg: AblationConfig) -> list[ColumnHook]:
    """The size column, and the FINN cost columns when ``cfg.hardware_fps`` is set."""
    if cfg.hardware_fps is None:
        return [size_column]
    from .finn.cost import hardware_column

    build = hardware_column(cfg.hardware_fps)
    wanted = cfg.hardware_bits or cfg.bits

    def hardware(result: RowResult) -> Mapping[str, object]:
        return build(result) if result.bits in wanted else {}

    return [size_column, hardware]


def effective_settings(cfg: AblationConfig, row: AblationRow, bits: int | None) -> dict:
    """The settings that decide the trained model (the family's norm for ``norm="original"``)."""
    recipe = make_recipe("naive", w_bits=bits, a_bits=bits, **row.overrides).to_dict()
    if recipe["norm"] == "original":
        recipe["norm"] = ORIGINAL_NORM[cfg.family()]
    if bits is None:  # quantizer settings do not change a float model
        for name in ("calibration", "percentile", "asymmetric", "input_bits"):
            recipe.pop(name)
    return recipe


def _check_finished(run: Path, tcfg: TrainConfig) -> None:
    saved = json.loads((run / "config.json").read_text())
    now = tcfg.to_dict()
    changed = sorted(k for k in now if k not in _IGNORED_FIELDS and saved.get(k) != now[k])
    if changed:
        details = ", ".join(f"{k}: {saved.get(k)!r} -> {now[k]!r}" for k in changed if k in saved)
        new = [k for k in changed if k not in saved]
        if new:
            details += ("; " if details else "") + f"settings added to the library since: {new}"
        raise ValueError(
            f"{run} was trained with other settings ({details}); its result would not be "
            "comparable. Use another --out, or delete that folder to train it again"
        )


def run_one(tcfg: TrainConfig, log=print) -> tuple[dict, bool]:
    """The metrics of one run, training (or resuming) it unless it finished; (metrics, trained)."""
    run = Path(tcfg.out)
    metrics_path = run / "metrics.json"
    if metrics_path.is_file():
        _check_finished(run, tcfg)
        return json.loads(metrics_path.read_text()), False
    return train(tcfg, resume=True, log=log), True


def run_ablation(
    cfg: AblationConfig,
    rows: Sequence[AblationRow] | None = None,
    columns: Iterable[ColumnHook] | None = None,
    log=tqdm.write,
) -> list[RowResult]:
    """Train every (row, bit width, seed) not yet finished; the results in table order.

    ``columns`` (default :func:`default_columns`) add cells to each quantized row.
    """
    rows = list(rows or ablation_rows())
    columns = default_columns(cfg) if columns is None else list(columns)
    plan: list[tuple[AblationRow, int | None]] = []
    for row in rows:
        plan.extend([(row, None)] if not row.quantized else [(row, b) for b in cfg.bits])
    results: list[RowResult] = []
    previous: dict[int | None, tuple[dict, RowResult]] = {}
    bar = tqdm(total=len(plan) * len(cfg.seeds), desc="ablation runs", dynamic_ncols=True)
    trained = shared = 0
    try:
        for row, bits in plan:
            settings = effective_settings(cfg, row, bits)
            prev = previous.get(bits)
            if prev is not None and prev[0] == settings:
                base = prev[1]
                result = replace(base, row=row, same_as=base.same_as or base.row.key, extra={})
                shared += len(cfg.seeds)
                bar.update(len(cfg.seeds))
            else:
                accs, metrics, dirs = [], [], []
                for seed in cfg.seeds:
                    tcfg = cfg.train_config(row, bits, seed)
                    bar.set_postfix_str(f"{row.key} {bits or 'float'} seed {seed}")
                    m, was_trained = run_one(tcfg, log=log)
                    trained += was_trained
                    accs.append(float(m["test_acc"]))
                    metrics.append(m)
                    dirs.append(Path(tcfg.out))
                    bar.update(1)
                result = RowResult(row, bits, list(cfg.seeds), accs, metrics, dirs)
            if bits is not None:
                for hook in columns:
                    result.extra.update(hook(result))
            previous[bits] = (settings, result)
            results.append(result)
    finally:
        bar.close()
    finished = len(plan) * len(cfg.seeds) - trained - shared
    log(
        f"ablation: {trained} runs trained or resumed, {finished} finished earlier, "
        f"{shared} shared with the previous row (same model)"
    )
    return results


# ---------------------------------------------------------------------------------------------
# Reports


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


# ---------------------------------------------------------------------------------------------
# Run-time estimate


def time_training(tcfg: TrainConfig, steps: int = 10) -> dict[str, float]:
    """Seconds per training image and per test image of one run's model on this machine.

    Wall-clock (``*_s_per_image``) and CPU time of this process, all threads
    (``*_cpu_s_per_image``): on a shared machine the wall-clock grows with the load, the CPU time
    much less.
    """
    import torch

    from .data import build_dataset, make_loader, subset
    from .train import build_model, calibrate, evaluate

    n = steps * tcfg.batch_size
    data = subset(build_dataset(tcfg.data, tcfg.data_dir, True), n, tcfg.seed)
    model = build_model(tcfg)
    loader = make_loader(data, tcfg.batch_size, train=True, seed=tcfg.seed)
    if model.recipe.quantized:
        calibrate(model, loader, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=tcfg.lr)
    model.train()
    t0, c0 = time.perf_counter(), time.process_time()
    for x, y in loader:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    t1, c1 = time.perf_counter(), time.process_time()
    evaluate(model, make_loader(data, tcfg.batch_size, train=False))
    t2, c2 = time.perf_counter(), time.process_time()
    n = len(data)
    return {
        "train_s_per_image": (t1 - t0) / n,
        "eval_s_per_image": (t2 - t1) / n,
        "train_cpu_s_per_image": (c1 - c0) / n,
        "eval_cpu_s_per_image": (c2 - c1) / n,
    }


def estimate_seconds(
    cfg: AblationConfig, timings: Mapping[str, Mapping[str, float]], cpu: bool = False
) -> float:
    """Seconds the whole ablation takes: per run, epochs x (train + test pass).

    ``timings`` maps ``"float"`` and ``"quantized"`` to :func:`time_training` results (its CPU
    times with ``cpu=True``); rows that share the previous row's model cost nothing.
    """
    train_key, eval_key = (
        ("train_cpu_s_per_image", "eval_cpu_s_per_image")
        if cpu
        else ("train_s_per_image", "eval_s_per_image")
    )
    if cfg.data not in SPLIT_SIZES and (cfg.train_limit is None or cfg.test_limit is None):
        raise ValueError(f"the size of {cfg.data} is unknown here; set train_limit and test_limit")
    full_train, full_test = SPLIT_SIZES.get(cfg.data, (0, 0))
    n_train = min(cfg.train_limit or full_train, full_train or cfg.train_limit)
    n_test = min(cfg.test_limit or full_test, full_test or cfg.test_limit)
    total = 0.0
    rows = ablation_rows()
    for bits in [None, *cfg.bits]:
        prev = None
        for row in rows:
            if (bits is None) == row.quantized:
                continue
            settings = effective_settings(cfg, row, bits)
            if settings == prev:
                continue
            prev = settings
            t = timings["float" if bits is None else "quantized"]
            per_run = cfg.epochs * (n_train * t[train_key] + n_test * t[eval_key])
            total += per_run * len(cfg.seeds)
    return total


# ---------------------------------------------------------------------------------------------
# Command line (scripts/ablation.py)


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def build_parser():
    import argparse

    p = argparse.ArgumentParser(
        description="Q-MLP ablation on Fashion-MNIST: float, naive quantization, then the five "
        "techniques added one at a time, at each bit width and seed. Finished runs are reused; "
        "rerun the same command to resume.",
    )
    p.add_argument("--model", default="qmlp_mixer_28", choices=sorted(SMALL_VARIANTS))
    p.add_argument(
        "--bits", type=int, nargs="+", default=[8, 4], help="bit widths WnAn (add 2 for W2A2)"
    )
    p.add_argument("--seeds", type=int, nargs="+", help="seeds (default 0 1; --quick: 0)")
    p.add_argument("--epochs", type=int, help="epochs per run (default 1)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--train-limit", type=int, help="training images per run (default all)")
    p.add_argument("--test-limit", type=int, help="test images (default all)")
    p.add_argument("--data-dir", default="data")
    p.add_argument("--export", action="store_true", help="also export each quantized run to QONNX")
    p.add_argument(
        "--hardware",
        type=int,
        nargs="?",
        const=1000,
        metavar="FPS",
        help="add FINN cost columns (maps fully?, frames/s, LUT, DSP, BRAM) from an estimate "
        "build of each quantized row's first seed at this folding target (default 1000 "
        "frames/s, 200 MHz, xczu7ev); implies --export",
    )
    p.add_argument(
        "--hardware-bits",
        type=int,
        nargs="+",
        help="bit widths that get the FINN cost columns (default: all of --bits)",
    )
    p.add_argument("--out", default="runs/ablation", help="folder of all run folders and reports")
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"whole pipeline on a tiny slice ({QUICK['train_limit']} images, 1 epoch, 1 seed)",
    )
    p.add_argument(
        "--estimate",
        action="store_true",
        help="time a few training steps, print the plan's estimated run time, train nothing",
    )
    return p


def config_from_args(args) -> AblationConfig:
    given = {
        "seeds": tuple(args.seeds) if args.seeds else None,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "train_limit": args.train_limit,
        "test_limit": args.test_limit,
    }
    given = {k: v for k, v in given.items() if v is not None}
    common = dict(
        model=args.model,
        bits=tuple(args.bits),
        data_dir=args.data_dir,
        export=args.export,
        hardware_fps=args.hardware,
        hardware_bits=tuple(args.hardware_bits) if args.hardware_bits else None,
        out=args.out,
    )
    if args.quick:
        return AblationConfig.quick(**common, **given)
    return AblationConfig(**common, **given)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    cfg = config_from_args(args)
    if args.estimate:
        rows = ablation_rows()
        timings = {
            "float": time_training(cfg.train_config(rows[0], None, cfg.seeds[0])),
            "quantized": time_training(cfg.train_config(rows[-1], cfg.bits[-1], cfg.seeds[0])),
        }
        for kind, t in timings.items():
            print(
                f"{kind:9s}: {1e3 * t['train_s_per_image']:.2f} ms/training image "
                f"({1e3 * t['train_cpu_s_per_image']:.2f} ms CPU), "
                f"{1e3 * t['eval_s_per_image']:.2f} ms/test image "
                f"({1e3 * t['eval_cpu_s_per_image']:.2f} ms CPU)"
            )
        wall, cpu = estimate_seconds(cfg, timings), estimate_seconds(cfg, timings, cpu=True)
        print(
            f"estimated run time of this ablation: {wall / 60:.0f} min at the current load; "
            f"{cpu / 60:.0f} min of CPU time (threads: {torch_threads()})"
        )
        return 0
    t0 = time.time()
    try:
        results = run_ablation(cfg)
    except KeyboardInterrupt:
        print(
            "interrupted; rerun the same command to go on: finished runs are kept and the "
            "interrupted run continues from its last finished epoch",
            file=sys.stderr,
        )
        return 130
    paths = write_reports(cfg, results)
    print(paths["table"].read_text())
    print(f"took {time.time() - t0:.0f} s; reports: " + ", ".join(str(p) for p in paths.values()))
    return 0
