"""Quantization-aware training of Q-MLP models, with calibration, resume and QONNX export.

The run folder (``TrainConfig.out``) receives ``config.json`` (the resolved config and recipe),
``checkpoint.pt`` (atomically, every epoch), ``history.json``, ``metrics.json`` and, for a
quantized model, ``model.onnx`` with ``input.npy`` / ``expected_output.npy``.

The same loop runs in one process or in several under ``torchrun``
(:mod:`qmlp_brevitas.distributed`): the model is wrapped in ``DistributedDataParallel``, each
process reads its part of every epoch through a ``DistributedSampler`` (``batch_size`` is per
process), loss and accuracy are summed over the processes, and only rank 0 writes files. Every
process calibrates on the same global batches (``batch_size`` x processes), so the quantizers
start identical everywhere. On CUDA the forward pass runs under autocast (bf16, else fp16 with
a gradient scaler) unless ``amp`` is off; on the CPU nothing changes.

Training and evaluation run the quantizers through the fast path of :mod:`qmlp_brevitas.fast_qat`
(``fast``, on by default: same outputs, same gradients up to float rounding); calibration and
export use Brevitas' own forward. ``random_crop`` and ``hflip`` augment the Fashion-MNIST
training batches (:mod:`qmlp_brevitas.augment`).
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from brevitas.graph.calibrate import calibration_mode
from timm.data import Mixup
from timm.loss import SoftTargetCrossEntropy
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler
from tqdm import tqdm

from .augment import BatchAugment
from .checkpoint import CheckpointError, load_checkpoint, load_model_state, save_checkpoint
from .data import DATA_INFO, build_dataset, make_loader, num_classes_of, subset
from .distributed import DistContext, all_reduce_sum, barrier, distributed_context, shard
from .errors import ConfigError, RunFolderError
from .export import export_model, first_examples, write_json
from .fast_qat import fast_quant
from .layout import RunFolder, check_output_folder
from .models import PAPER_VARIANTS, SMALL_VARIANTS, create_qmlp, model_size_mb
from .plots import plot_history
from .recipe import QuantRecipe, make_recipe
from .timm_init import describe, load_init

# Settings that may differ between an interrupted run and its resumption.
RESUMABLE_CHANGES = {"epochs", "out", "resume", "workers", "export", "export_qdq", "amp", "fast"}
# Datasets whose training batches the batch augmentation (random_crop, hflip) applies to; the
# others have their own pipelines (CIFAR-10: crop and flip per image; folders: timm's).
BATCH_AUGMENT_DATA = ("fashion_mnist",)
# Fashion-MNIST: flips only. Random crops (2 pixels) pay off in long runs (the long presets set
# them); within the main job's 30 epochs they cost more fitting than they give back.
BATCH_AUGMENT_DEFAULTS = {"fashion_mnist": {"random_crop": 0, "hflip": True}}


@dataclass
class TrainConfig:
    """Everything a training run depends on; saved as ``config.json`` in the run folder."""

    model: str = "qmlp_mixer_28"
    data: str = "fashion_mnist"
    data_dir: str = "data"
    download: bool = False
    w_bits: int | None = 4
    a_bits: int | None = 4
    preset: str = "qmlp"
    recipe: dict = field(default_factory=dict)  # overrides of the preset, e.g. {"token_groups": 4}
    # The main job's recipe: 30 epochs at batch 256 fit in 10 minutes of QAT on 2 CPU cores.
    epochs: int = 30
    batch_size: int = 256
    lr: float = 3e-3
    weight_decay: float = 0.05
    warmup_fraction: float = 0.05
    label_smoothing: float = 0.1
    calib_batches: int = 16
    train_limit: int | None = None
    test_limit: int | None = None
    seed: int = 0
    init: str | None = None
    workers: int = 0
    export: bool = True
    export_qdq: bool = False  # also the standard-ONNX QDQ model (onnxruntime)
    out: str = ""
    # ImageNet-style folders only (timm's pipeline); 0 / None switch a technique off.
    mixup: float = 0.0  # Mixup alpha
    cutmix: float = 0.0  # CutMix alpha
    auto_augment: str | None = None  # e.g. "rand-m9-mstd0.5-inc1"
    re_prob: float = 0.0  # random erasing probability
    interpolation: str = "bicubic"
    normalization: str = "imagenet"  # "inception" (0.5/0.5) for timm's Mixer-B/16 weights
    amp: bool = True  # mixed precision, used only on CUDA
    fast: bool = True  # QAT fast path (qmlp_brevitas.fast_qat); False: Brevitas' eager forward
    # Batch augmentation of Fashion-MNIST training images (qmlp_brevitas.augment).
    # None: the data set's default (BATCH_AUGMENT_DEFAULTS; off for data sets with their own).
    random_crop: int | None = None  # padding in pixels of a random crop (0: off)
    hflip: bool | None = None  # random horizontal flip

    def resolved_recipe(self) -> QuantRecipe:
        return make_recipe(self.preset, w_bits=self.w_bits, a_bits=self.a_bits, **self.recipe)

    def run_name(self) -> str:
        bits = "float" if self.w_bits is None else f"w{self.w_bits}a{self.a_bits}"
        suffix = "" if self.preset == "qmlp" and not self.recipe else f"-{self.preset}"
        return f"{self.model}-{bits}{suffix}"

    def __post_init__(self):
        """Every setting is checked here, so that a bad one is refused before any work."""
        if not self.out:
            self.out = str(Path("runs") / self.run_name())
        for name in ("epochs", "batch_size", "calib_batches"):
            if getattr(self, name) < (0 if name == "calib_batches" else 1):
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("train_limit", "test_limit"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"the learning rate (--lr) must be positive, got {self.lr}")
        if self.weight_decay < 0:
            raise ConfigError(f"--weight-decay must be >= 0, got {self.weight_decay}")
        for name in ("warmup_fraction", "label_smoothing"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.workers < 0:
            raise ConfigError(f"--workers must be >= 0, got {self.workers}")
        if self.mixup < 0 or self.cutmix < 0 or not 0 <= self.re_prob <= 1:
            raise ConfigError("mixup and cutmix must be >= 0 and re_prob in [0, 1]")
        if (self.mixup or self.cutmix) and self.data != "imagenet":
            raise ConfigError("mixup/cutmix are for ImageNet-style folders (--data imagenet)")
        check_model_fits_data(self.model, self.data)
        defaults = BATCH_AUGMENT_DEFAULTS.get(self.data, {"random_crop": 0, "hflip": False})
        for name, default in defaults.items():
            if getattr(self, name) is None:
                setattr(self, name, default)
        if isinstance(self.random_crop, bool) or not isinstance(self.random_crop, int):
            raise ConfigError(f"random_crop must be an integer >= 0, got {self.random_crop!r}")
        if self.random_crop < 0:
            raise ConfigError(f"random_crop must be >= 0, got {self.random_crop}")
        if self.data not in BATCH_AUGMENT_DATA and (self.random_crop or self.hflip):
            raise ConfigError(
                f"--random-crop/--hflip augment {', '.join(BATCH_AUGMENT_DATA)} batches; "
                f"{self.data} has its own augmentation pipeline"
            )
        groups = self.resolved_recipe().token_groups  # validates bits and technique settings
        dim = {**SMALL_VARIANTS, **PAPER_VARIANTS}[self.model]["embed_dim"]
        if dim % groups:
            raise ConfigError(
                f"--token-groups {groups}: the {dim} channels of {self.model} are not divisible "
                f"by token_groups {groups}"
            )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def check_model_fits_data(model: str, data: str) -> None:
    """Refuse a model whose input does not fit the data set's images.

    ImageNet-style folders are resized to the model's image size, so only the channels must
    agree there; the small data sets need the exact image size too.
    """
    variants = {**SMALL_VARIANTS, **PAPER_VARIANTS}
    if model not in variants:
        raise ConfigError(f"unknown model {model!r}; choose one of {', '.join(sorted(variants))}")
    if data not in DATA_INFO:
        raise ConfigError(f"unknown dataset {data!r}; choose one of {', '.join(DATA_INFO)}")
    info = DATA_INFO[data]

    def fits(sizes: dict) -> bool:
        same_size = data == "imagenet" or sizes["img_size"] == info.img_size
        return sizes["in_chans"] == info.in_chans and same_size

    if fits(variants[model]):
        return
    c, s = variants[model]["in_chans"], variants[model]["img_size"]
    has = (
        f"{info.in_chans}-channel images"
        if data == "imagenet"
        else f"{info.in_chans}x{info.img_size}x{info.img_size} images"
    )
    choices = ", ".join(name for name, sizes in sorted(variants.items()) if fits(sizes))
    raise ConfigError(
        f"model {model} takes {c}x{s}x{s} images, but {data} has {has}; choose a model made "
        f"for it ({choices})"
    )


def build_model(cfg: TrainConfig) -> nn.Module:
    """The model of ``cfg`` (whose model and data were checked to fit when it was made)."""
    info = DATA_INFO[cfg.data]
    return create_qmlp(cfg.model, recipe=cfg.resolved_recipe(), num_classes=info.num_classes)


def check_run_folder(cfg: TrainConfig, resume: bool) -> RunFolder:
    """Refuse, before any data is read or folder made, an ``out`` that cannot hold this run: a
    path under a file, ``resume`` without a checkpoint, or a new run over an existing one."""
    run = RunFolder(check_output_folder(cfg.out))
    if resume and not run.checkpoint.is_file():
        raise RunFolderError(
            f"--resume: there is no checkpoint to resume in {run.root} ({run.checkpoint.name} "
            "does not exist); check --out, or start the run without --resume"
        )
    if not resume and run.checkpoint.exists():
        raise RunFolderError(
            f"{run.checkpoint} exists; pass --resume to continue that run or choose another --out"
        )
    return run


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def calibrate(model: nn.Module, loader, batches: int) -> None:
    """Initialise every activation quantizer from data (Brevitas calibration mode).

    Percentile / min-max statistics are averaged over ``batches`` batches and then frozen into
    the quantizers' learned scale parameters, before evaluation, export or QAT.
    """
    model.eval()
    device = _device_of(model)
    with calibration_mode(model):
        for i, (x, _) in enumerate(loader):
            if i >= batches:
                break
            model(x.to(device))


@torch.no_grad()
def count_correct(model: nn.Module, loader) -> tuple[int, int]:
    """(correct predictions, samples) of ``model`` over ``loader``."""
    model.eval()
    device = _device_of(model)
    correct = total = 0
    for x, y in loader:
        correct += (model(x.to(device)).argmax(1).cpu() == y).sum().item()
        total += y.numel()
    return correct, total


def evaluate(model: nn.Module, loader) -> float:
    correct, total = count_correct(model, loader)
    return correct / max(total, 1)


def _evaluate_all(model: nn.Module, loader, ctx: DistContext) -> float:
    """Accuracy over the shards of all processes."""
    correct, total = all_reduce_sum(count_correct(model, loader), ctx)
    return correct / max(total, 1)


def _lr_lambda(total_steps: int, warmup_steps: int):
    def fn(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return fn


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on weight matrices only: not on biases, norms and quantizer parameters."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 or "quant" in name else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0},
    ]


def adamw(groups: list[dict], lr: float) -> torch.optim.AdamW:
    """AdamW, as torch's fused kernel where every parameter allows it (float, CPU or CUDA).

    The fused step updates all parameters in one call; the default loops over them in Python,
    which costs as much as a tenth of a small model's training step (a Q-MLP model has a scale
    and zero-point parameter per quantizer).
    """
    params = [p for g in groups for p in g["params"]]
    fused = bool(params) and all(
        p.device.type in ("cpu", "cuda") and p.dtype in (torch.float32, torch.float64)
        for p in params
    )
    return torch.optim.AdamW(groups, lr=lr, fused=fused)


def make_optimizer(model: nn.Module, cfg: TrainConfig, steps_per_epoch: int):
    """AdamW (:func:`param_groups`, :func:`adamw`) and a warm-up + cosine schedule stepped per
    batch."""
    optimizer = adamw(param_groups(model, cfg.weight_decay), cfg.lr)
    total_steps = steps_per_epoch * cfg.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _lr_lambda(total_steps, max(1, int(cfg.warmup_fraction * total_steps)))
    )
    return optimizer, scheduler


class _Step:
    """One optimisation step: mixup, autocast on CUDA, backward (scaled for fp16), update."""

    def __init__(self, net, optimizer, scheduler, criterion, mixup, device, amp: bool, augment):
        self.net, self.optimizer, self.scheduler = net, optimizer, scheduler
        self.criterion, self.mixup, self.device = criterion, mixup, device
        self.augment = augment
        cuda = amp and device.type == "cuda"
        self.dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float16
        self.autocast = cuda
        self.scaler = torch.amp.GradScaler("cuda", enabled=cuda and self.dtype == torch.float16)

    def __call__(self, x, y) -> torch.Tensor:
        x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        if self.augment is not None:
            x = self.augment(x)
        if self.mixup is not None:
            x, y = self.mixup(x, y)
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.autocast):
            loss = self.criterion(self.net(x), y)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return loss.detach()


def _train_epoch(step: _Step, loader, desc: str, ctx: DistContext) -> tuple[float, int]:
    """Runs one epoch; returns (sum of per-sample losses, samples) of this process."""
    step.net.train()
    total_loss = seen = 0
    bar = tqdm(loader, desc=desc, leave=False, dynamic_ncols=True, disable=not ctx.is_main)
    for x, y in bar:
        loss = step(x, y)
        total_loss += loss.item() * x.shape[0]
        seen += x.shape[0]
        bar.set_postfix(
            loss=f"{total_loss / seen:.4f}", lr=f"{step.scheduler.get_last_lr()[0]:.2e}"
        )
    return total_loss, seen


def _check_resumable(saved: dict, cfg: TrainConfig, path: Path) -> None:
    now = cfg.to_dict()
    defaults = TrainConfig.__dataclass_fields__
    # A setting added after the run started counts with the value that reproduces the run's
    # behaviour then: its default, or (batch augmentation) off.
    before = {k: _default_of(defaults[k]) for k in now} | {"random_crop": 0, "hflip": False}
    changed = sorted(
        k for k in now if k not in RESUMABLE_CHANGES and saved.get(k, before[k]) != now[k]
    )
    if changed:
        details = ", ".join(f"{k}: {saved.get(k)!r} -> {now[k]!r}" for k in changed)
        raise CheckpointError(
            f"cannot resume {path}: the run was started with other settings ({details}); "
            "resume with the same settings or choose another --out"
        )


def _default_of(f):
    return f.default_factory() if callable(f.default_factory) else f.default


def _variant_img_size(name: str) -> int | None:
    sizes = {**SMALL_VARIANTS, **PAPER_VARIANTS}.get(name)
    return sizes["img_size"] if sizes else None


def _datasets(cfg: TrainConfig):
    pipeline = {}
    if cfg.data == "imagenet":
        pipeline = dict(
            img_size=_variant_img_size(cfg.model),
            auto_augment=cfg.auto_augment,
            re_prob=cfg.re_prob,
            interpolation=cfg.interpolation,
            normalization=cfg.normalization,
        )
    train_set = subset(
        build_dataset(cfg.data, cfg.data_dir, True, cfg.download, **pipeline),
        cfg.train_limit,
        cfg.seed,
    )
    test_set = subset(
        build_dataset(cfg.data, cfg.data_dir, False, cfg.download, **pipeline),
        cfg.test_limit,
        cfg.seed,
    )
    return train_set, test_set


def _augment(cfg: TrainConfig) -> BatchAugment | None:
    if not (cfg.random_crop or cfg.hflip):
        return None
    info = DATA_INFO[cfg.data]
    fill = tuple(-m / s for m, s in zip(info.mean, info.std, strict=True))  # black, normalised
    return BatchAugment(cfg.random_crop, cfg.hflip, fill, seed=cfg.seed)


def _mixup(cfg: TrainConfig, num_classes: int) -> Mixup | None:
    if not (cfg.mixup or cfg.cutmix):
        return None
    return Mixup(
        mixup_alpha=cfg.mixup,
        cutmix_alpha=cfg.cutmix,
        label_smoothing=cfg.label_smoothing,
        num_classes=num_classes,
    )


def train(cfg: TrainConfig, resume: bool = False, log=print) -> dict:
    """Train (or resume) the run described by ``cfg``; returns the metrics written.

    Under ``torchrun`` every process calls this; only rank 0 logs and writes files.
    """
    with distributed_context() as ctx:
        return _train(cfg, resume, log if ctx.is_main else (lambda *_: None), ctx)


def _train(cfg: TrainConfig, resume: bool, log, ctx: DistContext) -> dict:
    run = check_run_folder(cfg, resume)
    out, ckpt_path = run.root, run.checkpoint
    state = None
    if resume:
        state = load_checkpoint(ckpt_path)
        _check_resumable(state["config"], cfg, ckpt_path)
    seed_everything(cfg.seed)
    train_set, test_set = _datasets(cfg)
    model = build_model(cfg)
    if num_classes_of(train_set) != model.num_classes:
        model.reset_classifier(num_classes_of(train_set))
    recipe = model.recipe
    if ctx.world_size > 1 and recipe.quantized and not cfg.calib_batches:
        raise ConfigError(
            "multi-process QAT needs --calib-batches >= 1: quantizers initialised from each "
            "process's own first batches would differ between the processes"
        )
    model.to(ctx.device)
    test_loader = make_loader(shard(test_set, ctx), cfg.batch_size, train=False)

    start_epoch, history, best, train_seconds, train_cpu_seconds = 0, [], 0.0, 0.0, 0.0
    if state is not None:
        load_model_state(model, state, ckpt_path)
        start_epoch, history = state["epoch"], state["history"]
        best, train_seconds = state["best_test_acc"], state["train_seconds"]
        train_cpu_seconds = state.get("train_cpu_seconds", 0.0)
        log(f"resuming {out} after epoch {start_epoch}/{cfg.epochs}")
    else:
        if cfg.init:
            report = load_init(model, cfg.init)
            log(f"initialised from {cfg.init}:\n  " + "\n  ".join(describe(report)))
        if recipe.quantized and cfg.calib_batches:
            calib = make_loader(
                train_set, cfg.batch_size * ctx.world_size, train=True, seed=cfg.seed
            )
            calibrate(model, calib, cfg.calib_batches)

    mixup = _mixup(cfg, model.num_classes)
    sampler = None
    if ctx.enabled:
        sampler = DistributedSampler(
            train_set, ctx.world_size, ctx.rank, shuffle=True, seed=cfg.seed, drop_last=False
        )
    per_process = len(sampler) if sampler is not None else len(train_set)
    # timm's Mixup needs an even batch: drop the last, partial one when mixing.
    steps_per_epoch = (
        per_process // cfg.batch_size if mixup else math.ceil(per_process / cfg.batch_size)
    )
    if steps_per_epoch < 1:
        raise ConfigError(
            f"{per_process} training images per process make no full batch of {cfg.batch_size}; "
            "lower --batch-size"
        )
    # The optimizer is made only now: calibration and state loading may replace the quantizers'
    # parameter objects, which an earlier optimizer would no longer update.
    optimizer, scheduler = make_optimizer(model, cfg, steps_per_epoch=steps_per_epoch)
    if mixup is not None:
        criterion = SoftTargetCrossEntropy()
    else:
        criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)

    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)  # only now: a run refused earlier leaves nothing
        write_json(run.config, {**cfg.to_dict(), "resolved_recipe": recipe.to_dict()})

    net = model
    if ctx.enabled:
        # Wrapping broadcasts rank 0's parameters and buffers to every process.
        device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        net = DistributedDataParallel(model, device_ids=device_ids)
    augment = _augment(cfg)
    step = _Step(net, optimizer, scheduler, criterion, mixup, ctx.device, cfg.amp, augment)

    # Calibration (above) and export (below) run Brevitas' own forward; training and evaluation
    # the fast path.
    with fast_quant(model, enabled=cfg.fast and recipe.quantized):
        for epoch in range(start_epoch, cfg.epochs):
            t0, cpu0 = time.time(), time.process_time()
            if sampler is not None:
                sampler.set_epoch(epoch)
            if augment is not None:
                augment.set_epoch(epoch, ctx.rank)
            loader = make_loader(
                train_set,
                cfg.batch_size,
                train=True,
                seed=cfg.seed + epoch,
                workers=cfg.workers,
                sampler=sampler,
                drop_last=mixup is not None,
            )
            loss_sum, seen = all_reduce_sum(
                _train_epoch(step, loader, f"epoch {epoch + 1}/{cfg.epochs}", ctx), ctx
            )
            loss = loss_sum / max(seen, 1)
            train_seconds += time.time() - t0
            train_cpu_seconds += time.process_time() - cpu0
            acc = _evaluate_all(model, test_loader, ctx)
            best = max(best, acc)
            seconds = time.time() - t0
            history.append(
                {"epoch": epoch + 1, "train_loss": loss, "test_acc": acc, "seconds": seconds}
            )
            if ctx.is_main:
                save_checkpoint(
                    ckpt_path,
                    {
                        "epoch": epoch + 1,
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "config": cfg.to_dict(),
                        "recipe": recipe.to_dict(),
                        "history": history,
                        "best_test_acc": best,
                        "train_seconds": train_seconds,
                        "train_cpu_seconds": train_cpu_seconds,
                    },
                )
                write_json(run.history, history)
            log(
                f"epoch {epoch + 1}/{cfg.epochs}: loss {loss:.4f}, test acc {acc:.4f} "
                f"({time.time() - t0:.0f} s)"
            )

    test_acc = history[-1]["test_acc"] if history else _evaluate_all(model, test_loader, ctx)
    metrics = {
        "model": cfg.model,
        "data": cfg.data,
        "preset": cfg.preset,
        "w_bits": recipe.w_bits,
        "a_bits": recipe.a_bits,
        "recipe": recipe.to_dict(),
        "test_acc": test_acc,
        "best_test_acc": max(best, test_acc),
        "epochs": len(history),
        "model_size_mb": model_size_mb(model),
        "params": sum(p.numel() for p in model.parameters()),
        "train_seconds": train_seconds,
        # CPU time of this process, all its threads: on a shared machine the wall-clock
        # train_seconds include the time spent waiting for a core.
        "train_cpu_seconds": train_cpu_seconds,
        "threads": torch.get_num_threads(),
        "processes": ctx.world_size,
    }
    if ctx.is_main:
        if history:
            plot_history(history, run.history_plot, title=cfg.run_name())
        if recipe.quantized and cfg.export:
            examples = first_examples(test_set)
            metrics["export"] = export_model(model.cpu(), examples, out, qdq=cfg.export_qdq)
        write_json(run.metrics, metrics)
    barrier(ctx)
    return metrics


def find_float_baseline(cfg: TrainConfig) -> float | None:
    """Test accuracy of a float run of the same model and data in the default runs folder."""
    run = RunFolder(Path("runs") / f"{cfg.model}-float")
    if not run.metrics.is_file():
        return None
    metrics = run.read_metrics()
    return metrics["test_acc"] if metrics.get("data") == cfg.data else None
