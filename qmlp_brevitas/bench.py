"""Training-step benchmark: float against QAT, Brevitas' eager path against the fast path.

One step is what training does per batch: forward, loss, ``zero_grad``, backward, the training's
AdamW update (:func:`qmlp_brevitas.train.adamw`), on a random batch of the model's input size
after calibrating the quantizers on it.
:func:`compare` builds the float and the quantized model once and times them in rounds, one step
of every mode per round (float, QAT on Brevitas' eager path, QAT on the fast path of
:mod:`qmlp_brevitas.fast_qat`), so that a machine shared with other jobs slows all modes alike;
each figure is the median over the rounds. On the CPU it also records the process CPU time per
step (independent of how long the process waits for a core) and the load average before and
after. CUDA steps are synchronised before the clock is read.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn

from .errors import ConfigError
from .fast_qat import fast_quant
from .models import count_params, create_qmlp
from .train import adamw, calibrate, param_groups

MODES = ("float", "qat_eager", "qat_fast")


class DeviceError(ConfigError):
    """A device that this machine does not have."""


def pick_device(name: str | None = None) -> torch.device:
    """``name`` (``cpu``, ``cuda``, ``cuda:1``), checked; by default CUDA when present."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise DeviceError(f"unknown device {name!r}; use cpu or cuda[:N]") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device {name!r} requested but CUDA is not available here; use cpu")
    if device.type not in ("cpu", "cuda"):
        raise DeviceError(f"device {name!r} is not supported; use cpu or cuda[:N]")
    return device


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


