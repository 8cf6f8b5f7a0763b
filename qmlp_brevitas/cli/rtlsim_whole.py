"""``fpga/rtlsim.py --whole``: the whole accelerator of a FINN build simulated end to end.

Streams the first N test images of the training run's dataset through the stitched design
(:mod:`qmlp_brevitas.rtlsim.whole`), prints measured figures beside FINN's estimates and writes
``rtlsim_whole.json`` in the build folder. Exit status: 0 every frame exact, 1 a frame differs
from FINN's integers or the design stalled, 2 an error before simulating.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import EXIT_CHECK_FAILED, ConfigError
from ..layout import BuildFolder, BuildFolderError
from ..rtlsim.harness import Drive


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the whole-design simulation."""
    group = parser.add_argument_group("whole design (--whole)")
    group.add_argument(
        "--whole", action="store_true", help="simulate the whole stitched design end to end"
    )
    group.add_argument(
        "--run", type=Path, help="training run with checkpoint.pt (default: the build's model)"
    )
    group.add_argument("--data-dir", type=Path, help="dataset folder (default: the run's)")
    group.add_argument("--fifo-depths", type=Path, help="FIFO depths JSON instead of sizing")
    group.add_argument(
        "--resize-fifos", action="store_true", help="size the FIFOs again (ignore earlier depths)"
    )
    group.add_argument(
        "--valid-pct", type=int, default=100, help="chance of input TVALID per cycle (bubbles)"
    )
    group.add_argument(
        "--ready-pct", type=int, default=100, help="chance of output TREADY per cycle"
    )


def _run_folder(args, build: Path) -> Path:
    """The training run whose checkpoint gives Brevitas' outputs: ``--run``, else the folder of
    the model the build compiled."""
    if not build.is_dir():
        raise BuildFolderError(f"build folder {build} does not exist; run fpga/build.py")
    if args.run is not None:
        return args.run
    model = BuildFolder(build.resolve()).read_summary().get("model")
    run = Path(model).parent if model and Path(model).suffix == ".onnx" else None
    if run is None or not (run / "checkpoint.pt").is_file():
        raise BuildFolderError(
            f"{build}/summary.json names no training run with a checkpoint.pt (model: {model}); "
            "pass --run with the run folder"
        )
    return run


def _fmt(value, spec: str = ",.0f") -> str:
    return "-" if value is None else format(value, spec)


def format_whole(report: dict) -> str:
    """Measured figures beside FINN's estimates."""
    rows = [
        f"whole design {report['build_dir']}: {report['frames']} frames, {report['layers']} "
        f"layers, {report['fifos']} FIFOs ({report['fifo_depths_source']})",
        f"{'':28}{'measured':>16}{'FINN estimate':>16}",
        f"{'prediction agreement':28}{report['prediction_agreement']:>16.4f}{'(vs Brevitas)':>16}",
        f"{'exact outputs':28}{report['exact_outputs']:>16.4f}{'(vs FINN)':>16}",
        f"{'cycles per frame':28}{_fmt(report['cycles_per_frame']):>16}"
        f"{_fmt(report['cycles_per_frame_finn_estimate']):>16}",
        f"{'frames per second':28}{_fmt(report['fps'], ',.1f'):>16}"
        f"{_fmt(report['fps_finn_estimate'], ',.1f'):>16}",
        f"{'latency (cycles)':28}{_fmt(report['latency_cycles']):>16}"
        f"{_fmt(report['latency_cycles_finn_estimate']):>16}",
    ]
    cost = report["fifo_cost_finn_estimate"]
    total = sum(f["depth"] for f in report["fifo_depths"].values())
    rows.append(
        f"FIFOs: {total:,} words in {report['fifos']} FIFOs; FINN's cost model: "
        f"{cost['LUT']:,.0f} LUT, {cost['BRAM_18K']:,.0f} BRAM_18K, {cost['URAM']:,.0f} URAM"
    )
    if report.get("input_quantization_agreement") is not None:
        rows.append(
            "input quantization: Brevitas' integers equal the QONNX input quantizer's on "
            f"{100 * report['input_quantization_agreement']:.1f}% of frames"
        )
    if report.get("accuracy_hardware") is not None:
        rows.append(
            f"accuracy on these frames: hardware {100 * report['accuracy_hardware']:.2f}%, "
            f"Brevitas {100 * report['accuracy_brevitas']:.2f}%"
        )
    build = (
        "cached"
        if report["verilator_build_cached"]
        else f"{report['verilator_build_seconds']:.0f} s"
    )
    rows.append(
        f"simulation: {report['simulated_cycles']:,} cycles in {report['sim_seconds']:.1f} s "
        f"({_fmt(report['sim_frames_per_second'], ',.2f')} frames/s, "
        f"{_fmt(report['sim_cycles_per_second'])} cycles/s); Verilator build {build}"
    )
    if report["status"] != "done":
        rows.append(f"{report['status'].upper()}: {report['deadlock']}")
    return "\n".join(rows)


def run(args) -> int:
    """Run the whole-design simulation for the parsed ``args`` of ``fpga/rtlsim.py``."""
    from qmlp_brevitas.rtlsim.whole import run_reference, simulate_whole

    if args.frames < 1:
        raise ConfigError(f"--frames must be at least 1, got {args.frames}")
    for name in ("valid_pct", "ready_pct"):
        value = getattr(args, name)
        if not 1 <= value <= 100:
            raise ConfigError(f"--{name.replace('_', '-')} must be 1..100, got {value}")
    ref = run_reference(_run_folder(args, args.build), args.frames, args.data_dir)
    report = simulate_whole(
        args.build,
        ref,
        fifo_depths=args.fifo_depths,
        resize=args.resize_fifos,
        cache_dir=args.cache,
        drive=Drive(valid_pct=args.valid_pct, ready_pct=args.ready_pct),
    )
    print(format_whole(report))
    print(f"written to {BuildFolder(report['build_dir']).rtlsim_whole_report}")
    if report["status"] != "done" or report["exact_outputs"] < 1.0:
        return EXIT_CHECK_FAILED
    return 0
