#!/usr/bin/env python
"""Compile an exported Q-MLP (or any Brevitas QONNX export) with FINN. See --help."""

import argparse
import contextlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qmlp_brevitas.cli.common import quiet_libraries  # noqa: E402

DEFAULT_RUN = "runs/qmlp_mixer_28-w4a4"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = p.add_mutually_exclusive_group()
    src.add_argument("--run", help=f"run folder with model.onnx (default {DEFAULT_RUN})")
    src.add_argument("--onnx", help="path of an exported model.onnx (input.npy beside it)")
    p.add_argument("--out", help="output folder (default <run>/fpga)")
    dev = p.add_mutually_exclusive_group()
    dev.add_argument("--part", help="FPGA part (default xczu7ev-ffvc1156-2-e)")
    dev.add_argument("--board", help="board name known to FINN (e.g. ZCU104, Pynq-Z1)")
    p.add_argument("--clock-ns", type=float, default=5.0, help="clock period (default 5 = 200 MHz)")
    speed = p.add_mutually_exclusive_group()
    speed.add_argument("--target-fps", type=int, help="throughput target (default 1000)")
    speed.add_argument("--folding", help="FINN folding config JSON instead of a target")
    p.add_argument(
        "--budget",
        nargs="?",
        const="",
        metavar="LUT=N,DSP=M",
        help="search the highest-fps folding within this budget (resources not named: the "
        "part's capacity; --budget alone: the whole part), then build it",
    )
    p.add_argument(
        "--requant-bits",
        type=int,
        metavar="B",
        help="thresholds of B or more output bits become FINN Requant layers where exact",
    )
    p.add_argument("--verbose", action="store_true", help="show FINN's build output")
    return p


def _to_terminal(message: str) -> None:
    """Print to the terminal while FINN's output goes to the console log."""
    print(message, file=sys.__stdout__, flush=True)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from qmlp_brevitas.finn.build import (
        BuildRequest,
        resolve_model_dir,
        run_budget_build,
        run_build,
    )
    from qmlp_brevitas.finn.report import format_summary

    run = args.run if args.run or args.onnx else DEFAULT_RUN
    model_dir = resolve_model_dir(run=run if not args.onnx else None, onnx=args.onnx)
    out = Path(args.out) if args.out else model_dir / "fpga"
    request = BuildRequest(
        model_dir=model_dir,
        out_dir=out,
        part=args.part,
        board=args.board,
        clock_ns=args.clock_ns,
        target_fps=None if args.folding else (args.target_fps or 1000),
        folding_config=args.folding,
        requant_bits=args.requant_bits,
    )
    out.mkdir(parents=True, exist_ok=True)
    print(f"building {model_dir / 'model.onnx'} -> {out} (FINN log: {out / 'build_dataflow.log'})")
    console = out / "build_console.log"
    with contextlib.ExitStack() as stack:
        if not args.verbose:
            stream = stack.enter_context(console.open("w"))
            stack.enter_context(contextlib.redirect_stdout(stream))
            stack.enter_context(contextlib.redirect_stderr(stream))
        if args.budget is None:
            summary = run_build(request)
        else:
            summary = run_budget_build(request, args.budget, log=_to_terminal)
    print(format_summary(summary))
    search = summary.get("folding_search")
    if search:
        print(
            f"folding search within {search['budget']}: stopped because {search['limited_by']}; "
            f"the built folding {'fits' if search['confirmed_fits'] else 'does NOT fit'} the budget"
        )
    print(f"reports in {out / 'report'}, summary {out / 'summary.json'}")
    if summary["message"]:
        print(summary["message"])
    failed = [stage for stage, result in summary["verification"].items() if not result["ok"]]
    if failed:
        worst = max(summary["verification"][stage]["max_abs_diff"] for stage in failed)
        print(
            f"error: the outputs of stage(s) {', '.join(failed)} do not match expected_output.npy "
            f"(max abs difference {worst:.3g}); see {out / 'report' / 'verification.json'}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    quiet_libraries()
    from qmlp_brevitas.cli.common import run_main
    from qmlp_brevitas.finn.build import BuildError

    try:
        sys.exit(run_main(main))
    except BuildError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
