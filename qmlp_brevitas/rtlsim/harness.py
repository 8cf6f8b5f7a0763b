"""Run a stitched design in Verilator: words in from a file, words out to a file, outcome back.

:func:`run_design` compiles the design's simulation top (cached by the text of its sources),
writes the input words to a file, runs :mod:`.whole_testbench` with the source and sink
settings as plusargs, and returns a :class:`DesignRun`: every output word with its cycle, the
FIFO occupancies, and for a stall a diagnosis (:func:`diagnose_stall`) naming the full FIFOs
and the layers waiting on them.
"""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from qmlp_brevitas.rtlsim.stitch import TB_TOP, StitchedDesign
from qmlp_brevitas.rtlsim.toolchain import BUILD_ARGS, build_simulator, run_testbench

TESTBENCH = "qmlp_brevitas.rtlsim.whole_testbench"
CHUNK_CYCLES = 4096
# cocotb's runner makes every signal public (--public-flat-rw), which keeps Verilator from
# optimising the design; the testbench reads only the simulation top's ports, which are marked
# public in the generated top (2.4x faster on the plain MLP: 180k vs 76k cycles/s). The C++ of
# the model is compiled with -O2 instead of Verilator's -Os.
WHOLE_BUILD_ARGS = (*BUILD_ARGS, "--no-public-flat-rw", "-CFLAGS", "-O2")


@dataclass(frozen=True)
class Drive:
    """How the source and sink drive the design's streams."""

    valid_pct: int = 100  # chance the source offers a word in a cycle
    ready_pct: int = 100  # chance the sink is ready in a cycle
    frame_period: int = 0  # pace: frame k offered no earlier than cycle k * frame_period
    seed: int = 1


FULL_RATE = Drive()


@dataclass
class DesignRun:
    """The outcome of one simulation of a stitched design."""

    status: str  # "done", "deadlock" or "timeout"
    cycles: int
    out_words: list[int]
    out_cycles: list[int]
    first_in_cycle: int | None
    in_words_sent: int
    fifo_maxcount: list[int]
    fifo_count: list[int]
    stream_valid: list[int]
    stream_ready: list[int]
    build_s: float
    build_cached: bool
    sim_s: float
    diagnosis: str = ""
    run_dir: Path | None = field(default=None, repr=False)


