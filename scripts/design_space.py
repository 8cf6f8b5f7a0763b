#!/usr/bin/env python
"""Accuracy against LUTs and frames/s for W2A2/W4A4/W8A8, Q-MLP vs naive. See --help."""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qmlp_brevitas.cli.common import quiet_libraries, run_main  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ablation-out", default="runs/ablation", help="the ablation's run folders")
    p.add_argument("--out", default="runs/design_space", help="where the table and plot go")
    p.add_argument("--lut-budget", type=int, nargs="+", default=[30_000])
    p.add_argument("--train", action="store_true", help="train missing runs (1 epoch each)")
    p.add_argument(
        "--available", action="store_true", help="cost only the exported runs, list the others"
    )
    args = p.parse_args(argv)
    import contextlib

    from tqdm import tqdm

    from qmlp_brevitas import design_space as ds

    points = ds.default_points(args.ablation_out)
    if args.train:
        from qmlp_brevitas.ablation import AblationConfig, ablation_rows, run_one

        cfg = AblationConfig(bits=(2, 4, 8), seeds=(0,), export=True, out=args.ablation_out)
        rows = {r.key: r for r in ablation_rows()}
        for pt in points:
            key = "asymmetric" if pt.technique == "Q-MLP" else "bounded"
            run_one(cfg.train_config(rows[key], pt.bits, 0), log=tqdm.write)
    missing = [str(pt.run_dir) for pt in points if not (pt.run_dir / "model.onnx").is_file()]
    if missing and args.available:
        print(f"not exported yet, left out: {', '.join(missing)}")
        points = [pt for pt in points if (pt.run_dir / "model.onnx").is_file()]
    elif missing:
        raise FileNotFoundError(
            f"no exported run in {', '.join(missing)}: train them with --train (or run "
            "scripts/ablation.py with --hardware so that the runs are exported)"
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    budgets = tuple(args.lut_budget)
    results = []
    with open(out / "build_console.log", "w") as log:
        for pt in tqdm(points, desc="design points"):
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                results.append(ds.cost_point(pt, budgets))
    table = ds.markdown(results, budgets)
    (out / "design_space.md").write_text(table)
    ds.write_csv(results, out / "design_space.csv")
    ds.plot(results, out / "design_space.png")
    print(table)
    print(f"table, csv and plot in {out}")
    return 0


if __name__ == "__main__":
    quiet_libraries()
    sys.exit(run_main(main))
