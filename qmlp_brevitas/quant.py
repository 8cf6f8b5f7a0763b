"""Brevitas quantizers of Q-MLP (Zhao, Dong, Keutzer 2022, Sec. 4).

Every quantizer here is a Brevitas quantizer class composed from Brevitas presets; nothing
fake-quantizes by hand. The recipe of each is its name:

* :class:`PerChannelWeightQuant` -- symmetric, narrow-range, per-output-channel weights (max stats).
* :class:`PerTensorWeightQuant` -- the same per tensor, the plain weight quantizer.
* :class:`PercentileActQuant` / :class:`PercentileUnsignedActQuant` -- per-tensor activations whose
  scale is initialised from a percentile of ``|x|`` (Sec. 4.3, percentile calibration).
* :class:`MinMaxActQuant` / :class:`MinMaxUnsignedActQuant` -- the naive choice, scale from
  ``max|x|``.
* :class:`AsymmetricPercentileActQuant` / :class:`AsymmetricMinMaxActQuant` -- linear asymmetric
  quantizers with an integer zero point (Sec. 4.5), for the sensitive operations.

Bit widths are never baked into a class: :func:`weight_quantizer` and :func:`act_quantizer` take
the bit width and validate it (:func:`check_bit_width`), the one place where it is set.
"""

from __future__ import annotations

from brevitas.core.stats.stats_op import NegativeMinOrZero
from brevitas.inject.enum import StatsOp
from brevitas.quant import (
    Int8ActPerTensorFloat,
    Int8WeightPerChannelFloat,
    Int8WeightPerTensorFloat,
    ShiftedUint8ActPerTensorFloat,
    Uint8ActPerTensorFloat,
)

from .errors import ConfigError

MIN_BITS = 2
MAX_BITS = 8
CALIBRATIONS = ("minmax", "percentile")


class BitWidthError(ConfigError):
    """A bit width outside the range this toolkit supports."""


def check_bit_width(bits: int, what: str = "bit width") -> int:
    """Return ``bits`` if it is an integer in [MIN_BITS, MAX_BITS], else raise BitWidthError."""
    if isinstance(bits, bool) or not isinstance(bits, int) or not MIN_BITS <= bits <= MAX_BITS:
        raise BitWidthError(
            f"{what} must be an integer from {MIN_BITS} to {MAX_BITS}, got {bits!r}; "
            f"use --float for an unquantized model"
        )
    return bits


class PerChannelWeightQuant(Int8WeightPerChannelFloat):
    """Symmetric narrow-range weight quantizer, one scale per output channel (from max |w|)."""


class PerTensorWeightQuant(Int8WeightPerTensorFloat):
    """Symmetric narrow-range weight quantizer, one scale per tensor (from max |w|)."""


class PercentileActQuant(Int8ActPerTensorFloat):
    """Signed activation quantizer, scale initialised from the ``high_percentile_q`` of |x|.

    Statistics are averaged over all calibration batches (``scaling_stats_momentum = None``), so
    the calibrated threshold is the mean of the per-batch percentiles; after calibration the
    scale is a learned parameter (QAT).
    """

    high_percentile_q = 99.99
    scaling_stats_momentum = None


class PercentileUnsignedActQuant(Uint8ActPerTensorFloat):
    """Unsigned variant of :class:`PercentileActQuant`, for non-negative activations."""

    high_percentile_q = 99.99
    scaling_stats_momentum = None


class MinMaxActQuant(Int8ActPerTensorFloat):
    """Naive signed activation quantizer: scale initialised from max |x|."""

    scaling_stats_op = StatsOp.MAX
    scaling_stats_momentum = None


class MinMaxUnsignedActQuant(Uint8ActPerTensorFloat):
    """Naive unsigned activation quantizer: scale initialised from max x."""

    scaling_stats_op = StatsOp.MAX
    scaling_stats_momentum = None


class AsymmetricPercentileActQuant(ShiftedUint8ActPerTensorFloat):
    """Linear asymmetric quantizer: unsigned integers with a learned integer zero point.

    Range from the [100 - q, q] percentile interval, so that a skewed distribution (the output of
    a LayerNorm with affine shift, say) spends no levels on values that never occur.
    """

    high_percentile_q = 99.99
    low_percentile_q = 0.01
    scaling_stats_momentum = None


class AsymmetricMinMaxActQuant(ShiftedUint8ActPerTensorFloat):
    """Linear asymmetric quantizer whose range is initialised from [min x, max x]."""

    scaling_stats_op = StatsOp.MIN_MAX
    zero_point_stats_impl = NegativeMinOrZero
    scaling_stats_momentum = None


def weight_quantizer(bits: int, per_channel: bool = True):
    """The weight quantizer class for ``bits`` bits."""
    base = PerChannelWeightQuant if per_channel else PerTensorWeightQuant
    return base.let(bit_width=check_bit_width(bits, "weight bit width"))


def act_quantizer(
    bits: int,
    calibration: str = "percentile",
    percentile: float = 99.99,
    signed: bool = True,
    asymmetric: bool = False,
):
    """The activation quantizer class for one activation.

    ``calibration`` is ``"percentile"`` (the Q-MLP choice, with ``percentile`` as the upper
    percentile) or ``"minmax"``; ``asymmetric`` selects a zero-point quantizer; otherwise
    ``signed`` picks a signed or unsigned symmetric one.
    """
    check_bit_width(bits, "activation bit width")
    if calibration not in CALIBRATIONS:
        raise ConfigError(f"calibration must be one of {CALIBRATIONS}, got {calibration!r}")
    if not 50.0 < percentile <= 100.0:
        raise ConfigError(f"percentile must be in (50, 100], got {percentile!r}")
    if calibration == "percentile":
        if asymmetric:
            return AsymmetricPercentileActQuant.let(
                bit_width=bits, high_percentile_q=percentile, low_percentile_q=100.0 - percentile
            )
        base = PercentileActQuant if signed else PercentileUnsignedActQuant
        return base.let(bit_width=bits, high_percentile_q=percentile)
    if asymmetric:
        return AsymmetricMinMaxActQuant.let(bit_width=bits)
    base = MinMaxActQuant if signed else MinMaxUnsignedActQuant
    return base.let(bit_width=bits)
