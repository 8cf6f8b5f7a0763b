"""LUT and FF estimates of the project's RTL layers, from the structure of their cores.

The formulas count the LUTs and flip-flops that the cores in ``qmlp_brevitas/hdl`` need on an
UltraScale+ device (carry chains are not LUTs), with coefficients fitted to Yosys' synthesis of
the layers' generated HDL (``synth_xilinx -family xcup``, :mod:`.resource_check`) over a grid
of configurations;
``scripts/rtl_resources.py`` reruns that comparison and ``docs/results/rtl_resources.md`` holds
its table. They are *modelled*: neither Yosys nor these formulas are Vivado results. None of the
cores uses BRAM, URAM or DSP blocks. ``bits(n)`` is the width of a counter or index that holds
``0 .. n - 1`` (at least 1).
"""

from __future__ import annotations

import math


def bits(n: int) -> int:
    """Width of a register holding 0 .. n - 1 (at least 1 bit)."""
    return max(1, math.ceil(math.log2(n))) if n > 1 else 1


def with_ff(inst, estimate: dict) -> dict:
    """FINN's per-layer estimate dict with the layer's FF estimate added."""
    return {**estimate, "FF": int(inst.ff_estimation(""))}


def dup_streams_ff(width: int, outputs: int) -> int:
    """The held word and one pending bit per output."""
    return width + outputs


def dup_streams_lut(width: int, outputs: int) -> int:
    """A pending-bit update per output, the ready AND over the outputs, the take enable (the
    word register needs no LUT)."""
    return outputs + math.ceil(2 * outputs / 6) + 1


def split_ff(width: int, folds: list[int]) -> int:
    """Output word, its valid bit, the word counter, the stream index and the held word's
    destination."""
    return width + 1 + bits(max(folds)) + 2 * bits(len(folds))


def concat_ff(width: int, folds: list[int]) -> int:
    """Output word, its valid bit, the word counter and the input index."""
    return width + 1 + bits(max(folds)) + bits(len(folds))


def split_lut(width: int, folds: list[int]) -> int:
    """Destination decode to the output valids and the ready select: 6 LUTs per output stream
    beyond the first (the word counter maps to a carry chain)."""
    return 6 * (len(folds) - 1)


def concat_lut(width: int, folds: list[int]) -> int:
    """The input multiplexer (one LUT per output bit for up to 4 inputs: 4 data and 2 select
    inputs) and the per-input valid/ready logic (2 per input, 3 more)."""
    n = len(folds)
    mux = width * math.ceil((n - 1) / 3) if n > 1 else 0
    return mux + 2 * n + 3


def _lutram_luts(width: int, depth: int) -> int:
    """LUTs of a ``depth`` x ``width`` memory in LUTRAM as Yosys maps it: 14 bits per 8 LUTs
    (``RAM32M16``) up to 32 words, 7 bits per 8 LUTs (``RAM64M8``) per 64 words beyond."""
    if depth <= 32:
        return 8 * math.ceil(width / 14)
    return 8 * math.ceil(width / 7) * math.ceil(depth / 64)


def acc_pool_ff(pe: int, acc_bits: int, folds: int, tokens: int) -> int:
    """Output word and valid bit, fold and token counters, the memory's registered address;
    with a single fold the accumulators are registers."""
    words = pe * acc_bits
    if folds == 1:
        return 2 * words + 1 + bits(tokens) + 1
    return words + 1 + 2 * bits(folds) + bits(tokens)


def acc_pool_lut(pe: int, acc_bits: int, folds: int, tokens: int) -> int:
    """One LUT per accumulator bit (adder with the first-token zeroing and the write-back or
    output select), the accumulator memory in LUTRAM (registers for a single fold), and the
    fold and token counters (1.5 per counter bit, less 2)."""
    words = pe * acc_bits
    memory = _lutram_luts(words, folds) if folds > 1 else 0
    return words + memory + (3 * (bits(folds) + bits(tokens))) // 2 - 2
