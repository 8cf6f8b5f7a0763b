"""Multi-process training with torch.distributed (gloo on CPU), against one process.

The two-process run uses ``batch_size`` 16 per process; the one-process reference runs the same
code in a process group of one with ``batch_size`` 32. Both see the same samples in the same
global batches (``DistributedSampler`` with the same seed: rank r takes every second sample of
the global order) and calibrate on the same global batches, so both compute the same mean
gradient each step and differ only by float32 summation order (two means of 16, averaged by the
all-reduce, against one mean of 32).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from qmlp_brevitas import train as train_module
from qmlp_brevitas.checkpoint import load_checkpoint
from qmlp_brevitas.distributed import (
    DistContext,
    all_reduce_sum,
    distributed_context,
    launched_distributed,
    shard,
)
from qmlp_brevitas.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
# torchrun, run by this interpreter (the venv's console script may carry another shebang)
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]

# Tolerances of the two-process run against the one-process reference, after 8 QAT steps.
# Summation order changes gradients by ~1e-7 relative; AdamW's division by sqrt(v) and the
# quantizers' rounding amplify that (measured: largest per-tensor relative difference 1e-4, on
# a zero point; mean train loss equal to 1e-7). The bounds leave a factor of 10; a run whose
# processes did not average their gradients differs by orders of magnitude more.
PARAM_RTOL = 1e-3
LOSS_ATOL = 1e-5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(cfg: dict, record: Path, *extra: str) -> subprocess.CompletedProcess:
    record.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        *TORCHRUN,
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={_free_port()}",
        str(ROOT / "tests" / "ddp_worker.py"),
        json.dumps(cfg),
        str(record),
        *extra,
    ]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def _reference_run(cfg: dict, store: Path) -> tuple[dict, dict]:
    """The same training in one process (a process group of one), and its final parameters."""
    models = []
    build = train_module.build_model
    train_module.build_model = lambda c: models.append(build(c)) or models[-1]
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
    try:
        metrics = train(TrainConfig(**cfg), log=lambda *_: None)
    finally:
        dist.destroy_process_group()
        train_module.build_model = build
    return metrics, models[0].state_dict()


@pytest.mark.slow
def test_two_processes_match_one_and_resume_after_interruption(tmp_path, fmnist_dir):
    base = dict(
        model="qmlp_mixer_28",
        w_bits=4,
        a_bits=4,
        data_dir=str(fmnist_dir),
        train_limit=128,
        test_limit=64,
        epochs=2,
        calib_batches=2,
        export=False,
        # Each process draws its own augmentation; the one-process reference would see other
        # images.
        random_crop=0,
        hflip=False,
        # The tolerances below were measured on Brevitas' eager forward. The fast path sums its
        # scale gradients in another order, and over the last steps such a difference of one
        # rounding can move a quantized value by one level: the one-process run then ends with
        # a mean loss 2e-3 away from the two-process run (parameters still within PARAM_RTOL).
        # The processes' exchange of gradients is the same on both paths.
        fast=False,
        # Float LayerNorm: with the integer one, whose outputs round to whole levels, the two
        # runs (different float summation orders) ended 1.3e-3 apart on a zero point.
        recipe={"norm": "layernorm"},
    )
    ddp_cfg = {**base, "batch_size": 16, "out": str(tmp_path / "ddp")}
    run = tmp_path / "ddp"

    # First start: stopped right after epoch 1's checkpoint, as a killed job would be.
    first = _torchrun(ddp_cfg, tmp_path / "rec1", "--interrupt-after", "1")
    assert first.returncode != 0, first.stdout[-2000:]
    assert "stopped after epoch 1" in first.stdout + first.stderr
    assert load_checkpoint(run / "checkpoint.pt")["epoch"] == 1
    assert json.loads((tmp_path / "rec1" / "calls-0.json").read_text())[-1] == "save_checkpoint"

    # Restart with --resume: finishes epoch 2.
    second = _torchrun(ddp_cfg, tmp_path / "rec2", "--resume")
    assert second.returncode == 0, second.stderr[-3000:]
    rec = tmp_path / "rec2"

    # Only rank 0 writes the run folder (atomically: no temporary file is left).
    calls = [json.loads((rec / f"calls-{r}.json").read_text()) for r in (0, 1)]
    assert calls[1] == []
    assert calls[0].count("save_checkpoint") == 1 and "write_json" in calls[0]
    assert sorted(p.name for p in run.iterdir()) == [
        "checkpoint.pt",
        "config.json",
        "history.json",
        "history.png",
        "metrics.json",
    ]

    # The two processes hold identical parameters after training.
    params = [torch.load(rec / f"params-{r}.pt", weights_only=True) for r in (0, 1)]
    for key, value in params[0].items():
        assert torch.equal(value, params[1][key]), key

    # The interrupted two-process run ends where one process ends.
    ref_metrics, ref_params = _reference_run(
        {**base, "batch_size": 32, "out": str(tmp_path / "ref")}, tmp_path / "store"
    )
    for key, value in params[0].items():
        if value.is_floating_point():
            diff = (value - ref_params[key]).norm() / ref_params[key].norm().clamp_min(1e-12)
            assert diff <= PARAM_RTOL, (key, diff.item())
    history = json.loads((run / "history.json").read_text())
    ref_history = json.loads((tmp_path / "ref" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    for h, r in zip(history, ref_history, strict=True):
        assert abs(h["train_loss"] - r["train_loss"]) <= LOSS_ATOL
        assert abs(h["test_acc"] - r["test_acc"]) <= 1 / 64  # at most one of 64 images flips
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["processes"] == 2 and ref_metrics["processes"] == 1
    assert metrics["epochs"] == 2


def test_single_process_touches_no_process_group(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert not launched_distributed()
    with distributed_context() as ctx:
        assert (ctx.rank, ctx.world_size, ctx.enabled, ctx.is_main) == (0, 1, False, True)
        assert not dist.is_initialized()
        assert all_reduce_sum([3, 4.5], ctx) == [3.0, 4.5]


def test_launch_without_master_address_is_explained(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(ValueError, match="torchrun --nproc_per_node"):
        with distributed_context():
            pass


def test_evaluation_shards_are_disjoint_and_cover_the_set():
    data = list(range(11))
    parts = [shard(data, DistContext(rank=r, world_size=3)) for r in range(3)]
    seen = sorted(x for p in parts for x in p)
    assert seen == data and [len(p) for p in parts] == [4, 4, 3]
