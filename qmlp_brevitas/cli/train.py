"""``qmlp-train`` (``scripts/train_brevitas.py``): QAT of a Q-MLP model, then QONNX export.

Under ``torchrun --nproc_per_node=N`` the same command trains with DistributedDataParallel
(``--batch-size`` is per process). ``--preset`` picks the technique preset (``qmlp``,
``naive``); ``--config`` a run preset (``resmlp24-qmlp-w4a4``, or a JSON file) that sets every
option of a paper-size run; options on the command line override it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

from ..data import DATASETS, NORMALIZATIONS
from ..errors import EXIT_INTERRUPTED, ConfigError
from ..layout import RunFolder
from ..models import list_variants
from ..presets import list_presets, load_preset, preset_path
from ..recipe import ACTS, NORMS, PRESETS
from ..train import TrainConfig, check_run_folder, find_float_baseline, train


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
        help="technique preset: qmlp, all five techniques; naive, none of them",
    )
    p.add_argument(
        "--config",
        metavar="NAME_OR_FILE",
        help="run preset: model, bits, data and schedule of a paper-size run, by name ("
        + ", ".join(list_presets())
        + ") or a JSON file; options given here override it",
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
    t.add_argument(
        "--layer-scale",
        choices=("signed", "non_negative"),
        help="ResMLP's LayerScale: signed (published) or non_negative (|gamma|; needed for "
        "integer hardware with several token groups)",
    )
    d = p.add_argument_group("data")
    d.add_argument("--data", default="fashion_mnist", choices=DATASETS)
    d.add_argument("--data-dir", default="data")
    d.add_argument("--download", action="store_true", help="let torchvision download the data")
    d.add_argument("--train-limit", type=int, help="use only this many training images")
    d.add_argument("--test-limit", type=int, help="use only this many test images")
    d.add_argument(
        "--random-crop",
        type=int,
        metavar="PIXELS",
        help="Fashion-MNIST training batches: random crop after padding by PIXELS (default 0: "
        "off; the long presets use 2)",
    )
    d.add_argument(
        "--hflip",
        action=argparse.BooleanOptionalAction,
        help="Fashion-MNIST training batches: random horizontal flip (default on)",
    )
    i = p.add_argument_group("ImageNet-style folders (timm's data pipeline)")
    i.add_argument("--mixup", type=float, default=TrainConfig.mixup, help="Mixup alpha (0: off)")
    i.add_argument("--cutmix", type=float, default=TrainConfig.cutmix, help="CutMix alpha (0: off)")
    i.add_argument("--auto-augment", help="timm auto-augment policy, e.g. rand-m9-mstd0.5-inc1")
    i.add_argument("--reprob", type=float, default=TrainConfig.re_prob, help="random erasing")
    i.add_argument("--interpolation", default=TrainConfig.interpolation)
    i.add_argument(
        "--normalization",
        default=TrainConfig.normalization,
        choices=sorted(NORMALIZATIONS),
        help="imagenet: ResMLP weights; inception (0.5/0.5): timm's Mixer-B/16 weights",
    )
    o = p.add_argument_group("training")
    o.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    o.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    o.add_argument("--lr", type=float, default=TrainConfig.lr)
    o.add_argument("--weight-decay", type=float, default=TrainConfig.weight_decay)
    o.add_argument("--warmup-fraction", type=float, default=TrainConfig.warmup_fraction)
    o.add_argument("--label-smoothing", type=float, default=TrainConfig.label_smoothing)
    o.add_argument("--calib-batches", type=int, default=TrainConfig.calib_batches)
    o.add_argument("--seed", type=int, default=0)
    o.add_argument(
        "--init",
        help="float checkpoint to fine-tune from: this project's float model, or the matching "
        "timm model saved on local disk (resmlp_24_224, mixer_b16_224; .pt/.pth/.safetensors)",
    )
    o.add_argument(
        "--init-config",
        metavar="NAME_OR_FILE",
        help="fine-tune from the run of another run preset (its folder's checkpoint), e.g. the "
        "float run of the same model; that run is trained first, or resumed, if it has not "
        "finished",
    )
    o.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA")
    o.add_argument(
        "--fast",
        action=argparse.BooleanOptionalAction,
        default=TrainConfig.fast,
        help="QAT fast path (same outputs and gradients as Brevitas' eager forward, about twice "
        "as fast); --no-fast trains on Brevitas' own forward",
    )
    o.add_argument("--workers", type=int, default=0, help="data loader worker processes")
    o.add_argument(
        "--threads",
        type=int,
        help="CPU threads for torch (default: torch's choice); 1 avoids oversubscription when "
        "other jobs share the cores",
    )
    o.add_argument(
        "--out", default="", help="run folder (default runs/<model>-<bits>, or runs/<config>)"
    )
    o.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    o.add_argument("--no-export", action="store_true", help="skip the QONNX export")
    o.add_argument(
        "--qdq",
        action="store_true",
        help="also export standard-ONNX QDQ (model_qdq.onnx) for onnxruntime, checked on the "
        "verification candidates",
    )
    return p


def config_from_args(args) -> TrainConfig:
    overrides = {
        "norm": args.norm,
        "act": args.act,
        "calibration": args.calibration,
        "percentile": args.percentile,
        "token_groups": args.token_groups,
        "asymmetric": args.asymmetric,
        "layer_scale": args.layer_scale,
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
        warmup_fraction=args.warmup_fraction,
        label_smoothing=args.label_smoothing,
        calib_batches=args.calib_batches,
        train_limit=args.train_limit,
        test_limit=args.test_limit,
        seed=args.seed,
        init=args.init,
        workers=args.workers,
        export=not args.no_export,
        export_qdq=args.qdq,
        out=args.out,
        mixup=args.mixup,
        cutmix=args.cutmix,
        auto_augment=args.auto_augment,
        re_prob=args.reprob,
        interpolation=args.interpolation,
        normalization=args.normalization,
        amp=not args.no_amp,
        fast=args.fast,
        random_crop=args.random_crop,
        hflip=args.hflip,
    )


def summary_lines(cfg: TrainConfig, metrics: dict) -> list[str]:
    bits = "float" if metrics["w_bits"] is None else f"W{metrics['w_bits']}A{metrics['a_bits']}"
    lines = [
        f"model           {cfg.model} ({bits}, preset {cfg.preset}, {metrics['params']:,} params)",
        f"test accuracy   {metrics['test_acc']:.4f} (best {metrics['best_test_acc']:.4f}, "
        f"{metrics['epochs']} epochs, {metrics['train_seconds']:.0f} s training, "
        f"{metrics['train_cpu_seconds']:.0f} s CPU time on {metrics['threads']} thread(s))",
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
        check = metrics["export"]["verification"]
        lines.append(
            f"QONNX check     test image {check['example_index']}: max difference to Brevitas "
            f"{check['qonnx_vs_brevitas_max_abs_diff']:.2g}"
            + ("" if check["agrees"] else f" (above {check['atol']}; see export.json)")
        )
        if "qdq" in metrics["export"]:
            qdq = metrics["export"]["qdq"]
            lines.append(
                f"QDQ (ONNX)      {qdq['onnx']}: onnxruntime agrees with Brevitas on "
                f"{qdq['same_prediction']}/{qdq['images']} predictions (max difference "
                f"{qdq['max_abs_diff']:.2g})"
            )
    return lines


def parse_args(argv=None) -> argparse.Namespace:
    """Parse ``argv``; a run preset's (``--config``) values become defaults that explicit options
    override."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.config is None:
        return args
    options = set(vars(parser.parse_args([]))) - {"config"}
    values = load_preset(args.config, options)
    # A run preset's run has a folder of its own (runs/<preset>), not the main job's.
    values.setdefault("out", str(Path("runs") / preset_path(args.config).stem))
    parser.set_defaults(**values)
    return parser.parse_args(argv)


