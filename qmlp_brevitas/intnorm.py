"""Integer-only LayerNorm: the arithmetic, its bit widths and its limits (paper Sec. 4.1).

One definition of the integer LayerNorm, used by every execution of it: the Brevitas module
(:mod:`qmlp_brevitas.int_layernorm`), the QONNX op (:mod:`qmlp_brevitas.custom_op`), FINN's
hardware layer (:mod:`qmlp_brevitas.finn.custom_op`) and, bit for bit, the SystemVerilog layer
(``qmlp_brevitas/hdl/int_layernorm.sv``). It follows I-BERT (Kim et al. 2021, integer Newton
/ bit-serial square root) and I-ViT's I-LayerNorm (Li & Gu 2023): statistics of integers,
an exact integer inverse square root, a fixed-point result; no float anywhere.

Algorithm, for one token of ``C`` channels with signed ``B``-bit integers ``x_i`` (the residual
stream divided by its quantizer's scale ``s``; ``M = 2**(B-1)``, so ``-M <= x_i < M``):

====================  =========================================  ==================================
step                  value                                      width (bits)
====================  =========================================  ==================================
sum                   ``S1 = sum_i x_i``                         signed, ``|S1| <= C*M``
sum of squares        ``S2 = sum_i x_i**2``                      unsigned, ``S2 <= C*M**2``
centred value         ``d_i = C*x_i - S1``  (``C`` times x-mean)  signed, ``|d_i| < 2*C*M``
variance term         ``V = C*S2 - S1**2``  (``C**2`` times var)  unsigned, ``V <= C**2 * M**2``
plus epsilon          ``N = V + E``                              unsigned, ``N <= C**2*M**2 + E``
inverse square root   ``r = floor(2**K / sqrt(N))``              unsigned, ``K + 1``
product               ``p_i = d_i * r``                          signed, width(d) + K + 1
output                ``y_i = (p_i + 2**(K-F-1)) >> (K-F)``       signed ``O``, ``|y_i| <= Y``
====================  =========================================  ==================================

``y_i / 2**F`` is LayerNorm's ``(x_i - mean) / sqrt(var + eps)``: ``d_i / sqrt(N)`` equals it
exactly, because ``d_i = C*(x_i - mean)`` and ``N = C**2 * (var + E / C**2)``. No division by
``C`` is needed anywhere. The output has ``F`` fractional bits (``frac_bits``, default 8), is
rounded half up by the shift, and is bounded by ``Y = floor(sqrt(C-1) * 2**F + 1/2)``
(``|x_i - mean| <= sqrt(C-1) * std`` for every token), so ``O`` = the signed width of ``Y``
(12 bits for ``C = 64`` and ``F = 8``). A constant token has ``V = 0`` and ``d_i = 0``; its
output is 0 whatever ``r`` is.

``r`` is computed exactly and deterministically, bit by bit from the top (``K`` down to 0), as
the largest integer with ``r**2 * N <= 2**(2K)``, without a multiplier: with ``P = r**2 * N``
and ``Q = r * N``, setting bit ``j`` gives ``P' = P + Q * 2**(j+1) + N * 4**j`` and
``Q' = Q + N * 2**j`` (shifts and adds; :func:`rsqrt_bit_serial` is this loop, the hardware
runs it ``U`` iterations per clock). That ``r`` is ``floor(2**K / sqrt(N))`` for ``N >= 1``
(and ``2**(K+1) - 1`` for ``N = 0``, where it multiplies zeros); the vectorised
:func:`rsqrt_floor` computes the same number as ``isqrt(4**K // N)``.

Precision: ``K = F + 1 + bitlength(isqrt((C-1) * N_max))`` makes the truncation of ``r`` cost
less than half an output step, so ``y_i`` is LayerNorm's value rounded to ``F`` fractional bits
within one step. For ``C = 64``: ``K = 22`` at ``B = 5`` (the sum of two 4-bit residual
operands), ``K = 26`` at ``B = 9``.

Epsilon: LayerNorm is invariant to the input scale ``s`` but its ``eps`` is not:
``LN(s * x; eps) = LN(x; eps / s**2)``. On integers, ``var + eps/s**2`` becomes
``N = V + E`` with the integer ``E = round(C**2 * eps / s**2)`` (``eps_int``), fixed when the
model is exported (the Brevitas module recomputes it from the current scale at every step).
For the model's ``eps = 1e-6`` and 4-bit residual scales, ``E`` is 0: the smallest non-zero
``V`` is ``C - 1``, so such an ``eps`` is below the integer grid; a larger ``eps`` is kept
(rounded to a multiple of ``s**2 / C**2``).

Limits (:class:`IntLayerNormSpec` refuses anything else, naming the layer and the limit):
``2 <= C``, ``2 <= B <=`` :data:`MAX_INPUT_BITS`, ``0 <= F <=`` :data:`MAX_FRAC_BITS`,
``K <=`` :data:`MAX_RSQRT_BITS` (so that ``4**K`` fits the 64-bit integers of the vectorised
reference; ``C <= 406`` at ``B = 9``, ``C <= 2580`` at ``B = 5``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

MAX_INPUT_BITS = 16
MAX_FRAC_BITS = 16
MAX_RSQRT_BITS = 30
DEFAULT_FRAC_BITS = 8


class IntLayerNormError(ValueError):
    """A configuration or an input the integer LayerNorm cannot represent.

    ``layer`` names the layer, ``quantity`` what is out of range, ``value`` its value and
    ``limit`` the limit it breaks.
    """

    def __init__(self, layer: str, quantity: str, value, limit, hint: str = ""):
        self.layer, self.quantity, self.value, self.limit = layer, quantity, value, limit
        message = f"IntLayerNorm {layer}: {quantity} is {value}, limit {limit}"
        super().__init__(message + (f"; {hint}" if hint else ""))


def signed_bits(magnitude: int) -> int:
    """Bits of the smallest two's-complement integer holding ``-magnitude .. magnitude``."""
    return max(int(magnitude).bit_length() + 1, 1)


