"""``qmlp-ablation`` (``scripts/ablation.py``): the Q-MLP ablation on Fashion-MNIST (Sec. 5).

Float, naive quantization, then the five techniques added one at a time, at each bit width and
seed (:mod:`qmlp_brevitas.ablation`). Finished runs are reused; rerun the same command to resume.
"""

from __future__ import annotations

import argparse
import sys
import time

from ..ablation import (
    QUICK,
    AblationConfig,
    ablation_rows,
    estimate_seconds,
    run_ablation,
    time_training,
    write_reports,
)
from ..models import SMALL_VARIANTS


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def build_parser() -> argparse.ArgumentParser:
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
