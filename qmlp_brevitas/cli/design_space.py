"""``qmlp-design-space`` (``scripts/design_space.py``): accuracy against LUTs and frames/s for
W2A2, W4A4 and W8A8, Q-MLP against naive quantization (ReLU6), at the best folding within the
part and within each LUT budget (:mod:`qmlp_brevitas.design_space`).

The design points are the ablation's seed-0 runs (``qmlp-ablation --out``); ``--train`` trains
and exports the missing ones. Writes ``design_space.md``, ``.csv`` and ``.png`` to ``--out``
(:class:`qmlp_brevitas.layout.DesignSpaceFolder`).
"""

from __future__ import annotations

import argparse
import contextlib

from ..errors import ConfigError, RunFolderError
from ..layout import DesignSpaceFolder, RunFolder, check_output_folder


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Accuracy against LUTs and frames/s for W2A2/W4A4/W8A8, Q-MLP vs naive."
    )
    p.add_argument("--ablation-out", default="runs/ablation", help="the ablation's run folders")
    p.add_argument("--out", default="runs/design_space", help="where the table and plot go")
    p.add_argument(
        "--lut-budget",
        type=int,
        nargs="+",
        default=[30_000],
        help="LUT budgets to search the folding within (besides the whole part)",
    )
    p.add_argument("--train", action="store_true", help="train missing runs (1 epoch each)")
    p.add_argument(
        "--available", action="store_true", help="cost only the exported runs, list the others"
    )
    return p


def main(argv=None) -> int:
    from tqdm import tqdm

    from .. import design_space as ds
    from ..finn.build import DEFAULT_PART
    from ..finn.parts import parse_budget

    args = build_parser().parse_args(argv)
    if args.train and args.available:
        raise ConfigError("give --train (train the missing runs) or --available, not both")
    budgets = tuple(args.lut_budget)
    for budget in budgets:  # refused before anything is trained or built
        parse_budget(f"LUT={budget}", DEFAULT_PART)
    folder = DesignSpaceFolder(check_output_folder(args.out))
    check_output_folder(args.ablation_out, "--ablation-out")
    points = ds.default_points(args.ablation_out)
    if args.train:
        from ..ablation import AblationConfig, ablation_rows, run_one

        cfg = AblationConfig(bits=(2, 4, 8), seeds=(0,), export=True, out=args.ablation_out)
        rows = {r.key: r for r in ablation_rows()}
        for pt in points:
            run_one(cfg.train_config(rows[pt.row], pt.bits, 0), log=tqdm.write)
    missing = [str(pt.run_dir) for pt in points if not RunFolder(pt.run_dir).model.is_file()]
    if missing and args.available:
        print(f"not exported yet, left out: {', '.join(missing)}")
        points = [pt for pt in points if RunFolder(pt.run_dir).model.is_file()]
    elif missing:
        raise RunFolderError(
            f"no exported run in {', '.join(missing)}: train them with --train (or run "
            "qmlp-ablation with --hardware so that the runs are exported), or cost the others "
            "with --available"
        )
    if not points:
        raise RunFolderError(f"no exported run under {args.ablation_out}: train them with --train")
    folder.root.mkdir(parents=True, exist_ok=True)
    results = []
    with open(folder.console_log, "w") as log:
        for pt in tqdm(points, desc="design points"):
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                results.append(ds.cost_point(pt, budgets, part=DEFAULT_PART))
    table = ds.markdown(results, budgets)
    folder.table.write_text(table)
    ds.write_csv(results, folder.csv)
    ds.plot(results, folder.plot)
    print(table)
    print(f"table, csv and plot in {folder.root}")
    return 0
