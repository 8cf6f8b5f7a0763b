"""How long an ablation plan takes here: a few timed steps of the training loop, scaled up.

The timing runs :mod:`qmlp_brevitas.train`'s own training step (``_Step``: forward, loss,
backward, AdamW and schedule update) and evaluation on a slice of the data; the estimate
multiplies the time per image by the plan's runs, epochs and images. Rows whose model equals the
previous row's are reused by the ablation and cost nothing.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from ..errors import ConfigError
from ..train import TrainConfig
from .plan import AblationConfig, ablation_rows, effective_settings

SPLIT_SIZES = {"fashion_mnist": (60000, 10000), "cifar10": (50000, 10000)}  # (train, test)


def time_training(tcfg: TrainConfig, steps: int = 10) -> dict[str, float]:
    """Seconds per training image and per test image of one run's model on this machine.

    ``steps`` batches of the run's training data go through the training loop's own epoch and
    step (:func:`qmlp_brevitas.train._train_epoch`, :class:`qmlp_brevitas.train._Step`: the
    run's optimizer, schedule and loss), after calibration; then one evaluation pass. Wall-clock
    (``*_s_per_image``) and CPU time of this process, all threads (``*_cpu_s_per_image``): on a
    shared machine the wall-clock grows with the load, the CPU time much less.
    """
    from torch import nn

    from ..data import build_dataset, make_loader, subset
    from ..distributed import DistContext, default_device
    from ..train import _Step, _train_epoch, build_model, calibrate, evaluate, make_optimizer

    ctx = DistContext(device=default_device())
    data = subset(build_dataset(tcfg.data, tcfg.data_dir, True), steps * tcfg.batch_size, tcfg.seed)
    model = build_model(tcfg).to(ctx.device)
    loader = make_loader(data, tcfg.batch_size, train=True, seed=tcfg.seed)
    if model.recipe.quantized:
        calibrate(model, loader, 2)
    optimizer, scheduler = make_optimizer(model, tcfg, steps_per_epoch=len(loader))
    criterion = nn.CrossEntropyLoss(label_smoothing=tcfg.label_smoothing)
    step = _Step(model, optimizer, scheduler, criterion, None, ctx.device, tcfg.amp)
    t0, c0 = time.perf_counter(), time.process_time()
    _train_epoch(step, loader, "timing training steps", ctx)
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
        raise ConfigError(f"the size of {cfg.data} is unknown here; set train_limit and test_limit")
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
