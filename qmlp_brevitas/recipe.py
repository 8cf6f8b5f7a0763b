"""The quantization recipe: the five Q-MLP techniques as independent settings (paper Sec. 4).

A :class:`QuantRecipe` says how a model is quantized; the model code reads nothing else. Each of
the paper's techniques is one field, so that an ablation turns them on one at a time:

1. ``norm`` -- ``"layernorm"`` bounds activation ranges (Sec. 4.1); ``"intlayernorm"`` is the
   same LayerNorm computed on the integer residual stream exactly as the hardware computes it
   (:mod:`qmlp_brevitas.int_layernorm`); ``"original"`` keeps the family's own norm (LayerNorm
   for MLP-Mixer, Affine for ResMLP); ``"affine"``, ``"batchnorm"`` and ``"none"`` are also
   available.
2. ``act`` -- ``"relu6"`` or ``"hardtanh"`` are bounded (Sec. 4.2); ``"gelu"`` and ``"relu"``
   are not.
3. ``calibration`` -- ``"percentile"`` (Sec. 4.3, upper percentile ``percentile``) or ``"minmax"``.
4. ``token_groups`` -- k > 1 splits the channels into k groups, each with its own activation
   quantizer and token-mixing MLP (Sec. 4.4, multiple token-mixing MLPs).
5. ``asymmetric`` -- a linear asymmetric (zero-point) quantizer on the sensitive operations
   (Sec. 4.5); which ones is documented in :mod:`qmlp_brevitas.layers`.

``w_bits``/``a_bits`` of ``None`` build the float model with the same module tree.

One setting is for the hardware, not the paper: ``layer_scale`` -- ``"signed"`` (ResMLP's
LayerScale as published) or ``"non_negative"`` (its absolute value). FINN folds a LayerScale into
the thresholds of the residual quantizer; a negative one on a token-mixing channel cannot be
folded exactly into the per-element thresholds of :mod:`qmlp_brevitas.finn.transforms`
(``AbsorbTokenLinearIntoElementThresholds``), so a ResMLP with several token groups maps to
integer hardware only with ``"non_negative"``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from .errors import ConfigError
from .quant import CALIBRATIONS, check_bit_width

NORMS = ("original", "layernorm", "intlayernorm", "affine", "batchnorm", "none")
ACTS = ("gelu", "relu", "relu6", "hardtanh")
BOUNDED_ACTS = ("relu6", "hardtanh")
NON_NEGATIVE_ACTS = ("relu", "relu6")
LAYER_SCALES = ("signed", "non_negative")


@dataclass(frozen=True)
class QuantRecipe:
    """How a Q-MLP model is built and quantized. Validated on construction."""

    w_bits: int | None = None
    a_bits: int | None = None
    input_bits: int = 8
    norm: str = "intlayernorm"
    act: str = "relu6"
    calibration: str = "percentile"
    percentile: float = 99.99
    token_groups: int = 2
    asymmetric: bool = True
    per_channel_weights: bool = True
    layer_scale: str = "signed"

    def __post_init__(self):
        if (self.w_bits is None) != (self.a_bits is None):
            raise ConfigError(
                "set both w_bits and a_bits for a quantized model, or neither for a float one "
                f"(got w_bits={self.w_bits!r}, a_bits={self.a_bits!r})"
            )
        if self.w_bits is not None:
            check_bit_width(self.w_bits, "weight bit width (--w)")
            check_bit_width(self.a_bits, "activation bit width (--a)")
        check_bit_width(self.input_bits, "input bit width")
        _check_choice("norm", self.norm, NORMS)
        _check_choice("act", self.act, ACTS)
        _check_choice("calibration", self.calibration, CALIBRATIONS)
        _check_choice("layer_scale", self.layer_scale, LAYER_SCALES)
        if not 50.0 < self.percentile <= 100.0:
            raise ConfigError(f"percentile must be in (50, 100], got {self.percentile!r}")
        if isinstance(self.token_groups, bool) or not isinstance(self.token_groups, int):
            raise ConfigError(f"token_groups must be a positive integer, got {self.token_groups!r}")
        if self.token_groups < 1:
            raise ConfigError(f"token_groups must be >= 1, got {self.token_groups}")

    @property
    def quantized(self) -> bool:
        return self.w_bits is not None

    def as_float(self) -> QuantRecipe:
        """The same model without quantization."""
        return replace(self, w_bits=None, a_bits=None)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> QuantRecipe:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown recipe settings {unknown}; known: {sorted(known)}")
        return cls(**values)


PRESETS: dict[str, dict] = {
    # All five Q-MLP techniques on; LayerNorm computed on integers as the hardware computes it
    # (as accurate as float LayerNorm here: README, "Integer LayerNorm").
    "qmlp": dict(
        norm="intlayernorm", act="relu6", calibration="percentile", token_groups=2, asymmetric=True
    ),
    # Naive quantization: the family's own norm, GELU, min-max calibration, one token MLP,
    # symmetric quantizers everywhere.
    "naive": dict(
        norm="original", act="gelu", calibration="minmax", token_groups=1, asymmetric=False
    ),
}


def make_recipe(preset: str = "qmlp", **overrides) -> QuantRecipe:
    """A recipe from a named preset, with any field overridden (``None`` overrides are ignored)."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
    values = dict(PRESETS[preset])
    values.update({k: v for k, v in overrides.items() if v is not None})
    return QuantRecipe.from_dict(values)


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {choices}, got {value!r}")
