"""``qmlp-bench`` (``scripts/bench_step.py``): time one training step (forward, backward, AdamW
update) of a Q-MLP model.

For planning GPU time of the paper-size runs, and for comparing float with QAT:
    qmlp-bench --model qmlp_resmlp_24_224 --w 4 --a 4 --batch-size 8
    qmlp-bench --model qmlp_mixer_28 --batch-size 128 --compare --json out.json
    qmlp-bench --model qmlp_mixer_28 --batch-size 128 --compare --norm layernorm

``--compare`` times float, QAT on Brevitas' eager path and QAT on the fast path in one run
(:mod:`qmlp_brevitas.bench`). The quantizers are calibrated on the random input first, as in a
real run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError, RunFolderError


def build_parser() -> argparse.ArgumentParser:
    from ..models import list_variants
    from ..recipe import NORMS

    p = argparse.ArgumentParser(description="Time one training step of a Q-MLP model.")
    p.add_argument("--model", default="qmlp_resmlp_24_224", choices=list_variants())
    p.add_argument("--w", type=int, default=4)
    p.add_argument("--a", type=int, default=4)
    p.add_argument("--float", action="store_true", help="the float model")
    p.add_argument(
        "--norm", choices=NORMS, help="override the preset's norm (layernorm: float LayerNorm)"
    )
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=5, help="timed steps (rounds with --compare)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--device", help="cpu or cuda[:N] (default: cuda when present)")
    p.add_argument("--amp", action="store_true", help="bf16 autocast on CUDA")
    p.add_argument(
        "--fast", action=argparse.BooleanOptionalAction, default=True, help="QAT fast path"
    )
    p.add_argument("--compare", action="store_true", help="float, QAT eager and QAT fast")
    p.add_argument("--json", metavar="FILE", help="write the results to this JSON file")
    return p


def check_args(args: argparse.Namespace) -> None:
    """Refuse bad settings before any model is built."""
    from ..layout import check_output_folder
    from ..quant import check_bit_width

    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {args.threads}")
    for name, least in (("batch_size", 1), ("steps", 1), ("warmup", 0)):
        if getattr(args, name) < least:
            option = "--" + name.replace("_", "-")
            raise ConfigError(f"{option} must be at least {least}, got {getattr(args, name)}")
    if not args.float or args.compare:
        check_bit_width(args.w, "weight bit width (--w)")
        check_bit_width(args.a, "activation bit width (--a)")
    if args.json:
        if Path(args.json).is_dir():
            raise RunFolderError(f"--json {args.json} is a folder; name a file")
        check_output_folder(Path(args.json).parent, "--json")


def main(argv=None) -> int:
    import torch

    from .. import bench
    from ..export import write_json

    args = build_parser().parse_args(argv)
    check_args(args)
    device = bench.pick_device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.compare:
        result = bench.compare(
            args.model,
            args.batch_size,
            args.w,
            args.a,
            args.steps,
            args.warmup,
            device,
            args.amp,
            norm=args.norm,
        )
        print("\n".join(bench.compare_lines(result)))
    else:
        bits = (None, None) if args.float else (args.w, args.a)
        result = bench.time_one(
            args.model,
            args.batch_size,
            *bits,
            args.steps,
            args.warmup,
            device,
            args.fast,
            args.amp,
            norm=args.norm,
        )
        precision = "float" if args.float else f"W{args.w}A{args.a}"
        path = "" if args.float else (", fast path" if args.fast else ", Brevitas eager")
        print(
            f"{args.model} {precision}{path}, {result['params'] / 1e6:.1f} M params, batch "
            f"{args.batch_size}, {device} ({result['threads']} threads): "
            f"{result['median_s']:.3f} s per step (median of {args.steps}, min "
            f"{result['min_s']:.3f}, max {result['max_s']:.3f}), "
            f"{args.batch_size / result['median_s']:.1f} images/s"
        )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        write_json(args.json, result)
    return 0
