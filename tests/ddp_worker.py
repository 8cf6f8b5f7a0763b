"""Started by ``torchrun`` from tests/test_distributed.py: one rank of a training run.

Records, per rank, which files the training loop wrote (by wrapping the writers that
:mod:`qmlp_brevitas.train` calls) and the final parameters, into ``record_dir`` (not the run
folder). With ``--interrupt-after N`` rank 0 stops right after writing epoch N's checkpoint, as a
killed job would.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

from qmlp_brevitas import train as train_module
from qmlp_brevitas.train import TrainConfig, train


class Interrupted(RuntimeError):
    pass


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("config", help="TrainConfig as JSON")
    p.add_argument("record_dir")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--interrupt-after", type=int)
    args = p.parse_args()
    rank = int(os.environ["RANK"])
    record = Path(args.record_dir)
    calls: list[str] = []
    models = []

    def recording(name, fn):
        def wrapper(*a, **kw):
            calls.append(name)
            result = fn(*a, **kw)
            if name == "save_checkpoint" and args.interrupt_after is not None:
                if a[1]["epoch"] >= args.interrupt_after:
                    raise Interrupted(f"stopped after epoch {a[1]['epoch']}")
            return result

        return wrapper

    for name in ("save_checkpoint", "write_json", "export_model", "plot_history"):
        setattr(train_module, name, recording(name, getattr(train_module, name)))
    build = train_module.build_model
    train_module.build_model = lambda cfg: models.append(build(cfg)) or models[-1]

    cfg = TrainConfig(**json.loads(args.config))
    try:
        metrics = train(cfg, resume=args.resume, log=lambda *_: None)
    finally:
        (record / f"calls-{rank}.json").write_text(json.dumps(calls))
    torch.save(models[0].state_dict(), record / f"params-{rank}.pt")
    (record / f"metrics-{rank}.json").write_text(json.dumps(metrics))


if __name__ == "__main__":
    main()
