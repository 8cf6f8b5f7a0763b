"""``qmlp-build`` (``fpga/build.py``): compile a QONNX model with FINN into a dataflow design.

The model is a training run's export (``--run``) or any Brevitas QONNX export (``--onnx``,
any file name). Every stage is verified on the export's ``input.npy`` and
``expected_output.npy``, on ``--input X.npy``, or on an input generated from the model's input
quantizer; the summary says which. Without Vivado the build stops after FINN's estimates.

``--budget LUT=N,DSP=M`` searches the highest-fps folding within a resource budget on the cost
models and builds it (:func:`qmlp_brevitas.finn.build.run_budget_build`); ``--requant-bits B``
turns thresholds of B or more output bits into FINN ``Requant`` layers where that is exact. A
malformed budget or a part without known capacities is refused before anything is built.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from ..errors import EXIT_CHECK_FAILED
from ..layout import BuildFolder, RunFolder

DEFAULT_RUN = "runs/qmlp_mixer_28-w4a4"
DEFAULT_FPS = 1000


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Compile a Q-MLP run's export or any Brevitas QONNX export with FINN."
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--run", help=f"run folder with model.onnx (default {DEFAULT_RUN})")
    src.add_argument(
        "--onnx",
        help="any QONNX file (Brevitas export_qonnx); verified on input.npy and "
        "expected_output.npy beside it if there, else on --input or a generated input",
    )
    p.add_argument(
        "--input",
        help="verification input .npy (the expected output is the QONNX graph's output on it)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of a generated verification input")
    p.add_argument(
        "--out", help="output folder (default <run>/fpga, or <folder>/fpga-<name> for --onnx)"
    )
    dev = p.add_mutually_exclusive_group()
    dev.add_argument("--part", help="FPGA part (default xczu7ev-ffvc1156-2-e)")
    dev.add_argument("--board", help="board name known to FINN (e.g. ZCU104, Pynq-Z1)")
    p.add_argument("--clock-ns", type=float, default=5.0, help="clock period (default 5 = 200 MHz)")
    speed = p.add_mutually_exclusive_group()
    speed.add_argument("--target-fps", type=int, help=f"throughput target (default {DEFAULT_FPS})")
    speed.add_argument(
        "--folding", help="FINN folding config JSON (e.g. an earlier build's auto_folding_config)"
    )
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


def default_out(model: Path) -> Path:
    """``<run>/fpga`` for a run's ``model.onnx``, ``<folder>/fpga-<name>`` for another file."""
    run = RunFolder(model.parent)
    return run.default_build.root if model == run.model else model.parent / f"fpga-{model.stem}"


def _target_fps(given: int | None) -> int:
    return DEFAULT_FPS if given is None else given  # 0 is refused, not taken for the default


def main(argv=None) -> int:
    from ..finn.build import (
        BuildRequest,
        check_budget,
        load_verification,
        run_budget_build,
        run_build,
    )
    from ..finn.report import format_summary

    args = build_parser().parse_args(argv)
    model = Path(args.onnx) if args.onnx else RunFolder(args.run or DEFAULT_RUN).model
    request = BuildRequest(  # checks every setting before anything is made
        model=model,
        out_dir=Path(args.out) if args.out else default_out(model),
        part=args.part,
        board=args.board,
        clock_ns=args.clock_ns,
        target_fps=None if args.folding else _target_fps(args.target_fps),
        folding_config=args.folding,
        verify_input=args.input,
        seed=args.seed,
        requant_bits=args.requant_bits,
    )
    if args.budget is not None:
        check_budget(request, args.budget)
    verification = load_verification(request)  # the model is read and checked here
    folder = BuildFolder(request.out_dir)
    print(f"building {model} -> {folder.root} (FINN log: {folder.build_log})")
    print(f"verification data ({verification.source}): {verification.note}", flush=True)
    with contextlib.ExitStack() as stack:
        if not args.verbose:
            folder.root.mkdir(parents=True, exist_ok=True)
            stream = stack.enter_context(folder.console_log.open("w"))
            stack.enter_context(contextlib.redirect_stdout(stream))
            stack.enter_context(contextlib.redirect_stderr(stream))
        if args.budget is None:
            summary = run_build(request, verification)
        else:
            summary = run_budget_build(request, args.budget, verification, log=_to_terminal)
    print(format_summary(summary))
    search = summary.get("folding_search")
    if search:
        rounds = search["confirm_rounds"]
        modelled, built = search["search_totals"], search["built_totals"]
        compared = ", ".join(
            f"{r} {modelled[r]:,.0f} modelled / {built[r]:,.0f} built" for r in ("LUT", "DSP")
        )
        print(
            f"folding search within {search['budget']}: stopped because {search['limited_by']}; "
            f"the built folding fits the budget ({compared}; {rounds} "
            f"build{'s' if rounds > 1 else ''} of a searched folding)"
        )
    print(f"reports in {folder.report_dir}, summary {folder.summary}")
    if summary["message"]:
        print(summary["message"])
    failed = [stage for stage, result in summary["verification"].items() if not result["ok"]]
    if failed:
        worst = max(summary["verification"][stage]["max_abs_diff"] for stage in failed)
        print(
            f"error: the outputs of stage(s) {', '.join(failed)} do not match the expected "
            f"output (max abs difference {worst:.3g}); see {folder.verification_report}",
            file=sys.stderr,
        )
        return EXIT_CHECK_FAILED
    return 0
