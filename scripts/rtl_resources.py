"""Compare the LUT/FF estimates of the project's RTL layers with Yosys synthesis of their HDL.

    python scripts/rtl_resources.py [--out docs/results/rtl_resources.md]

For each configuration of the calibration grid (qmlp_brevitas.finn.custom_op.rtl.synth), the
layer's HDL is generated as in a FINN build and synthesized with Yosys for UltraScale+
(synth_xilinx -family xcup); prints and writes a Markdown table of estimate vs Yosys.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qmlp_brevitas.finn.custom_op.rtl.synth import (  # noqa: E402
    YosysError,
    calibration_grid,
    compare,
)
from qmlp_brevitas.rtlsim.node import ensure_finn_settings  # noqa: E402


def markdown(rows: list[tuple[str, dict]]) -> str:
    lines = [
        "| configuration | LUT estimate | LUT Yosys | FF estimate | FF Yosys |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, r in rows:
        lines.append(
            f"| {label} | {r['LUT_estimate']} | {r['LUT_yosys']} | "
            f"{r['FF_estimate']} | {r['FF_yosys']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="write the Markdown table here")
    args = parser.parse_args(argv)
    ensure_finn_settings()
    rows = []
    try:
        for label, model in calibration_grid():
            rows.append((label, compare(model, model.graph.node[0].name)))
            print(label, {k: v for k, v in rows[-1][1].items() if k != "cells"}, flush=True)
    except YosysError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    table = markdown(rows)
    print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
