"""cocotb testbench of a stitched design: control, progress and deadlock watch, no data path.

Runs inside the simulator, started by :func:`qmlp_brevitas.rtlsim.toolchain.run_testbench`. The
data never passes through Python: the design's input words come from a file through the
SystemVerilog source ``axis_file_source`` and its outputs go to a file through
``axis_file_sink`` (``qmlp_brevitas/hdl``), and the clock runs in the simulator (cocotb's GPI
clock). This testbench resets the design, then wakes every ``chunk_cycles`` cycles to read the
counters of the simulation top (``qmlp_whole_tb``):

* done when ``out_words`` reaches the expected count;
* a **deadlock** when no stream has moved (``last_move``) for ``stall_cycles`` cycles: the
  occupancy of every FIFO and the TVALID/TREADY of every stream are recorded, so that the
  caller can name the FIFO or layer that stopped;
* a **timeout** when the cycle budget ``max_cycles`` runs out while streams still move.

It writes the result (status, cycles, counters, FIFO occupancies) as JSON to ``job["result"]``,
and after every chunk the cycle and the output words so far to ``job["progress"]`` (if given).
"""

from __future__ import annotations

import json
import os
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge, Timer

RESET_CYCLES = 8
PERIOD_NS = 10
COUNT_WIDTH = 32


def _words(value, count: int, width: int = COUNT_WIDTH) -> list[int]:
    bits = value.to_unsigned()
    mask = (1 << width) - 1
    return [(bits >> (k * width)) & mask for k in range(count)]


def _bits(value, count: int) -> list[int]:
    bits = value.to_unsigned()
    return [(bits >> k) & 1 for k in range(count)]


@cocotb.test()
async def run_whole(dut) -> None:
    """Reset, let the design stream the input file, watch progress, record the outcome."""
    with open(os.environ["QMLP_RTLSIM_JOB"]) as f:
        job = json.load(f)
    expected = int(job["expected_out_words"])
    chunk = int(job["chunk_cycles"])
    stall_limit = int(job["stall_cycles"])
    max_cycles = int(job["max_cycles"])
    nf, ns = int(job["fifos"]), int(job["streams"])

    dut.finish.value = 0
    dut.ap_rst_n.value = 0
    Clock(dut.ap_clk, PERIOD_NS, unit="ns").start()
    for _ in range(RESET_CYCLES):
        await RisingEdge(dut.ap_clk)
    dut.ap_rst_n.value = 1
    await RisingEdge(dut.ap_clk)

    start = time.perf_counter()
    status = "timeout"
    progress = job.get("progress")
    while True:
        await Timer(chunk * PERIOD_NS, unit="ns")
        out_words = int(dut.out_words.value)
        cycle = int(dut.cycle.value)
        if progress:
            with open(progress, "w") as f:
                f.write(f"{cycle} {out_words}\n")
        if out_words >= expected:
            status = "done"
            break
        if cycle - int(dut.last_move.value) > stall_limit:
            status = "deadlock"
            break
        if cycle > max_cycles:
            break
    wall = time.perf_counter() - start
    if progress:
        with open(progress, "w") as f:
            f.write(f"{int(dut.cycle.value)} {int(dut.out_words.value)}\n")
    result = {
        "status": status,
        "cycles": int(dut.cycle.value),
        "last_move": int(dut.last_move.value),
        "in_words": int(dut.in_words.value),
        "first_in_cycle": int(dut.first_in_cycle.value),
        "out_words": int(dut.out_words.value),
        "in_exhausted": bool(int(dut.in_exhausted.value)),
        "fifo_count": _words(dut.fifo_count.value, nf),
        "fifo_maxcount": _words(dut.fifo_maxcount.value, nf),
        "stream_valid": _bits(dut.stream_valid.value, ns),
        "stream_ready": _bits(dut.stream_ready.value, ns),
        "sim_seconds": wall,
    }
    dut.finish.value = 1
    await RisingEdge(dut.ap_clk)
    await RisingEdge(dut.ap_clk)
    with open(job["result"], "w") as f:
        json.dump(result, f)
