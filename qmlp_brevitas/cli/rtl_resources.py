"""``qmlp-rtl-resources`` (``scripts/rtl_resources.py``): the LUT/FF estimates of the project's
RTL layers beside Yosys synthesis of their HDL.

For each configuration of the calibration grid
(:func:`qmlp_brevitas.finn.custom_op.rtl.resource_check.calibration_grid`), the layer's HDL is
generated as in a FINN build and synthesised with the project's Yosys flow for UltraScale+
(:mod:`qmlp_brevitas.finn.synth`); prints and, with ``--out``, writes a Markdown table of
estimate against Yosys.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from ..errors import CheckFailedError
from ..layout import check_output_folder


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="qmlp-rtl-resources",
        description="LUT/FF estimates of the project's RTL layers against Yosys synthesis.",
    )
    p.add_argument("--out", type=Path, help="write the Markdown table to this file")
    return p


def markdown(rows: list[tuple[str, dict]]) -> str:
    """The comparison as a Markdown table."""
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


def main(argv=None) -> int:
    from ..finn.custom_op.rtl.resource_check import calibration_grid, compare
    from ..finn.synth import SynthesisError
    from ..rtlsim.node import ensure_finn_settings

    args = build_parser().parse_args(argv)
    if args.out is not None:  # its folder must be one, checked before any synthesis
        check_output_folder(args.out.parent)
    ensure_finn_settings()
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="qmlp_rtl_resources_") as tmp:
            for i, (label, model) in enumerate(calibration_grid()):
                res = compare(model, model.graph.node[0].name, Path(tmp) / str(i))
                rows.append((label, res))
                print(label, {k: v for k, v in res.items() if k != "cells"}, flush=True)
    except SynthesisError as err:
        raise CheckFailedError(str(err)) from err
    table = markdown(rows)
    print(table)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table)
    return 0
