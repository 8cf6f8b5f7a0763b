"""``qmlp-rtlsim`` (``fpga/rtlsim.py``): every FINN RTL layer of a build, in Verilator.

    qmlp-rtlsim --build BUILD_DIR [--model M.onnx] [--input X.npy] [--layer NAME ...]
    qmlp-rtlsim --build BUILD_DIR --whole --frames N    # the whole design end to end

Simulates each RTL layer bit-exact against FINN's execution and prints a table (layer, FINN op,
folding, words checked, mismatches, simulated cycles per frame vs FINN's estimate, build and
simulation time) and a coverage line, and writes rtlsim.json in the build folder. Exit status:
0 all simulated layers match FINN, 1 a mismatch or nothing to check, 2 an error. With
``--whole``: :mod:`qmlp_brevitas.cli.rtlsim_whole`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import EXIT_BAD_INPUT, EXIT_CHECK_FAILED
from . import rtlsim_whole


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", required=True, type=Path, help="FINN build folder")
    parser.add_argument("--model", type=Path, help="specialised model (default: the build's)")
    parser.add_argument("--input", type=Path, help="verification input .npy (default: build's)")
    parser.add_argument("--cache", type=Path, help="simulator cache (default: BUILD/rtlsim/cache)")
    parser.add_argument("--part", help="FPGA part for HDL generation (default: the build's)")
    parser.add_argument("--clock-ns", type=float, help="clock period in ns (default: build's)")
    parser.add_argument("--frames", type=int, default=2, help="frames streamed per run")
    parser.add_argument(
        "--no-backpressure", action="store_true", help="skip the run with bubbles/back-pressure"
    )
    parser.add_argument("--layer", action="append", help="simulate only this layer (repeatable)")
    rtlsim_whole.add_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from ..rtlsim.check import HEADER, check_build, format_report

    args = parse_args(argv)
    if args.whole:
        return rtlsim_whole.run(args)
    print(HEADER, flush=True)
    report = check_build(
        args.build,
        model_path=args.model,
        input_path=args.input,
        cache_dir=args.cache,
        fpgapart=args.part,
        clk_ns=args.clock_ns,
        frames=args.frames,
        backpressure=not args.no_backpressure,
        layers=args.layer,
    )
    print(format_report(report, table=False))
    if report["mismatches"]:
        print(f"FAILED: {report['mismatches']} output words differ from FINN", file=sys.stderr)
        return EXIT_CHECK_FAILED
    if report["errors"]:
        print(f"FAILED: layers could not be simulated: {report['errors']}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0
