"""``qmlp-ranges`` (``scripts/analyze_ranges.py``): per-layer activation ranges at the
quantization points, with and without LayerNorm and bounded activations (paper Sec. 3, 4.1-4.3),
as a plot, a Markdown table and JSON (:mod:`qmlp_brevitas.analysis`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..analysis import (
    DEFAULT_PERCENTILE,
    float_variants,
    load_run,
    plot_ranges,
    record_ranges,
    run_names,
    summary_table,
    write_json,
)
from ..errors import ConfigError
from ..layout import check_output_folder


def build_parser() -> argparse.ArgumentParser:
    from ..models import list_variants
    from ..recipe import ACTS, NORMS

    p = argparse.ArgumentParser(
        description="Per-layer activation ranges at the quantization points, with and without "
        "LayerNorm and bounded activations: a PNG plot, a Markdown table and JSON.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--run",
        action="append",
        metavar="DIR",
        help="training run folder (config.json + checkpoint.pt); repeat to compare runs, e.g. "
        "float runs trained with --norm affine and --norm layernorm",
    )
    src.add_argument(
        "--model",
        choices=list_variants(small_only=True),
        help="a registered model, float, one variant per --norms x --acts (random init unless "
        "--checkpoint); ranges of untrained models say little, prefer trained runs",
    )
    p.add_argument("--norms", nargs="+", default=["affine", "layernorm"], choices=NORMS)
    p.add_argument("--acts", nargs="+", default=["gelu", "relu6"], choices=ACTS)
    p.add_argument("--checkpoint", help="float weights for --model (one norm and one act)")
    p.add_argument("--seed", type=int, default=0, help="initialisation seed for --model")
    p.add_argument("--percentile", type=float, default=DEFAULT_PERCENTILE)
    p.add_argument("--batches", type=int, default=4, help="test batches to record")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--data-dir", help="dataset folder (default: the run's, else data)")
    p.add_argument("--out", default="runs/ranges", help="folder for ranges.png/.md/.json")
    return p


def main(argv=None) -> int:
    from tqdm import tqdm

    from ..data import build_dataset, make_loader, subset

    args = build_parser().parse_args(argv)
    if args.batches < 1 or args.batch_size < 1:
        raise ConfigError("--batches and --batch-size must be at least 1")
    if args.run and args.checkpoint:
        raise ConfigError("--checkpoint goes with --model; a --run folder holds its own checkpoint")
    check_output_folder(args.out)
    if args.run:
        loaded = [load_run(run, n) for run, n in zip(args.run, run_names(args.run), strict=True)]
        models = {label: model for label, model, _ in loaded}
        data, data_dir = loaded[0][2]["data"], args.data_dir or loaded[0][2]["data_dir"]
        title = "trained runs"
    else:
        models = float_variants(
            args.model, args.norms, args.acts, seed=args.seed, checkpoint=args.checkpoint
        )
        data, data_dir = "fashion_mnist", args.data_dir or "data"
        title = f"{args.model}, " + ("float weights" if args.checkpoint else "random init")
    test = subset(build_dataset(data, data_dir, train=False), args.batches * args.batch_size)
    batches = [x for x, _ in make_loader(test, args.batch_size, train=False)]
    results = {
        label: record_ranges(model, batches, args.percentile)
        for label, model in tqdm(models.items(), desc="recording ranges", dynamic_ncols=True)
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = (
        f"Widest max |x| per layer kind (in brackets: the {args.percentile} percentile of |x|), "
        f"{title}, {len(batches)} test batches.\n\n" + summary_table(results)
    )
    (out / "ranges.md").write_text(table)
    write_json(out / "ranges.json", results)
    plot_ranges(
        results, out / "ranges.png", f"Activation ranges at the quantization points ({title})"
    )
    print(table)
    print(f"wrote {out / 'ranges.png'}, {out / 'ranges.md'}, {out / 'ranges.json'}")
    return 0
