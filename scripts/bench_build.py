#!/usr/bin/env python
"""Time the FINN build of a model to its estimates (wall, CPU seconds, load). See --help."""

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qmlp_brevitas.cli.common import quiet_libraries, run_main  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default="runs/qmlp_mixer_28-w4a4", help="run folder with model.onnx")
    p.add_argument("--out", default="build/bench", help="build folder")
    p.add_argument("--target-fps", type=int, default=1000)
    p.add_argument(
        "--reference",
        action="store_true",
        help="qonnx's own linear look-ups (the build before the constant-time look-ups)",
    )
    args = p.parse_args(argv)
    import contextlib

    from qmlp_brevitas.finn.build import BuildRequest, run_build

    request = BuildRequest(
        args.run, args.out, target_fps=args.target_fps, fast_lookups=not args.reference
    )
    load_before = os.getloadavg()
    wall, cpu = time.time(), time.process_time()
    with open(Path(args.out).parent / "bench_console.log", "w") as log:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            summary = run_build(request)
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


if __name__ == "__main__":
    quiet_libraries()
    Path("build").mkdir(exist_ok=True)
    sys.exit(run_main(main))
