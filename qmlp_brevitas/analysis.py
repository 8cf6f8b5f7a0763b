"""Per-layer activation ranges at the quantization points of a model (paper Sec. 3 and 4.1-4.3).

The paper's argument for its first three techniques is an observation about ranges: the
activations of MLP-based models are wide and heavy-tailed, so a min-max quantizer spends its few
levels on outliers; LayerNorm (Sec. 4.1) and bounded activations (Sec. 4.2) narrow the ranges,
and percentile calibration (Sec. 4.3) clips what remains. This module measures that.

Every quantization point of a model is a module with a stable name (see
:mod:`qmlp_brevitas.layers`): a ``QuantIdentity`` in a quantized model, an ``nn.Identity`` in a
float one. :func:`record_ranges` hooks those modules and records, per point, what its quantizer
would be calibrated on:

* ``min`` / ``max`` over all batches (what min-max calibration uses);
* ``abs_pct``: the ``percentile`` of ``|x|`` (the symmetric percentile quantizers' threshold);
* ``low_pct`` / ``high_pct``: the ``100 - percentile`` and ``percentile`` percentiles of ``x``
  (the asymmetric zero-point quantizer's interval, Sec. 4.5).

Percentiles are computed per call with Brevitas' own rounding of the rank and averaged over
calls, which is how the library's quantizers are calibrated (``scaling_stats_momentum=None``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from itertools import product
from pathlib import Path

import torch
from brevitas.nn import QuantIdentity
from torch import nn

from .errors import ConfigError, RunFolderError

DEFAULT_PERCENTILE = 99.99
# Layer kinds, in network order: (regular expression on the module name, label).
KINDS = (
    (r"^stem\.input_quant$", "input image"),
    (r"^stem\.out_quant$", "patch embedding"),
    (r"\.token_mixing\.quants\.\d+$", "token-mixing input (after norm1)"),
    (r"\.token_mixing\.mixers\.\d+\.hidden_quant$", "token-mixing hidden (after act)"),
    (r"\.add[12]\.quant$", "residual stream"),
    (r"\.channel_quant$", "channel-mixing input (after norm2)"),
    (r"\.mlp_channels\.hidden_quant$", "channel-mixing hidden (after act)"),
    (r"^final_quant$", "final norm output"),
    (r"^head_quant$", "head input (pooled)"),
)
# The points that directly follow a norm: where LayerNorm bounds the range (Sec. 4.1).
POST_NORM_KINDS = (
    "token-mixing input (after norm1)",
    "channel-mixing input (after norm2)",
    "final norm output",
)
# The points that directly follow the activation function (Sec. 4.2).
POST_ACT_KINDS = ("token-mixing hidden (after act)", "channel-mixing hidden (after act)")


@dataclass(frozen=True)
class LayerRange:
    """The range of the values reaching one quantization point."""

    name: str
    kind: str
    min: float
    max: float
    abs_pct: float
    low_pct: float
    high_pct: float
    calls: int
    numel: int

    @property
    def abs_max(self) -> float:
        return max(abs(self.min), abs(self.max))

    @property
    def finite(self) -> bool:
        return all(math.isfinite(v) for v in (self.min, self.max, self.abs_pct))


def kind_of(name: str) -> str:
    """The layer kind of a quantization point, from its module name."""
    for pattern, label in KINDS:
        if re.search(pattern, name):
            return label
    return "other"


def quant_points(model: nn.Module) -> dict[str, nn.Module]:
    """The quantization points of ``model`` by name, in network order.

    A point is a ``QuantIdentity`` (quantized model) or ``nn.Identity`` (float model) whose name,
    or whose parent's name, ends in ``quant``/``quants``. Identities that are not quantizer slots
    (``ls1`` of an MLP-Mixer block, a ``norm="none"``) do not match.
    """
    points = {}
    for name, module in model.named_modules():
        if not isinstance(module, QuantIdentity | nn.Identity):
            continue
        parts = name.split(".")
        if any(p.endswith("quant") or p == "quants" for p in parts[-2:]):
            points[name] = module
    if not points:
        raise ConfigError(
            f"{type(model).__name__} has no quantization points (modules named '*quant' that are "
            "QuantIdentity or nn.Identity); build the model with qmlp_brevitas.models.create_qmlp"
        )
    return points


def _kth(values: torch.Tensor, k: int) -> float:
    k = min(max(k, 1), values.numel())
    return float(torch.kthvalue(values, k).values)


class _RangeRecorder:
    """Accumulates the statistics of one quantization point over forward calls."""

    def __init__(self, percentile: float):
        self.q = percentile
        self.min, self.max = math.inf, -math.inf
        self.sums = [0.0, 0.0, 0.0]
        self.calls = self.numel = 0

    def __call__(self, module, args) -> None:
        x = args[0]
        x = getattr(x, "value", x).detach().float().reshape(-1)  # a QuantTensor's values
        n = x.numel()
        if n == 0:
            return
        self.min = min(self.min, float(x.min()))
        self.max = max(self.max, float(x.max()))
        # Ranks rounded as in brevitas.core.stats (AbsPercentile, PercentileInterval).
        high_k = int(math.floor(0.01 * self.q * n + 0.5))
        low_k = int(math.ceil(0.01 * (100.0 - self.q) * n))
        for i, value in enumerate((_kth(x.abs(), high_k), _kth(x, low_k), _kth(x, high_k))):
            self.sums[i] += value
        self.calls += 1
        self.numel += n

    def result(self, name: str) -> LayerRange:
        if not self.calls:
            raise RuntimeError(f"quantization point {name} was never called in the forward pass")
        mean = [s / self.calls for s in self.sums]
        return LayerRange(
            name, kind_of(name), self.min, self.max, *mean, calls=self.calls, numel=self.numel
        )


@torch.no_grad()
def record_ranges(
    model: nn.Module, batches: Iterable, percentile: float = DEFAULT_PERCENTILE
) -> dict[str, LayerRange]:
    """Run ``batches`` (tensors or ``(x, y)`` pairs) through ``model``; ranges per point."""
    if not 50.0 < percentile <= 100.0:
        raise ConfigError(f"percentile must be in (50, 100], got {percentile!r}")
    points = quant_points(model)
    recorders = {name: _RangeRecorder(percentile) for name in points}
    handles = [m.register_forward_pre_hook(recorders[n]) for n, m in points.items()]
    was_training = model.training
    model.eval()
    seen = 0
    try:
        for batch in batches:
            x = batch[0] if isinstance(batch, list | tuple) else batch
            model(x)
            seen += 1
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    if not seen:
        raise ConfigError("no batches to record ranges on; pass at least one batch of images")
    return {name: rec.result(name) for name, rec in recorders.items()}


def widest(ranges: Mapping[str, LayerRange], kinds: Iterable[str] = POST_NORM_KINDS) -> float:
    """The largest ``max |x|`` over the points of the given kinds (a one-number summary)."""
    kinds = set(kinds)
    values = [r.abs_max for r in ranges.values() if r.kind in kinds]
    if not values:
        raise ConfigError(f"no quantization points of kinds {sorted(kinds)}")
    return max(values)


# ---------------------------------------------------------------------------------------------
# Models to analyse: variants of a registered model, or the model of a training run.


def variant_label(norm: str, act: str) -> str:
    return f"{norm} + {act}"


def float_variants(
    model_name: str,
    norms: Iterable[str] = ("affine", "layernorm"),
    acts: Iterable[str] = ("gelu", "relu6"),
    seed: int = 0,
    checkpoint: str | Path | None = None,
    **model_kwargs,
) -> dict[str, nn.Module]:
    """Float models of ``model_name``, one per (norm, act), each seeded with ``seed``.

    Other settings are the naive preset's (one token-mixing MLP), so that only the norm and the
    activation differ. ``checkpoint`` (float weights) needs exactly one norm and one activation.
    """
    from .checkpoint import load_float_weights
    from .models import create_qmlp

    combos = list(product(norms, acts))
    if not combos:
        raise ConfigError("give at least one norm and one activation to compare")
    if checkpoint is not None and len(combos) != 1:
        raise ConfigError(
            "a checkpoint holds one architecture: with --checkpoint give exactly one --norms and "
            "one --acts value, the ones it was trained with"
        )
    models = {}
    for norm, act in combos:
        torch.manual_seed(seed)
        model = create_qmlp(model_name, preset="naive", norm=norm, act=act, **model_kwargs)
        if checkpoint is not None:
            load_float_weights(model, checkpoint)
        models[variant_label(norm, act)] = model.eval()
    return models


def run_names(run_dirs: Sequence[str | Path]) -> list[str]:
    """Short distinct names for run folders: the fewest trailing path parts that differ."""
    parts = [Path(d).resolve().parts for d in run_dirs]
    if len(set(parts)) != len(parts):
        raise ConfigError(f"the same run folder is given twice: {[str(d) for d in run_dirs]}")
    for n in range(1, max(len(p) for p in parts) + 1):
        names = ["/".join(p[-n:]) for p in parts]
        if len(set(names)) == len(names):
            return names
    return ["/".join(p) for p in parts]


def load_run(run_dir: str | Path, name: str | None = None) -> tuple[str, nn.Module, dict]:
    """Label, model and config of a training run folder (config.json, checkpoint.pt)."""
    from .checkpoint import load_checkpoint, load_model_state
    from .layout import RunFolder
    from .train import TrainConfig, build_model

    run = RunFolder(run_dir)
    if not run.config.is_file():
        raise RunFolderError(
            f"{run.config} does not exist: --run must be a training run folder holding "
            "config.json and checkpoint.pt (written by qmlp-train)"
        )
    values = run.read_config()
    cfg = TrainConfig.from_dict(values)
    state = load_checkpoint(run.checkpoint)
    model = build_model(cfg)
    load_model_state(model, state, run.checkpoint)
    recipe = model.recipe
    bits = "float" if not recipe.quantized else f"W{recipe.w_bits}A{recipe.a_bits}"
    groups = f", {recipe.token_groups} token MLPs" if recipe.token_groups > 1 else ""
    label = f"{name or run.root.name}: {model.norm_kind} + {recipe.act}{groups} ({bits})"
    return label, model.eval(), values


# ---------------------------------------------------------------------------------------------
# Reports: Markdown table, JSON, plot.


def summary_table(results: Mapping[str, Mapping[str, LayerRange]]) -> str:
    """Markdown: per layer kind (rows) and model (columns), the widest ``max|x|`` (and pct)."""
    labels = list(results)
    kinds = [label for _, label in KINDS]
    lines = [
        "| layer kind | " + " | ".join(labels) + " |",
        "|---|" + "---:|" * len(labels),
    ]
    for kind in kinds:
        cells = []
        for label in labels:
            rs = [r for r in results[label].values() if r.kind == kind]
            if not rs:
                cells.append("-")
                continue
            top = max(rs, key=lambda r: r.abs_max)
            cells.append(f"{top.abs_max:.3g} ({max(r.abs_pct for r in rs):.3g})")
        if any(c != "-" for c in cells):
            lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_json(path: str | Path, results: Mapping[str, Mapping[str, LayerRange]]) -> None:
    data = {
        label: [asdict(r) | {"abs_max": r.abs_max} for r in ranges.values()]
        for label, ranges in results.items()
    }
    Path(path).write_text(json.dumps(data, indent=2) + "\n")


def merged_names(results: Mapping[str, Mapping[str, LayerRange]]) -> list[str]:
    """All quantization points of all models in network order (models may have more token
    groups than others: a point missing from one is placed after its predecessor in another)."""
    merged: list[str] = []
    for ranges in results.values():
        prev = None
        for name in ranges:
            if name not in merged:
                merged.insert(merged.index(prev) + 1 if prev is not None else 0, name)
            prev = name
    return merged


def plot_ranges(
    results: Mapping[str, Mapping[str, LayerRange]], path: str | Path, title: str = ""
) -> Path:
    """PNG: per quantization point, ``max|x|`` and the percentile of ``|x|`` (top, log scale)
    and the [min, max] interval with the percentile interval (bottom), one colour per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = merged_names(results)
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(max(8.0, 0.28 * len(names) + 3) + 4, 8), sharex=True
    )
    n = len(results)
    width = 0.8 / max(n, 1)
    x = list(range(len(names)))
    for i, (label, ranges) in enumerate(results.items()):
        color = f"C{i}"
        rs = [ranges.get(name) for name in names]
        xs = [xi for xi, r in zip(x, rs, strict=True) if r is not None]
        rs = [r for r in rs if r is not None]
        top.plot(xs, [r.abs_max for r in rs], "-o", ms=3, color=color, label=f"{label}: max|x|")
        top.plot(xs, [r.abs_pct for r in rs], "--", color=color, label=f"{label}: pct |x|")
        off = [xi - 0.4 + width * (i + 0.5) for xi in xs]
        bottom.vlines(off, [r.min for r in rs], [r.max for r in rs], color=color, lw=1, alpha=0.5)
        bottom.vlines(
            off, [r.low_pct for r in rs], [r.high_pct for r in rs], color=color, lw=3, label=label
        )
    top.set_yscale("log")
    top.set_ylabel("max |x| (solid), percentile |x| (dashed)")
    top.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    top.grid(alpha=0.3)
    bottom.set_ylabel("[min, max] (thin), percentile interval (thick)")
    bottom.axhline(0, color="k", lw=0.5)
    bottom.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    bottom.grid(alpha=0.3)
    bottom.set_xticks(x)
    bottom.set_xticklabels(names, rotation=90, fontsize=6)
    fig.suptitle(title or "Activation ranges at the quantization points")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
