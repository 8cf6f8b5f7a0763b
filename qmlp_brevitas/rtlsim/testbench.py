"""cocotb testbench: stream words through a FINN layer's AXI-stream ports and record outputs.

It runs inside the simulator, started by :func:`qmlp_brevitas.rtlsim.toolchain.run_testbench`,
and reads its job (a JSON file named by ``QMLP_RTLSIM_JOB``): the input words per port, the
number of output words expected per port, the probabilities of TVALID and TREADY being high in
a cycle (1.0: full rate; below 1.0: random bubbles and back-pressure), a seed and a cycle limit.
It writes every output word with the cycle of its handshake to the result file; the comparison
with FINN's reference is done by the caller.

Handshakes are decided in the ReadOnly phase before the rising edge, after this cycle's TVALID,
TDATA and TREADY have been driven and the design has settled: a transfer happens exactly when
TVALID and TREADY are both high at that edge, so no handshake is sampled a cycle late.
"""

from __future__ import annotations

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

RESET_CYCLES = 8


class _Source:
    """Drives one AXI-stream slave port of the design from a list of words."""

    def __init__(self, dut, port: str, words: list[int], prob: float, rng: random.Random):
        self.tdata = getattr(dut, f"{port}_TDATA")
        self.tvalid = getattr(dut, f"{port}_TVALID")
        self.tready = getattr(dut, f"{port}_TREADY")
        self.words, self.prob, self.rng = words, prob, rng
        self.index, self.held = 0, False
        self.first_cycle: int | None = None

    def drive(self) -> None:
        if not self.held and self.index < len(self.words):
            self.held = self.prob >= 1.0 or self.rng.random() < self.prob
            if self.held:
                self.tdata.value = self.words[self.index]
        self.tvalid.value = int(self.held)

    def sample(self, cycle: int) -> None:
        if self.held and int(self.tready.value):
            if self.first_cycle is None:
                self.first_cycle = cycle
            self.index += 1
            self.held = False


class _Sink:
    """Receives words from one AXI-stream master port of the design."""

    def __init__(self, dut, port: str, count: int, prob: float, rng: random.Random):
        self.tdata = getattr(dut, f"{port}_TDATA")
        self.tvalid = getattr(dut, f"{port}_TVALID")
        self.tready = getattr(dut, f"{port}_TREADY")
        self.count, self.prob, self.rng = count, prob, rng
        self.ready = False
        self.words: list[int] = []
        self.cycles: list[int] = []

    def drive(self) -> None:
        self.ready = self.prob >= 1.0 or self.rng.random() < self.prob
        self.tready.value = int(self.ready)

    def sample(self, cycle: int) -> None:
        if self.ready and int(self.tvalid.value):
            self.words.append(self.tdata.value.to_unsigned())
            self.cycles.append(cycle)

    @property
    def done(self) -> bool:
        return len(self.words) >= self.count


@cocotb.test()
async def stream_layer(dut) -> None:
    """Reset the layer, stream the job's inputs, collect its outputs, write the result."""
    with open(os.environ["QMLP_RTLSIM_JOB"]) as f:
        job = json.load(f)
    rng = random.Random(job["seed"])
    clk = getattr(dut, job["clock"])
    rst_n = getattr(dut, job["reset_n"])
    sources = [
        _Source(dut, s["port"], [int(w, 16) for w in s["words"]], job["valid_prob"], rng)
        for s in job["inputs"]
    ]
    sinks = [_Sink(dut, s["port"], s["count"], job["ready_prob"], rng) for s in job["outputs"]]
    for src in sources:
        src.tvalid.value = 0
    for sink in sinks:
        sink.tready.value = 0
    cocotb.start_soon(Clock(clk, 10, unit="ns").start())
    rst_n.value = 0
    for _ in range(RESET_CYCLES):
        await RisingEdge(clk)
    rst_n.value = 1
    await RisingEdge(clk)

    cycle = 0
    limit = int(job["max_cycles"])
    while not all(s.done for s in sinks) and cycle < limit:
        await FallingEdge(clk)
        for src in sources:
            src.drive()
        for sink in sinks:
            sink.drive()
        await ReadOnly()
        for src in sources:
            src.sample(cycle)
        for sink in sinks:
            sink.sample(cycle)
        cycle += 1

    result = {
        "cycles": cycle,
        "timed_out": not all(s.done for s in sinks),
        "inputs": [
            {"port": s["port"], "consumed": src.index, "first_cycle": src.first_cycle}
            for s, src in zip(job["inputs"], sources, strict=True)
        ],
        "outputs": [
            {
                "port": s["port"],
                "words": [format(w, "x") for w in sink.words],
                "cycles": sink.cycles,
            }
            for s, sink in zip(job["outputs"], sinks, strict=True)
        ],
    }
    with open(job["result"], "w") as f:
        json.dump(result, f)