def unsigned_bits(value: int) -> int:
    """Bits of the smallest unsigned integer holding ``0 .. value``."""
    return max(int(value).bit_length(), 1)


@dataclass(frozen=True)
class IntLayerNormSpec:
    """The integer LayerNorm of one layer: sizes, precision, epsilon, and every bit width.

    ``channels`` C, ``input_bits`` B (signed width of the integer input), ``frac_bits`` F,
    ``eps_int`` E. ``layer`` only names the layer in errors.
    """

    channels: int
    input_bits: int
    frac_bits: int = DEFAULT_FRAC_BITS
    eps_int: int = 0
    layer: str = "?"

    def __post_init__(self):
        for name in ("channels", "input_bits", "frac_bits", "eps_int"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise IntLayerNormError(self.layer, name, repr(value), "an integer")
        if self.channels < 2:
            raise IntLayerNormError(self.layer, "channels", self.channels, ">= 2")
        if not 2 <= self.input_bits <= MAX_INPUT_BITS:
            raise IntLayerNormError(
                self.layer,
                "input width (bits)",
                self.input_bits,
                f"2 to {MAX_INPUT_BITS}",
                "quantize the residual stream to fewer bits",
            )
        if not 0 <= self.frac_bits <= MAX_FRAC_BITS:
            raise IntLayerNormError(
                self.layer, "fractional output bits", self.frac_bits, f"0 to {MAX_FRAC_BITS}"
            )
        if self.eps_int < 0:
            raise IntLayerNormError(self.layer, "integer epsilon", self.eps_int, ">= 0")
        if self.rsqrt_bits > MAX_RSQRT_BITS:
            raise IntLayerNormError(
                self.layer,
                "inverse-square-root precision K (bits)",
                self.rsqrt_bits,
                f"<= {MAX_RSQRT_BITS}",
                f"{self.channels} channels of {self.input_bits}-bit input with "
                f"{self.frac_bits} fractional output bits and eps_int {self.eps_int} need more; "
                "use fewer fractional bits, fewer input bits or fewer channels",
            )

    # -- value ranges -------------------------------------------------------------------------
    @property
    def input_min(self) -> int:
        return -(1 << (self.input_bits - 1))

    @property
    def input_max(self) -> int:
        return (1 << (self.input_bits - 1)) - 1

    @property
    def n_max(self) -> int:
        """Upper bound of ``N = C*S2 - S1**2 + E``."""
        return self.channels**2 * (1 << (2 * self.input_bits - 2)) + self.eps_int

    @property
    def rsqrt_bits(self) -> int:
        """K: ``r = floor(2**K / sqrt(N))``; see the module docstring for the choice."""
        worst = math.isqrt((self.channels - 1) * self.n_max)
        return self.frac_bits + 1 + worst.bit_length()

    @property
    def shift(self) -> int:
        """K - F, the right shift from ``d * r`` to the output."""
        return self.rsqrt_bits - self.frac_bits

    @property
    def output_max(self) -> int:
        """Y = floor(sqrt(C-1) * 2**F + 1/2), the largest output magnitude."""
        return (math.isqrt((self.channels - 1) << (2 * self.frac_bits + 2)) + 1) // 2

    # -- bit widths ---------------------------------------------------------------------------
    @property
    def sum_bits(self) -> int:
        return signed_bits(self.channels << (self.input_bits - 1))

    @property
    def square_sum_bits(self) -> int:
        return unsigned_bits(self.channels << (2 * self.input_bits - 2))

    @property
    def centred_bits(self) -> int:
        return signed_bits(self.channels << self.input_bits)

    @property
    def n_bits(self) -> int:
        return unsigned_bits(self.n_max)

    @property
    def product_bits(self) -> int:
        return self.centred_bits + self.rsqrt_bits + 1

    @property
    def output_bits(self) -> int:
        return signed_bits(self.output_max)

    def bit_widths(self) -> dict[str, int]:
        """Every intermediate width, by name (documented in the module docstring)."""
        return {
            "input": self.input_bits,
            "sum": self.sum_bits,
            "square_sum": self.square_sum_bits,
            "centred": self.centred_bits,
            "variance_plus_eps": self.n_bits,
            "rsqrt": self.rsqrt_bits + 1,
            "product": self.product_bits,
            "output": self.output_bits,
        }

    def check_input_range(self, low: int, high: int, what: str = "input") -> None:
        """Refuse integer inputs outside the signed ``input_bits`` range."""
        if low < self.input_min or high > self.input_max:
            raise IntLayerNormError(
                self.layer,
                f"{what} range",
                f"[{low}, {high}]",
                f"[{self.input_min}, {self.input_max}] ({self.input_bits}-bit signed)",
                "the input is wider than this layer supports",
            )


def eps_to_int(eps: float, scale: float, channels: int) -> int:
    """``E = round(C**2 * eps / s**2)``: LayerNorm's epsilon on the integer grid of scale s."""
    if scale <= 0:
        raise ValueError(f"the input scale must be positive, got {scale}")
    return int(round(channels * channels * float(eps) / (float(scale) ** 2)))


def isqrt_exact(q: torch.Tensor) -> torch.Tensor:
    """``floor(sqrt(q))`` of int64 values ``0 <= q < 2**62``, exactly."""
    r = torch.sqrt(q.double()).floor().to(torch.int64)
    for _ in range(2):  # float64's estimate is off by at most one
        r = torch.where(r * r > q, r - 1, r)
        r = torch.where((r + 1) * (r + 1) <= q, r + 1, r)
    return r


def rsqrt_floor(n: torch.Tensor, k: int) -> torch.Tensor:
    """``floor(2**k / sqrt(n))`` of int64 ``n >= 0`` (``2**(k+1) - 1`` for ``n = 0``).

    Computed as ``isqrt(4**k // n)``: for an integer ``r``, ``r**2 <= 4**k / n`` holds exactly
    when ``r**2 <= 4**k // n``. Needs ``k <= 30``.
    """
    if k > MAX_RSQRT_BITS:
        raise ValueError(f"rsqrt precision {k} exceeds {MAX_RSQRT_BITS} bits")
    top = torch.tensor(1 << (2 * k), dtype=torch.int64)
    safe = torch.clamp(n, min=1)
    r = isqrt_exact(torch.div(top, safe, rounding_mode="floor"))
    return torch.where(n > 0, r, torch.full_like(r, (1 << (k + 1)) - 1))


def rsqrt_bit_serial(n: int, k: int) -> int:
    """The hardware's loop for ``r``: bits ``k`` .. 0, shifts and adds only (see docstring)."""
    limit = 1 << (2 * k)
    r = p = q = 0
    for j in range(k, -1, -1):
        trial = p + (q << (j + 1)) + (n << (2 * j))
        if trial <= limit:
            p, q, r = trial, q + (n << j), r | (1 << j)
    return r


def int_layernorm(x: torch.Tensor, spec: IntLayerNormSpec) -> torch.Tensor:
    """The integer LayerNorm of int64 ``x`` over its last axis (``spec.channels``); int64 out.

    Exactly the module docstring's steps; every intermediate fits int64 within the spec's
    limits. Refuses inputs outside the spec's ``input_bits``.
    """
    if not isinstance(x, torch.Tensor) or x.dtype != torch.int64:
        raise TypeError(f"int_layernorm expects a torch int64 tensor, got {type(x).__name__}")
    if x.shape[-1] != spec.channels:
        raise IntLayerNormError(spec.layer, "channels of the input", x.shape[-1], spec.channels)
    if x.numel():
        spec.check_input_range(int(x.min()), int(x.max()))
    c = spec.channels
    s1 = x.sum(dim=-1, keepdim=True)
    s2 = (x * x).sum(dim=-1, keepdim=True)
    n = c * s2 - s1 * s1 + spec.eps_int
    r = rsqrt_floor(n, spec.rsqrt_bits)
    d = c * x - s1
    half = 1 << (spec.shift - 1)
    return torch.bitwise_right_shift(d * r + half, spec.shift)  # arithmetic: floor division


def is_dense(t: torch.Tensor) -> bool:
    """Whether ``t``'s elements fill one block of memory (contiguous, maybe permuted)."""
    expected = 1
    for size, stride in sorted(zip(t.shape, t.stride(), strict=True), key=lambda d: d[1]):
        if size == 1:
            continue
        if stride != expected:
            return False
        expected *= size
    return True


def _memory_order(t: torch.Tensor) -> torch.Tensor:
    """``t``'s elements as a 1-D view in memory order when they fill one block (a permuted
    layout, as of a transposed activation), else ``t``: whole-tensor reductions run faster."""
    if not is_dense(t):
        return t
    return t.as_strided((t.numel(),), (1,), t.storage_offset())


def _float32_split(spec: IntLayerNormSpec) -> int | None:
    """The split ``r = a * 2**h + b`` (``b < 2**h``) that makes :func:`int_layernorm_float`
    exact in float32, or None if there is none.

    Every intermediate must be an integer (times a power of two) below ``2**24``: the sums
    (``|S1| <= C*M``, ``S2 <= C*M**2``), ``d * b + 2**(K-F-1)`` and ``d * a + floor((d * b +
    2**(K-F-1)) / 2**h)`` with ``|d| < 2*C*M``, and their parts ``C * x * b``, ``S1 * b``,
    ``C * x * a``, ``S1 * a`` (each below ``C*M`` times ``b`` or ``a``); and ``h <= K - F``
    (the shift is split as ``h`` then ``K-F-h``).
    """
    m = 1 << (spec.input_bits - 1)
    c = spec.channels
    d_bits = (2 * c * m - 1).bit_length()
    h = max(0, spec.rsqrt_bits + 1 + d_bits - 23)
    if c * m * m >= 1 << 24 or d_bits + h > 23 or h > spec.shift or spec.shift > 24:
        return None
    if spec.rsqrt_bits > 25 or spec.n_max >= 1 << 53:  # the per-token float64 steps
        return None
    return h


def _split_float(r: torch.Tensor, h: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """``(a, b * 2**-h)`` for integer-valued float64 ``r = a * 2**h + b``, ``0 <= b < 2**h``."""
    scaled = r * 2.0**-h
    high = scaled.floor()
    return high.to(dtype), scaled.sub_(high).to(dtype)


def int_layernorm_float(q: torch.Tensor, spec: IntLayerNormSpec) -> torch.Tensor:
    """:func:`int_layernorm` of the integer-valued float32 tensor ``q``, as float32.

    The same integers without int64 passes over the whole tensor (conversions and int64
    arithmetic cost several float32 passes each on the CPU): every intermediate is an integer
    that float32 holds exactly (:func:`_float32_split`). The sums are float32; ``N`` and
    ``r`` are computed per token in float64 (``floor(2**K * rsqrt(N))``, off by at most one,
    then corrected exactly with ``r**2 * N <= 4**K < (r+1)**2 * N``); the rounded shift
    ``floor((d*r + 2**(K-F-1)) / 2**(K-F))`` of the up to 35-bit product is
    ``floor((d*a + floor((d*b + 2**(K-F-1)) / 2**h)) / 2**(K-F-h))`` with ``r = a*2**h + b``
    (nested floor divisions), each ``d * a`` as ``x * (C*a) - S1 * a``. Specs without such a
    split (wider inputs) and other dtypes take :func:`int_layernorm` itself. Refuses inputs
    outside the spec's ``input_bits``.
    """
    h = _float32_split(spec)
    if q.dtype != torch.float32 or h is None:
        return int_layernorm(q.to(torch.int64), spec).to(q.dtype)
    if q.shape[-1] != spec.channels:
        raise IntLayerNormError(spec.layer, "channels of the input", q.shape[-1], spec.channels)
    if q.numel():
        low, high = torch.aminmax(_memory_order(q))
        spec.check_input_range(int(low), int(high))
    c, k = spec.channels, spec.rsqrt_bits
    s1 = q.sum(dim=-1, keepdim=True)
    scratch = q * q
    s2 = scratch.sum(dim=-1, keepdim=True)
    # Per token in float64, exact: N < 2**53 and the correction's products r**2 * N <= 4**(K+1)
    # <= 2**52 (K <= 25, :func:`_float32_split`). A constant token (N = 0, d = 0) gets
    # r = 2**K instead of 2**(K+1) - 1: its outputs are 0 either way.
    s1d = s1.to(torch.float64)
    n = s2.to(torch.float64).mul_(c)
    if spec.eps_int:
        n.add_(spec.eps_int)
    n = torch.addcmul(n, s1d, s1d, value=-1).clamp_min_(1.0)
    top = float(1 << (2 * k))
    r = torch.rsqrt(n).mul_(2.0**k).floor_()
    r.sub_((r * r * n > top).to(r.dtype))
    up = r + 1
    r.add_((up * up * n <= top).to(r.dtype))
    high_part, low_part = _split_float(r, h, q.dtype)
    # d * r = q * (C*r) - S1 * r: per-token factors, so d is never formed. With r = a*2**h + b:
    # low = floor(d*b*2**-h + 2**(K-F-1-h)), y = floor((d*a + low) * 2**-(K-F-h)).
    s1_low = (2.0 ** (spec.shift - 1 - h)) - s1 * low_part
    low_sum = torch.addcmul(s1_low, q, low_part * c, out=scratch).floor_()
    return (
        low_sum.sub_(s1 * high_part)
        .addcmul_(q, high_part * c)
        .mul_(2.0 ** (h - spec.shift))
        .floor_()
    )
