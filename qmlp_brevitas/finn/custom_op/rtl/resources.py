"""LUT and FF estimates of the project's RTL layers, from the structure of their cores.

The formulas count the LUT6s and flip-flops that the cores in ``qmlp_brevitas/hdl`` map to on an
UltraScale+ device (6-input LUTs, 64x1 LUTRAM, flip-flops with clock enable and synchronous
reset). They are *modelled*, not Vivado results: ``scripts/rtl_resources.py`` synthesizes each
core with Yosys (``synth_xilinx -family xcup``) over a grid of configurations and compares, and
the README records that comparison. None of the cores uses BRAM, URAM or DSP blocks.

``bits(n)`` is the width of a counter or index that holds ``0 .. n - 1`` (at least 1).
"""

from __future__ import annotations

import math


def bits(n: int) -> int:
    """Width of a register holding 0 .. n - 1 (at least 1 bit)."""
    return max(1, math.ceil(math.log2(n))) if n > 1 else 1


def with_ff(inst, estimate: dict) -> dict:
    """FINN's per-layer estimate dict with the layer's FF estimate added."""
    return {**estimate, "FF": int(inst.ff_estimation())}


def dup_streams_ff(width: int, outputs: int) -> int:
    """The held word and one pending bit per output."""
    return width + outputs


def dup_streams_lut(width: int, outputs: int) -> int:
    """A pending-bit update per output, the ready AND over the outputs, the take enable."""
    return outputs + math.ceil(2 * outputs / 6) + 1


def split_concat_ff(width: int, folds: list[int]) -> int:
    """Output word, its valid bit, the word counter, the stream index (and, for a split, the
    held word's destination)."""
    n = len(folds)
    return width + 1 + bits(max(folds)) + 2 * bits(n)


def _counter_lut(folds: list[int]) -> int:
    """Word counter with increment, the compare against the current stream's fold, and the
    stream index update."""
    c, n = bits(max(folds)), len(folds)
    return c + math.ceil(c / 3) * max(1, math.ceil(n / 2)) + bits(n) + 1


def split_lut(width: int, folds: list[int]) -> int:
    """Counters, the destination decode to the output valids and the ready select."""
    n = len(folds)
    return _counter_lut(folds) + n + math.ceil(n / 4) + 1


def concat_lut(width: int, folds: list[int]) -> int:
    """Counters, the input multiplexer (one LUT6 per output bit selects among up to 4 inputs)
    and the valid/ready select."""
    n = len(folds)
    mux = width * math.ceil((n - 1) / 3) if n > 1 else 0
    return _counter_lut(folds) + mux + n + 1


def acc_pool_ff(pe: int, acc_bits: int, folds: int, tokens: int) -> int:
    """Output word and valid bit, fold and token counters."""
    return pe * acc_bits + 1 + bits(folds) + bits(tokens)


def acc_pool_lut(pe: int, acc_bits: int, folds: int, tokens: int) -> int:
    """PE adders of ``acc_bits`` (one LUT per bit, the first-token zeroing folded in), the
    accumulator memory as 64x1 LUTRAM per bit (registers below 2 words), and the counters."""
    words = pe * acc_bits
    memory = words * math.ceil(folds / 64) if folds > 1 else 0
    counters = bits(folds) + bits(tokens) + math.ceil((bits(folds) + bits(tokens)) / 3) + 2
    return words + memory + counters