class _ProgressBar:
    """A tqdm bar of frames out, read from the testbench's progress file by a thread."""

    def __init__(self, path: Path, total_words: int, per_frame: int, desc: str | None):
        self.path, self.per_frame, self.desc = path, max(per_frame, 1), desc
        self.total = total_words // self.per_frame
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def _update(self, bar) -> None:
        try:
            cycles, words = (int(v) for v in self.path.read_text().split())
        except (OSError, ValueError):
            return
        bar.n = min(words // self.per_frame, self.total)
        bar.set_postfix(cycles=f"{cycles:,}", refresh=False)
        bar.refresh()

    def _poll(self, bar) -> None:
        while not self.stop.wait(2.0):
            self._update(bar)

    def __enter__(self):
        if self.desc is None:
            return self
        from tqdm import tqdm

        self.bar = tqdm(total=self.total, desc=self.desc, unit="frame")
        self.thread = threading.Thread(target=self._poll, args=(self.bar,), daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.thread is not None:
            self.stop.set()
            self.thread.join()
            self._update(self.bar)
            self.bar.close()


def write_words(path: Path, words: list[int]) -> None:
    """One hex word per line, as ``axis_file_source`` reads them."""
    with open(path, "w") as f:
        f.writelines(f"{w:x}\n" for w in words)


def read_sink(path: Path) -> tuple[list[int], list[int]]:
    """The ``(cycles, words)`` that ``axis_file_sink`` wrote."""
    cycles, words = [], []
    if not path.is_file():
        return cycles, words
    for line in path.read_text().splitlines():
        cyc, word = line.split()
        cycles.append(int(cyc))
        words.append(int(word, 16))
    return cycles, words


def full_fifos(design: StitchedDesign, run: DesignRun) -> list:
    """FIFOs refusing a word at the end of ``run``: their writer offers one (TVALID) and the
    FIFO is not ready (TREADY low) -- full, whatever its implemented capacity."""
    writes = {s.consumer: s.index for s in design.streams if s.consumer}
    return [
        f
        for f in design.fifos
        if run.stream_valid[writes[f.name]] and not run.stream_ready[writes[f.name]]
    ]


def diagnose_stall(design: StitchedDesign, run: DesignRun) -> str:
    """What stopped, from the snapshot at the stall: joins that hold data on one input and wait
    on another, forks that cannot write an output, and every full FIFO."""
    fifo_names = {f.name for f in design.fifos}
    fifo_by_name = {f.name: f for f in design.fifos}
    full = full_fifos(design, run)
    layers: dict[str, dict[str, list]] = {}
    for st in design.streams:
        if st.consumer is not None and st.consumer not in fifo_names:
            layers.setdefault(st.consumer, {"in": [], "out": []})["in"].append(st)
        if st.producer is not None and st.producer not in fifo_names:
            layers.setdefault(st.producer, {"in": [], "out": []})["out"].append(st)
    parts = []
    for name, io in layers.items():
        ins = io["in"]
        if len(ins) > 1 and any(run.stream_valid[s.index] for s in ins):
            waiting = [s.consumer_port for s in ins if not run.stream_valid[s.index]]
            if waiting:
                parts.append(f"{name} holds input on some ports but waits for {', '.join(waiting)}")
        outs = io["out"]
        blocked = [s for s in outs if run.stream_valid[s.index] and not run.stream_ready[s.index]]
        if len(outs) > 1 and blocked:
            parts.append(
                f"{name} cannot write "
                + ", ".join(f"{s.producer_port} ({s.consumer} full)" for s in blocked)
            )
    if full:
        parts.append(
            "full FIFOs: "
            + ", ".join(
                f"{f.name} (depth {f.depth}, {f.after} -> {f.before})"
                for f in sorted(full, key=lambda f: fifo_by_name[f.name].before)
            )
        )
    return "; ".join(parts) or "no stream is valid: the design is idle"


def run_design(
    design: StitchedDesign,
    input_words: list[int],
    expected_out_words: int,
    cache_dir: Path,
    run_dir: Path,
    drive: Drive = FULL_RATE,
    frame_words: int = 0,
    max_cycles: int = 10_000_000,
    stall_cycles: int = 100_000,
    progress: str | None = None,
    out_per_frame: int = 1,
) -> DesignRun:
    """Compile (or reuse) ``design`` and stream ``input_words`` through it (see module doc).

    ``progress``: a description for a progress bar of the frames out (``out_per_frame`` output
    words each), fed from the testbench's progress file while the simulator runs.
    """
    build = build_simulator(design.sources, TB_TOP, Path(cache_dir), build_args=WHOLE_BUILD_ARGS)
    # absolute: the simulator runs in its own folder
    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    for data in design.data_files:
        shutil.copyfile(data, run_dir / data.name)
    in_file, out_file = run_dir / "input.hex", run_dir / "output.txt"
    write_words(in_file, input_words)
    out_file.unlink(missing_ok=True)
    progress_file = run_dir / "progress.txt"
    progress_file.unlink(missing_ok=True)
    job = {
        "progress": str(progress_file),
        "expected_out_words": expected_out_words,
        "chunk_cycles": min(CHUNK_CYCLES, max(64, stall_cycles // 4)),
        "stall_cycles": stall_cycles,
        "max_cycles": max_cycles,
        "fifos": len(design.fifos),
        "streams": len(design.streams),
    }
    plusargs = (
        f"+input={in_file}",
        f"+output={out_file}",
        f"+valid_pct={drive.valid_pct}",
        f"+ready_pct={drive.ready_pct}",
        f"+frame_words={frame_words}",
        f"+frame_period={drive.frame_period}",
        f"+verilator+seed+{drive.seed}",
    )
    start = time.perf_counter()
    with _ProgressBar(progress_file, expected_out_words, out_per_frame, progress):
        result = run_testbench(build, job, run_dir, test_module=TESTBENCH, plusargs=plusargs)
    sim_s = time.perf_counter() - start
    cycles, words = read_sink(out_file)
    first = result["first_in_cycle"]
    run = DesignRun(
        status=result["status"],
        cycles=result["cycles"],
        out_words=words,
        out_cycles=cycles,
        first_in_cycle=None if first >= 2**63 else first,
        in_words_sent=result["in_words"],
        fifo_maxcount=result["fifo_maxcount"],
        fifo_count=result["fifo_count"],
        stream_valid=result["stream_valid"],
        stream_ready=result["stream_ready"],
        build_s=build.build_s,
        build_cached=build.cached,
        sim_s=sim_s,
        run_dir=run_dir,
    )
    if run.status != "done":
        run.diagnosis = diagnose_stall(design, run)
    return run
