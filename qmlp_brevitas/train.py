"""Quantization-aware training of Q-MLP models, with calibration, resume and QONNX export.

The run folder (``TrainConfig.out``) receives ``config.json`` (the resolved config and recipe),
``checkpoint.pt`` (atomically, every epoch), ``history.json``, ``metrics.json`` and, for a
quantized model, ``model.onnx`` with ``input.npy`` / ``expected_output.npy``.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from brevitas.graph.calibrate import calibration_mode
from torch import nn
from tqdm import tqdm

from .checkpoint import CheckpointError, load_checkpoint, load_float_weights, save_checkpoint
from .data import DATA_INFO, build_dataset, make_loader, num_classes_of, subset
from .export import export_model, write_json
from .models import create_qmlp, model_size_mb
from .plots import plot_history
from .recipe import QuantRecipe, make_recipe

CHECKPOINT = "checkpoint.pt"
# Settings that may differ between an interrupted run and its resumption.
RESUMABLE_CHANGES = {"epochs", "out", "resume", "workers", "export"}


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
    epochs: int = 4
    batch_size: int = 128
    lr: float = 2e-3
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
    out: str = ""

    def resolved_recipe(self) -> QuantRecipe:
        return make_recipe(self.preset, w_bits=self.w_bits, a_bits=self.a_bits, **self.recipe)

    def run_name(self) -> str:
        bits = "float" if self.w_bits is None else f"w{self.w_bits}a{self.a_bits}"
        suffix = "" if self.preset == "qmlp" and not self.recipe else f"-{self.preset}"
        return f"{self.model}-{bits}{suffix}"

    def __post_init__(self):
        if not self.out:
            self.out = str(Path("runs") / self.run_name())
        for name in ("epochs", "batch_size", "calib_batches"):
            if getattr(self, name) < (0 if name == "calib_batches" else 1):
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        self.resolved_recipe()  # validates bit widths and technique settings early

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


def build_model(cfg: TrainConfig) -> nn.Module:
    """The model of ``cfg``, checked against the dataset's image size and channels."""
    info = DATA_INFO[cfg.data]
    model = create_qmlp(cfg.model, recipe=cfg.resolved_recipe(), num_classes=info.num_classes)
    if cfg.data != "imagenet" and (model.img_size, model.in_chans) != (
        info.img_size,
        info.in_chans,
    ):
        raise ValueError(
            f"model {cfg.model} takes {model.in_chans}x{model.img_size}x{model.img_size} images, "
            "but "
            f"{cfg.data} has {info.in_chans}x{info.img_size}x{info.img_size}; choose a model made "
            f"for it (e.g. qmlp_mixer_{info.img_size})"
        )
    return model


@torch.no_grad()
def calibrate(model: nn.Module, loader, batches: int) -> None:
    """Initialise every activation quantizer from data (Brevitas calibration mode).

    Percentile / min-max statistics are averaged over ``batches`` batches and then frozen into
    the quantizers' learned scale parameters, before evaluation, export or QAT.
    """
    model.eval()
    with calibration_mode(model):
        for i, (x, _) in enumerate(loader):
            if i >= batches:
                break
            model(x)


@torch.no_grad()
def evaluate(model: nn.Module, loader) -> float:
    model.eval()
    correct = total = 0
    for x, y in loader:
        correct += (model(x).argmax(1) == y).sum().item()
        total += y.numel()
    return correct / max(total, 1)


