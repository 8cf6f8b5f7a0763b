"""Simulate every FINN RTL layer of a build folder with Verilator, bit-exact against FINN.

    python fpga/rtlsim.py --build BUILD_DIR [--model M.onnx] [--input X.npy] [--layer NAME ...]
    python fpga/rtlsim.py --build BUILD_DIR --whole --frames N    # the whole design end to end

Prints a table (layer, FINN op, folding, words checked, mismatches, simulated cycles per frame
vs FINN's estimate, build and simulation time) and a coverage line, and writes rtlsim.json in
the build folder. Exit status: 0 all simulated layers match FINN, 1 a mismatch, 2 an error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qmlp_brevitas.cli import rtlsim_whole  # noqa: E402
from qmlp_brevitas.rtlsim.check import (  # noqa: E402
    HEADER,
    BuildFolderError,
    check_build,
    format_report,
)
from qmlp_brevitas.rtlsim.patches import PatchError  # noqa: E402
from qmlp_brevitas.rtlsim.toolchain import ToolchainError  # noqa: E402


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
    args = parse_args(argv)
    if args.whole:
        try:
            return rtlsim_whole.run(args)
        except rtlsim_whole.USER_ERRORS as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    print(HEADER, flush=True)
    try:
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
    except (BuildFolderError, PatchError, ToolchainError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_report(report, table=False))
    if report["mismatches"]:
        print(f"FAILED: {report['mismatches']} output words differ from FINN", file=sys.stderr)
        return 1
    if report["errors"]:
        print(f"FAILED: layers could not be simulated: {report['errors']}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
