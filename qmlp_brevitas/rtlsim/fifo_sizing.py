"""FIFO depths of a stitched design from simulated occupancy: gauge, shrink, verify.

FINN sizes FIFOs by simulating the design (``step_set_fifo_depths``), which needs Vivado's
simulator. The same idea with Verilator:

1. **Gauge.** Every FIFO is FINN's ``fifo_gauge`` (unbounded: nothing ever waits on a FIFO),
   and the input is paced at one frame per ``period`` cycles, the bottleneck's cycles per frame
   (FINN's estimate), so that no FIFO fills only because the source runs ahead of the design.
   Each FIFO's maximum occupancy over a few frames is what it must hold for the design to run
   at that rate. On a fork (``DuplicateStreams``, ``StreamingSplit``) that joins again
   (``ElementwiseAdd``, ``StreamingConcat``) the FIFO on the short branch fills with the words
   the long branch still holds: its occupancy covers the long branch's latency.
2. **Shrink.** Each FIFO gets depth ``max occupancy + 1`` (at least FINN's minimum of 2): with
   room for one more word than it ever held, no writer ever waits on it at that rate.
3. **Verify** (:mod:`.whole`): the real FIFOs (finn-rtllib's ``fifo``) at these depths, the input
   at full rate; a stall is a deadlock naming the full FIFOs, after which every full FIFO is
   doubled and the run repeated (up to ``max_rounds``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from qmlp_brevitas.errors import CheckFailedError
from qmlp_brevitas.rtlsim.harness import DesignRun, Drive, full_fifos, run_design
from qmlp_brevitas.rtlsim.stitch import StitchedDesign

MIN_DEPTH = 2
GAUGE_FRAMES = 3


class FifoSizingError(CheckFailedError):
    """The gauge simulation did not deliver every frame; the message says what stopped."""


@dataclass
class FifoSizing:
    """Depths per FIFO and how they were found."""

    depths: dict[str, int]
    max_occupancy: dict[str, int]
    gauge_frames: int
    frame_period: int
    gauge_cycles: int
    gauge_sim_s: float
    grown: dict[str, int] = field(default_factory=dict)  # FIFO -> times doubled after a stall

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n")


def depths_from_occupancy(occupancy: dict[str, int]) -> dict[str, int]:
    """Room for one word more than each FIFO ever held, at least FINN's minimum depth."""
    return {name: max(MIN_DEPTH, int(count) + 1) for name, count in occupancy.items()}


def gauge(
    design: StitchedDesign,
    frame_inputs: list[list[int]],
    frame_outputs: int,
    period: int,
    cache_dir: Path,
    run_dir: Path,
    frames: int = GAUGE_FRAMES,
    stall_cycles: int = 200_000,
    progress: str | None = None,
) -> tuple[dict[str, int], DesignRun]:
    """Maximum occupancy of every FIFO of the gauge ``design`` over ``frames`` frames (the
    given input frames, repeated as needed), paced at one frame per ``period`` cycles."""
    if not design.gauge:
        raise ValueError("gauge() needs a design generated with gauge=True")
    words = [w for k in range(frames) for w in frame_inputs[k % len(frame_inputs)]]
    run = run_design(
        design,
        words,
        frame_outputs * frames,
        cache_dir,
        run_dir,
        drive=Drive(frame_period=period),
        frame_words=len(frame_inputs[0]),
        max_cycles=4 * (frames + 2) * max(period, 1) + 100_000,
        stall_cycles=stall_cycles,
        progress=progress,
        out_per_frame=frame_outputs,
    )
    if run.status != "done":
        raise FifoSizingError(
            f"the gauge simulation ended in a {run.status} at cycle {run.cycles} after "
            f"{len(run.out_words)} of {frame_outputs * frames} output words: {run.diagnosis}"
        )
    occupancy = {f.name: run.fifo_maxcount[f.index] for f in design.fifos}
    return occupancy, run


def grow_full_fifos(
    depths: dict[str, int], design: StitchedDesign, run: DesignRun, grown: dict[str, int]
) -> list[str]:
    """Double every FIFO that was full when ``run`` stalled; return their names."""
    full = [f.name for f in full_fifos(design, run)]
    for name in full:
        depths[name] *= 2
        grown[name] = grown.get(name, 0) + 1
    return full
