"""The ablation's plan and runs: naive quantization, then the five techniques one at a time.

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

import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from tqdm import tqdm

from ..errors import ConfigError
from ..layout import RunFolder, check_output_folder
from ..models import ORIGINAL_NORM, PAPER_VARIANTS, SMALL_VARIANTS
from ..recipe import PRESETS, make_recipe
from ..train import BATCH_AUGMENT_DATA, RESUMABLE_CHANGES, TrainConfig, train

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
    # The ablation's own recipe (the README's tables), independent of the main job's defaults.
    epochs: int = 1
    batch_size: int = 128
    lr: float = 2e-3
    random_crop: int = 2  # Fashion-MNIST batch augmentation (ignored by other data sets)
    hflip: bool = True
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
                raise ConfigError(f"--hardware target must be positive, got {self.hardware_fps}")
            self.export = True  # the FINN build starts from the run's QONNX export
        if self.hardware_bits is not None:
            self.hardware_bits = tuple(self.hardware_bits)
            unknown = sorted(set(self.hardware_bits) - set(self.bits))
            if unknown:
                raise ConfigError(f"--hardware-bits {unknown} are not among --bits {self.bits}")
        if self.model not in SMALL_VARIANTS and self.model not in PAPER_VARIANTS:
            known = ", ".join(sorted(SMALL_VARIANTS))
            raise ConfigError(f"unknown model {self.model!r}; choose one of {known}")
        if not self.bits:
            raise ConfigError("give at least one bit width (--bits 8 4)")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds must be distinct and at least one, got {list(self.seeds)}")
        for b in self.bits:
            make_recipe("naive", w_bits=b, a_bits=b)  # validates the bit width
        # The recipe every run shares (epochs, batch size, lr, augmentation, data), checked by
        # TrainConfig's own validation before any run starts.
        self.train_config(ablation_rows()[0], None, self.seeds[0])
        check_output_folder(self.out)

    @classmethod
    def quick(cls, **kwargs) -> AblationConfig:
        """The whole pipeline on a tiny slice (a few hundred images, one epoch, one seed)."""
        return cls(**{"seeds": (0,), **QUICK, **kwargs})

    def _augmentation(self) -> dict:
        """The batch augmentation for data sets that take it; the others keep their own."""
        if self.data not in BATCH_AUGMENT_DATA:
            return {}
        return {"random_crop": self.random_crop, "hflip": self.hflip}

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
            **self._augmentation(),
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
    from ..finn.cost import hardware_column

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


def _check_finished(run: RunFolder, tcfg: TrainConfig) -> None:
    saved = run.read_config()
    now = tcfg.to_dict()
    changed = sorted(k for k in now if k not in _IGNORED_FIELDS and saved.get(k) != now[k])
    if changed:
        details = ", ".join(f"{k}: {saved.get(k)!r} -> {now[k]!r}" for k in changed if k in saved)
        new = [k for k in changed if k not in saved]
        if new:
            details += ("; " if details else "") + f"settings added to the library since: {new}"
        raise ConfigError(
            f"{run.root} was trained with other settings ({details}); its result would not be "
            "comparable. Use another --out, or delete that folder to train it again"
        )


def run_one(tcfg: TrainConfig, log=print) -> tuple[dict, bool]:
    """The metrics of one run, training (or resuming) it unless it finished; (metrics, trained)."""
    run = RunFolder(tcfg.out)
    if run.metrics.is_file():
        _check_finished(run, tcfg)
        return run.read_metrics(), False
    return train(tcfg, resume=run.checkpoint.is_file(), log=log), True


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
