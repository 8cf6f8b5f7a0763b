"""``qmlp-bench-build`` (``scripts/bench_build.py``): time the FINN build of a model to its
estimates (wall and CPU seconds, load average before and after), with the build's constant-time
graph look-ups (:mod:`qmlp_brevitas.finn.fast_lookups`) or, with ``--reference``, qonnx's own.

Prints one JSON line; FINN's output goes to the build folder's ``build_console.log``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import time

from ..layout import BuildFolder, RunFolder


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Time the FINN build of a model to its estimates (wall, CPU seconds, load)."
    )
    p.add_argument("--run", default="runs/qmlp_mixer_28-w4a4", help="run folder with model.onnx")
    p.add_argument("--out", default="build/bench", help="build folder")
    p.add_argument("--target-fps", type=int, default=1000)
    p.add_argument(
        "--reference",
        action="store_true",
        help="qonnx's own linear look-ups (the build before the constant-time look-ups)",
    )
    return p


def main(argv=None) -> int:
    from ..finn.build import BuildRequest, load_verification, run_build

    args = build_parser().parse_args(argv)
    request = BuildRequest(  # checks every setting before anything is made
        RunFolder(args.run).root,
        args.out,
        target_fps=args.target_fps,
        fast_lookups=not args.reference,
    )
    verification = load_verification(request)  # the model is read and checked here
    folder = BuildFolder(request.out_dir)
    folder.root.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    wall, cpu = time.time(), time.process_time()
    with open(folder.console_log, "w") as log:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            summary = run_build(request, verification)
    result = {
        "run": args.run,
        "lookups": "qonnx (reference)" if args.reference else "constant-time",
        "wall_s": round(time.time() - wall, 1),
        "cpu_s": round(time.process_time() - cpu, 1),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "layers": len(summary["layers"]),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result))
    return 0
