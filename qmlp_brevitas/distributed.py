"""Process-group helpers for multi-process training with ``torch.distributed``.

Under ``torchrun`` (environment variables ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``, ``MASTER_PORT``) :func:`distributed_context` initialises the process group
(``nccl`` when CUDA is available, ``gloo`` otherwise) and tears it down afterwards; without them it
describes a single process and touches nothing. A process group that the caller has already
initialised is used as it is and left alone.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import Dataset, Subset

from .errors import ConfigError


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: its rank, the number of processes and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        """Whether a process group is in use (also for a group of one process)."""
        return dist.is_available() and dist.is_initialized()

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files and logs."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError as err:
        raise ConfigError(f"environment variable {name}={value!r} is not an integer") from err


def launched_distributed() -> bool:
    """Whether this process was started by ``torchrun`` (or similar) with several processes."""
    return _env_int("WORLD_SIZE", 1) > 1


def default_device(local_rank: int = 0) -> torch.device:
    """``cuda:<local_rank>`` when CUDA is available, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


@contextmanager
def distributed_context() -> Iterator[DistContext]:
    """The :class:`DistContext` of this process; initialises the process group if launched so."""
    if dist.is_available() and dist.is_initialized():
        local_rank = _env_int("LOCAL_RANK", dist.get_rank())
        yield DistContext(
            dist.get_rank(), dist.get_world_size(), local_rank, default_device(local_rank)
        )
        return
    if not launched_distributed():
        yield DistContext(device=default_device())
        return
    rank, world = _env_int("RANK", 0), _env_int("WORLD_SIZE", 1)
    local_rank = _env_int("LOCAL_RANK", rank)
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if name not in os.environ:
            raise ConfigError(
                f"WORLD_SIZE={world} is set but {name} is not; start multi-process training with "
                "torchrun --nproc_per_node=N scripts/train_brevitas.py ..."
            )
    device = default_device(local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, rank=rank, world_size=world)
    try:
        yield DistContext(rank, world, local_rank, device)
    finally:
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    """Wait for every process (no-op without a process group)."""
    if ctx.enabled:
        if ctx.device.type == "cuda":
            dist.barrier(device_ids=[ctx.device.index])
        else:
            dist.barrier()


def all_reduce_sum(values: Sequence[float], ctx: DistContext) -> list[float]:
    """The element-wise sum of ``values`` over all processes (``values`` itself without a group).

    Summed in float64 so that counts of samples stay exact.
    """
    if not ctx.enabled:
        return [float(v) for v in values]
    t = torch.tensor(list(values), dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def shard(dataset: Dataset, ctx: DistContext) -> Dataset:
    """Every ``world_size``-th sample from ``rank`` on: disjoint shards that cover ``dataset``.

    Used for evaluation, where a ``DistributedSampler`` would pad with repeated samples and bias
    the accuracy.
    """
    if ctx.world_size == 1:
        return dataset
    return Subset(dataset, range(ctx.rank, len(dataset), ctx.world_size))