def init_stage(args) -> TrainConfig | None:
    """The config of the run that ``--init-config`` names, checked against this run's options."""
    if not args.init_config:
        return None
    if args.init:
        raise ConfigError("--init and --init-config both name a starting point; give one of them")
    stage_args = parse_args(["--config", args.init_config, "--data-dir", args.data_dir])
    if stage_args.init_config or stage_args.init:
        raise ConfigError(
            f"run preset {args.init_config!r} starts from another run itself; --init-config "
            "takes a run that starts from scratch"
        )
    stage = config_from_args(stage_args)
    if (stage.model, stage.data) != (args.model, args.data):
        raise ConfigError(
            f"run preset {args.init_config!r} trains {stage.model} on {stage.data}, but this run "
            f"is {args.model} on {args.data}; --init-config needs the same model and data"
        )
    return stage


def is_main_process() -> bool:
    """Under torchrun, rank 0 prints and writes the summaries; a plain run is rank 0."""
    return int(os.environ.get("RANK", "0")) == 0


def report(cfg: TrainConfig, metrics: dict) -> None:
    """Print a finished run's summary and write it to its folder."""
    if not is_main_process():
        return
    lines = summary_lines(cfg, metrics)
    print("\n".join(lines))
    RunFolder(cfg.out).summary.write_text("\n".join(lines) + "\n")


def run_init_stage(stage: TrainConfig, resume: bool) -> None:
    """Train the starting run (or resume it), then report it."""
    if is_main_process():
        print(f"{'resuming' if resume else 'training'} the starting run {stage.out} first")
    report(stage, train(stage, resume=resume))


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {args.threads}")
    stage = init_stage(args)
    if stage is not None:
        args.init = str(RunFolder(stage.out).checkpoint)
    cfg = config_from_args(args)
    # Until the starting run has finished this run has not begun: --resume continues that one.
    stage_pending = stage is not None and not RunFolder(stage.out).metrics.is_file()
    if stage is not None and Path(stage.out).resolve() == Path(cfg.out).resolve():
        raise ConfigError(
            f"the starting run (--init-config {args.init_config}) writes to {stage.out}, the "
            "folder of this run; give this run another --out"
        )
    # Both folders are checked before any data is read or folder made.
    check_run_folder(cfg, resume=args.resume and not stage_pending)
    if stage_pending:
        check_run_folder(stage, resume=args.resume)
    elif stage is not None and is_main_process():
        print(f"starting from {args.init}, of the finished run {stage.out}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        if stage_pending:
            run_init_stage(stage, resume=args.resume)
        metrics = train(cfg, resume=args.resume and not stage_pending)
    except KeyboardInterrupt:
        print(
            "interrupted; rerun with --resume to continue from the last finished epoch",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    report(cfg, metrics)
    return 0