def _lr_lambda(total_steps: int, warmup_steps: int):
    def fn(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return fn


def make_optimizer(model: nn.Module, cfg: TrainConfig, steps_per_epoch: int):
    """AdamW (no weight decay on biases, norms and quantizer parameters) and a warm-up + cosine
    schedule stepped per batch."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 or "quant" in name else decay).append(p)
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0},
        ],
        lr=cfg.lr,
    )
    total_steps = steps_per_epoch * cfg.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _lr_lambda(total_steps, max(1, int(cfg.warmup_fraction * total_steps)))
    )
    return optimizer, scheduler


def _train_epoch(model, loader, optimizer, scheduler, criterion, desc: str) -> float:
    model.train()
    total_loss = seen = 0
    bar = tqdm(loader, desc=desc, leave=False, dynamic_ncols=True)
    for x, y in bar:
        loss = criterion(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total_loss += loss.item() * y.numel()
        seen += y.numel()
        bar.set_postfix(loss=f"{total_loss / seen:.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
    return total_loss / max(seen, 1)


def _check_resumable(saved: dict, cfg: TrainConfig, path: Path) -> None:
    now = cfg.to_dict()
    changed = sorted(k for k in now if k not in RESUMABLE_CHANGES and saved.get(k) != now[k])
    if changed:
        details = ", ".join(f"{k}: {saved.get(k)!r} -> {now[k]!r}" for k in changed)
        raise CheckpointError(
            f"cannot resume {path}: the run was started with other settings ({details}); "
            "resume with the same settings or choose another --out"
        )


def train(cfg: TrainConfig, resume: bool = False, log=print) -> dict:
    """Train (or resume) the run described by ``cfg``; returns the metrics written."""
    out = Path(cfg.out)
    ckpt_path = out / CHECKPOINT
    if not resume and ckpt_path.exists():
        raise FileExistsError(
            f"{ckpt_path} exists; pass --resume to continue that run or choose another --out"
        )
    seed_everything(cfg.seed)
    train_set = subset(
        build_dataset(cfg.data, cfg.data_dir, True, cfg.download), cfg.train_limit, cfg.seed
    )
    test_set = subset(
        build_dataset(cfg.data, cfg.data_dir, False, cfg.download), cfg.test_limit, cfg.seed
    )
    model = build_model(cfg)
    if num_classes_of(train_set) != model.num_classes:
        model.reset_classifier(num_classes_of(train_set))
    recipe = model.recipe
    test_loader = make_loader(test_set, cfg.batch_size, train=False)

    start_epoch, history, best, train_seconds = 0, [], 0.0, 0.0
    state = None
    if resume and ckpt_path.exists():
        state = load_checkpoint(ckpt_path)
        _check_resumable(state["config"], cfg, ckpt_path)
        model.load_state_dict(state["model"])
        start_epoch, history = state["epoch"], state["history"]
        best, train_seconds = state["best_test_acc"], state["train_seconds"]
        log(f"resuming {out} after epoch {start_epoch}/{cfg.epochs}")
    else:
        out.mkdir(parents=True, exist_ok=True)
        if cfg.init:
            report = load_float_weights(model, cfg.init)
            log(f"initialised from {cfg.init}: {len(report['loaded'])} tensors loaded")
        if recipe.quantized and cfg.calib_batches:
            calib = make_loader(train_set, cfg.batch_size, train=True, seed=cfg.seed)
            calibrate(model, calib, cfg.calib_batches)

    # The optimizer is made only now: calibration and state loading may replace the quantizers'
    # parameter objects, which an earlier optimizer would no longer update.
    optimizer, scheduler = make_optimizer(
        model, cfg, steps_per_epoch=math.ceil(len(train_set) / cfg.batch_size)
    )
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)

    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
    write_json(out / "config.json", {**cfg.to_dict(), "resolved_recipe": recipe.to_dict()})

    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.time()
        loader = make_loader(train_set, cfg.batch_size, train=True, seed=cfg.seed + epoch)
        loss = _train_epoch(
            model, loader, optimizer, scheduler, criterion, f"epoch {epoch + 1}/{cfg.epochs}"
        )
        train_seconds += time.time() - t0
        acc = evaluate(model, test_loader)
        best = max(best, acc)
        history.append(
            {"epoch": epoch + 1, "train_loss": loss, "test_acc": acc, "seconds": time.time() - t0}
        )
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
            },
        )
        write_json(out / "history.json", history)
        log(
            f"epoch {epoch + 1}/{cfg.epochs}: loss {loss:.4f}, test acc {acc:.4f} "
            f"({time.time() - t0:.0f} s)"
        )

    test_acc = history[-1]["test_acc"] if history else evaluate(model, test_loader)
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
    }
    if history:
        plot_history(history, out / "history.png", title=cfg.run_name())
    if recipe.quantized and cfg.export:
        example = test_set[0][0].unsqueeze(0)
        metrics["export"] = export_model(model, example, out)
    write_json(out / "metrics.json", metrics)
    return metrics


def find_float_baseline(cfg: TrainConfig) -> float | None:
    """Test accuracy of a float run of the same model and data in the default runs folder."""
    path = Path("runs") / f"{cfg.model}-float" / "metrics.json"
    if not path.is_file():
        return None
    metrics = json.loads(path.read_text())
    return metrics["test_acc"] if metrics.get("data") == cfg.data else None
