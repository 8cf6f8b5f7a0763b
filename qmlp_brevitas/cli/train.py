"""``scripts/train_brevitas.py``: QAT of a Q-MLP model, then QONNX export."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..data import DATASETS
from ..models import list_variants
from ..recipe import ACTS, NORMS, PRESETS
from ..train import TrainConfig, find_float_baseline, train


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Quantization-aware training of a Q-MLP model (Brevitas) and QONNX export.",
    )
    p.add_argument("--model", default="qmlp_mixer_28", choices=list_variants())
    p.add_argument("--w", type=int, default=4, help="weight bit width (2-8)")
    p.add_argument("--a", type=int, default=4, help="activation bit width (2-8)")
    p.add_argument("--float", action="store_true", help="train the float model (same recipe)")
    p.add_argument(
        "--preset",
        default="qmlp",
        choices=sorted(PRESETS),
        help="qmlp: all five techniques; naive: none of them",
    )
    t = p.add_argument_group("Q-MLP techniques (override the preset)")
    t.add_argument("--norm", choices=NORMS)
    t.add_argument("--act", choices=ACTS)
    t.add_argument("--calibration", choices=("minmax", "percentile"))
    t.add_argument("--percentile", type=float)
    t.add_argument("--token-groups", type=int, help="number of token-mixing MLPs (1 = standard)")
    t.add_argument(
        "--asymmetric",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="zero-point quantizer on the sensitive operations",
    )
    d = p.add_argument_group("data")
    d.add_argument("--data", default="fashion_mnist", choices=DATASETS)
    d.add_argument("--data-dir", default="data")
    d.add_argument("--download", action="store_true", help="let torchvision download the data")
    d.add_argument("--train-limit", type=int, help="use only this many training images")
    d.add_argument("--test-limit", type=int, help="use only this many test images")
    o = p.add_argument_group("training")
    o.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    o.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    o.add_argument("--lr", type=float, default=TrainConfig.lr)
    o.add_argument("--weight-decay", type=float, default=TrainConfig.weight_decay)
    o.add_argument("--calib-batches", type=int, default=TrainConfig.calib_batches)
    o.add_argument("--seed", type=int, default=0)
    o.add_argument("--init", help="float checkpoint of the same model to fine-tune from")
    o.add_argument("--workers", type=int, default=0, help="data loader worker processes")
    o.add_argument("--out", default="", help="run folder (default runs/<model>-<bits>)")
    o.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    o.add_argument("--no-export", action="store_true", help="skip the QONNX export")
    return p


def config_from_args(args) -> TrainConfig:
    overrides = {
        "norm": args.norm,
        "act": args.act,
        "calibration": args.calibration,
        "percentile": args.percentile,
        "token_groups": args.token_groups,
        "asymmetric": args.asymmetric,
    }
    return TrainConfig(
        model=args.model,
        data=args.data,
        data_dir=args.data_dir,
        download=args.download,
        w_bits=None if args.float else args.w,
        a_bits=None if args.float else args.a,
        preset=args.preset,
        recipe={k: v for k, v in overrides.items() if v is not None},
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        calib_batches=args.calib_batches,
        train_limit=args.train_limit,
        test_limit=args.test_limit,
        seed=args.seed,
        init=args.init,
        workers=args.workers,
        export=not args.no_export,
        out=args.out,
    )


def summary_lines(cfg: TrainConfig, metrics: dict) -> list[str]:
    bits = "float" if metrics["w_bits"] is None else f"W{metrics['w_bits']}A{metrics['a_bits']}"
    lines = [
        f"model           {cfg.model} ({bits}, preset {cfg.preset}, {metrics['params']:,} params)",
        f"test accuracy   {metrics['test_acc']:.4f} (best {metrics['best_test_acc']:.4f}, "
        f"{metrics['epochs']} epochs, {metrics['train_seconds']:.0f} s training)",
    ]
    baseline = find_float_baseline(cfg) if metrics["w_bits"] is not None else None
    if baseline is not None:
        lines.append(f"float baseline  {baseline:.4f} ({metrics['test_acc'] - baseline:+.4f})")
    lines.append(f"model size      {metrics['model_size_mb']:.3f} MB at the quantized bit widths")
    lines.append(f"run folder      {cfg.out}")
    if "export" in metrics:
        lines.append(
            f"QONNX           {metrics['export']['onnx']} (+ input.npy, expected_output.npy)"
        )
    return lines


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    cfg = config_from_args(args)
    metrics = train(cfg, resume=args.resume)
    print("\n".join(summary_lines(cfg, metrics)))
    Path(cfg.out, "summary.txt").write_text("\n".join(summary_lines(cfg, metrics)) + "\n")
    json.dumps(metrics)  # metrics are plain JSON
    return 0