@dataclass
class Workload:
    """A model with its optimizer and one fixed batch, ready to step."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    x: torch.Tensor
    y: torch.Tensor
    amp: bool = False

    def step(self) -> None:
        device = self.x.device
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.amp):
            loss = nn.functional.cross_entropy(self.model(self.x), self.y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()


def make_workload(
    model_name: str,
    batch_size: int,
    device: torch.device,
    w_bits: int | None = None,
    a_bits: int | None = None,
    amp: bool = False,
    seed: int = 0,
    norm: str | None = None,
) -> Workload:
    """The model ``model_name`` (float when ``w_bits`` is None; ``norm`` overrides the preset's
    norm), calibrated on a random batch."""
    torch.manual_seed(seed)
    settings = {} if w_bits is None else {"w_bits": w_bits, "a_bits": a_bits}
    if norm is not None:
        settings["norm"] = norm
    model = create_qmlp(model_name, **settings).to(device)
    shape = (batch_size, model.in_chans, model.img_size, model.img_size)
    x = torch.randn(shape, device=device)
    y = torch.randint(0, model.num_classes, (batch_size,), device=device)
    if w_bits is not None:
        calibrate(model, [(x, y)], batches=1)
    model.train()
    optimizer = adamw(param_groups(model, weight_decay=0.05), lr=1e-4)
    return Workload(model, optimizer, x, y, amp=amp and device.type == "cuda")


def _timed(step: Callable[[], None], device: torch.device) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call of ``step``."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall, cpu = time.perf_counter(), time.process_time()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - wall, time.process_time() - cpu


def _load() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def compare(
    model_name: str = "qmlp_mixer_28",
    batch_size: int = 128,
    w_bits: int = 4,
    a_bits: int = 4,
    steps: int = 20,
    warmup: int = 3,
    device: torch.device | None = None,
    amp: bool = False,
    progress: Callable[[str], None] | None = None,
    norm: str | None = None,
) -> dict:
    """Median step times of float, QAT eager and QAT fast, and their ratios, as a dict.

    ``norm`` overrides the preset's norm of both models (``layernorm``: float LayerNorm).

    ``float_s``, ``qat_s`` and ``ratio`` (= ``qat_s / float_s``) are the fast path's figures;
    ``qat_eager_s`` and ``ratio_eager`` Brevitas' eager path; ``fast_speedup`` eager over fast.
    """
    if steps < 1 or warmup < 0:
        raise ConfigError(f"steps must be >= 1 and warmup >= 0, got {steps} and {warmup}")
    device = device or pick_device()
    load_before = _load()
    float_work = make_workload(model_name, batch_size, device, amp=amp, norm=norm)
    qat_work = make_workload(model_name, batch_size, device, w_bits, a_bits, amp=amp, norm=norm)
    wall: dict[str, list[float]] = {mode: [] for mode in MODES}
    cpu: dict[str, list[float]] = {mode: [] for mode in MODES}
    with fast_quant(qat_work.model) as report:
        pass
    contexts = {
        "float": nullcontext,
        "qat_eager": nullcontext,
        "qat_fast": lambda: fast_quant(qat_work.model),
    }
    works = {"float": float_work, "qat_eager": qat_work, "qat_fast": qat_work}
    for round_ in range(warmup + steps):
        if progress:
            progress(f"round {round_ + 1}/{warmup + steps}")
        # Rotate the order so that no mode always follows the same one.
        order = MODES[round_ % 3 :] + MODES[: round_ % 3]
        for mode in order:
            with contexts[mode]():
                w, c = _timed(works[mode].step, device)
            if round_ >= warmup:
                wall[mode].append(w)
                cpu[mode].append(c)
    med = {mode: statistics.median(wall[mode]) for mode in MODES}
    result = {
        "model": model_name,
        "params": count_params(qat_work.model),
        "batch_size": batch_size,
        "w_bits": w_bits,
        "a_bits": a_bits,
        "norm": qat_work.model.recipe.norm,
        "device": str(device),
        "device_name": device_name(device),
        "threads": torch.get_num_threads(),
        "amp": qat_work.amp,
        "torch": torch.__version__,
        "steps": steps,
        "warmup": warmup,
        "float_s": med["float"],
        "qat_s": med["qat_fast"],
        "ratio": med["qat_fast"] / med["float"],
        "qat_eager_s": med["qat_eager"],
        "ratio_eager": med["qat_eager"] / med["float"],
        "fast_speedup": med["qat_eager"] / med["qat_fast"],
        "fast_layers": len(report.fast),
        "eager_layers": report.eager,
        "step_times_s": wall,
    }
    if device.type == "cpu":
        cpu_med = {mode: statistics.median(cpu[mode]) for mode in MODES}
        result.update(
            float_cpu_s=cpu_med["float"],
            qat_cpu_s=cpu_med["qat_fast"],
            ratio_cpu=cpu_med["qat_fast"] / cpu_med["float"],
            qat_eager_cpu_s=cpu_med["qat_eager"],
            load_average_before=load_before,
            load_average_after=_load(),
        )
    return result


def compare_lines(result: dict) -> list[str]:
    """A short human-readable summary of :func:`compare`'s result."""
    head = (
        f"{result['model']} W{result['w_bits']}A{result['a_bits']} ({result['norm']}), batch "
        f"{result['batch_size']}, "
        f"{result['device']} ({result['device_name']}, {result['threads']} threads"
        + (", bf16 autocast" if result["amp"] else "")
        + f"), median of {result['steps']} rounds:"
    )
    rows = [
        ("float", result["float_s"], 1.0),
        ("QAT, Brevitas eager", result["qat_eager_s"], result["ratio_eager"]),
        ("QAT, fast path", result["qat_s"], result["ratio"]),
    ]
    lines = [head]
    bs = result["batch_size"]
    for name, seconds, ratio in rows:
        lines.append(
            f"  {name:<20} {seconds * 1e3:8.1f} ms/step  {bs / seconds:8.0f} images/s  "
            f"{ratio:4.2f}x float"
        )
    if "ratio_cpu" in result:
        lines.append(
            f"  CPU time per step: float {result['float_cpu_s'] * 1e3:.1f} ms, QAT fast "
            f"{result['qat_cpu_s'] * 1e3:.1f} ms ({result['ratio_cpu']:.2f}x), QAT eager "
            f"{result['qat_eager_cpu_s'] * 1e3:.1f} ms; load average "
            f"{result['load_average_before']} -> {result['load_average_after']}"
        )
    if result["eager_layers"]:
        lines.append(f"  layers left on Brevitas' path: {result['eager_layers']}")
    return lines


def time_one(
    model_name: str,
    batch_size: int,
    w_bits: int | None,
    a_bits: int | None,
    steps: int = 5,
    warmup: int = 1,
    device: torch.device | None = None,
    fast: bool = True,
    amp: bool = False,
    norm: str | None = None,
) -> dict:
    """Median, min and max step time of one model (float when ``w_bits`` is None)."""
    device = device or pick_device()
    work = make_workload(model_name, batch_size, device, w_bits, a_bits, amp=amp, norm=norm)
    times = []
    with fast_quant(work.model, enabled=fast and w_bits is not None):
        for i in range(warmup + steps):
            seconds, _ = _timed(work.step, device)
            if i >= warmup:
                times.append(seconds)
    return {
        "model": model_name,
        "params": count_params(work.model),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
    }
