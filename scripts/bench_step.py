#!/usr/bin/env python
"""Time one training step (forward, backward, AdamW update) of a Q-MLP model.

    python scripts/bench_step.py --model qmlp_resmlp_24_224 --w 4 --a 4 --batch-size 8
    python scripts/bench_step.py --model qmlp_mixer_28 --batch-size 128 --compare --json out.json

``--compare`` times float, QAT on Brevitas' eager path and QAT on the fast path in one run
(qmlp_brevitas.bench). The quantizers are calibrated on the random input first, as in a real run.
"""

from __future__ import annotations

import argparse
import sys

from qmlp_brevitas.cli.common import quiet_libraries, run_main


def main(argv=None) -> int:
    quiet_libraries()
    import torch

    from qmlp_brevitas import bench
    from qmlp_brevitas.export import write_json
    from qmlp_brevitas.models import list_variants

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="qmlp_resmlp_24_224", choices=list_variants())
    p.add_argument("--w", type=int, default=4)
    p.add_argument("--a", type=int, default=4)
    p.add_argument("--float", action="store_true", help="the float model")
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
    p.add_argument("--json", help="write the results to this JSON file")
    args = p.parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    device = bench.pick_device(args.device)
    if args.compare:
        result = bench.compare(
            args.model, args.batch_size, args.w, args.a, args.steps, args.warmup, device, args.amp
        )
        print("\n".join(bench.compare_lines(result)))
    else:
        bits = (None, None) if args.float else (args.w, args.a)
        result = bench.time_one(
            args.model, args.batch_size, *bits, args.steps, args.warmup, device, args.fast, args.amp
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
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
