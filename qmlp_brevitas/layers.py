"""Building blocks of Q-MLP models, float or quantized from one definition (paper Sec. 4).

Where the quantizers sit (everything between two quantizers is a MatMul, a bias, a norm or a
monotonic activation, so that the integer graph maps onto FINN):

* ``Stem``: input quantizer (``input_bits``, data precision), patch-embedding conv, output
  quantizer.
* ``QMLPBlock``: ``norm1`` -> token-mixing (per group: activation quantizer, token MLP) ->
  residual add -> ``norm2`` -> channel quantizer -> channel MLP -> residual add.
* ``Mlp``: ``fc1`` -> activation -> hidden quantizer -> ``fc2``.
* ``SharedQuantAdd``: both operands of a residual add pass the *same* quantizer, so that the sum
  of two integers on one scale stays an integer on that scale.

With the integer LayerNorm (``norm="intlayernorm"``), the residual-stream quantizers (the stem's
output quantizer and each add's shared quantizer) return Brevitas ``IntQuantTensor``s, so that
every norm (``norm1``, ``norm2`` and the final ``norm``) receives integers with their scale and
bit width: the stem's ``a_bits`` integers for the first norm, the ``a_bits + 1``-bit sum of an
add for every other one. No quantizer is added for this: each norm already has one in front.

The *sensitive operations* that get the asymmetric (zero-point) quantizer when
``recipe.asymmetric`` is on are the inputs of the token- and channel-mixing MLPs, i.e. the norm
outputs, and the input of the head. A norm's affine shift makes these distributions skewed, so a
symmetric quantizer wastes up to half of its levels on values that never occur; the paper finds
token mixing the most sensitive component. Hidden activations after ReLU/ReLU6 are non-negative
and use an unsigned quantizer; the residual stream is symmetric.
"""

from __future__ import annotations

import torch
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear
from torch import nn

from .errors import ConfigError
from .int_layernorm import IntLayerNorm
from .quant import act_quantizer, weight_quantizer
from .recipe import NON_NEGATIVE_ACTS, QuantRecipe


class Quantizers:
    """Makes the quantized (or, for a float recipe, plain) layers of one model."""

    def __init__(self, recipe: QuantRecipe):
        self.recipe = recipe

    @property
    def integer_residual(self) -> bool:
        """Whether the residual stream carries its scale to the norms (integer LayerNorm)."""
        return self.recipe.quantized and self.recipe.norm == "intlayernorm"

    def act(
        self, kind: str = "signed", bits: int | None = None, residual: bool = False
    ) -> nn.Module:
        """An activation quantizer; ``kind`` is ``signed``, ``unsigned`` or ``sensitive``.

        ``residual`` marks a quantizer of the residual stream: it returns ``IntQuantTensor``s
        when the norms are integer LayerNorms.
        """
        r = self.recipe
        if not r.quantized:
            return nn.Identity()
        if kind not in ("signed", "unsigned", "sensitive"):
            raise ValueError(f"unknown activation quantizer kind {kind!r}")
        quant = act_quantizer(
            bits or r.a_bits,
            calibration=r.calibration,
            percentile=r.percentile,
            signed=kind != "unsigned",
            asymmetric=kind == "sensitive" and r.asymmetric,
        )
        return QuantIdentity(
            act_quant=quant, return_quant_tensor=residual and self.integer_residual
        )

    def _weight_quant(self):
        r = self.recipe
        return weight_quantizer(r.w_bits, r.per_channel_weights) if r.quantized else None

    def linear(self, in_features: int, out_features: int, bias: bool = True) -> QuantLinear:
        return QuantLinear(
            in_features, out_features, bias=bias, weight_quant=self._weight_quant(), bias_quant=None
        )

    def conv(self, in_chans: int, out_chans: int, kernel_size: int, stride: int) -> QuantConv2d:
        return QuantConv2d(
            in_chans,
            out_chans,
            kernel_size=kernel_size,
            stride=stride,
            weight_quant=self._weight_quant(),
            bias_quant=None,
        )


class Affine(nn.Module):
    """ResMLP's per-channel affine "norm": ``alpha * x + beta``."""

    def __init__(self, dim: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(dim))
        self.beta = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        return self.alpha * x + self.beta


class TokenBatchNorm(nn.BatchNorm1d):
    """BatchNorm over channels of a ``(B, tokens, channels)`` tensor."""

    def forward(self, x):
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


def make_norm(kind: str, dim: int) -> nn.Module:
    if kind == "layernorm":
        return nn.LayerNorm(dim, eps=1e-6)
    if kind == "intlayernorm":
        return IntLayerNorm(dim, eps=1e-6)
    if kind == "affine":
        return Affine(dim)
    if kind == "batchnorm":
        return TokenBatchNorm(dim)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}")


def make_act(kind: str) -> nn.Module:
    acts = {"gelu": nn.GELU, "relu": nn.ReLU, "relu6": nn.ReLU6, "hardtanh": nn.Hardtanh}
    if kind not in acts:
        raise ValueError(f"unknown activation {kind!r}")
    return acts[kind]()


class Mlp(nn.Module):
    """``fc1`` -> activation -> hidden quantizer -> ``fc2``. The input quantizer is the caller's."""

    def __init__(self, in_features: int, hidden_features: int, quant: Quantizers):
        super().__init__()
        act = quant.recipe.act
        self.fc1 = quant.linear(in_features, hidden_features)
        self.act = make_act(act)
        self.hidden_quant = quant.act("unsigned" if act in NON_NEGATIVE_ACTS else "signed")
        self.fc2 = quant.linear(hidden_features, in_features)

    def forward(self, x):
        return self.fc2(self.hidden_quant(self.act(self.fc1(x))))


class TokenLinear(nn.Module):
    """ResMLP's token mixing: one linear layer across tokens."""

    def __init__(self, num_tokens: int, quant: Quantizers):
        super().__init__()
        self.fc = quant.linear(num_tokens, num_tokens)

    def forward(self, x):
        return self.fc(x)


class GroupedTokenMixing(nn.Module):
    """Multiple token-mixing MLPs (paper Sec. 4.4).

    The channels of a ``(B, T, C)`` input split into ``groups`` equal groups; group ``i`` passes
    its own activation quantizer ``quants[i]`` and its own token mixer ``mixers[i]`` (acting on
    the token axis), and the results are concatenated along channels. ``groups=1`` is the
    standard single token-mixing MLP. Splitting and concatenating on the channel (last) axis
    keeps the graph channels-last for FINN.
    """

    def __init__(self, dim: int, groups: int, make_mixer, quant: Quantizers):
        super().__init__()
        if dim % groups:
            raise ConfigError(f"embed_dim {dim} is not divisible by token_groups {groups}")
        self.groups = groups
        self.quants = nn.ModuleList(quant.act("sensitive") for _ in range(groups))
        self.mixers = nn.ModuleList(make_mixer() for _ in range(groups))

    def forward(self, x):
        chunks = x.chunk(self.groups, dim=-1) if self.groups > 1 else (x,)
        outs = [
            mixer(q(c).transpose(1, 2)).transpose(1, 2)
            for c, q, mixer in zip(chunks, self.quants, self.mixers, strict=True)
        ]
        return torch.cat(outs, dim=-1) if self.groups > 1 else outs[0]


class SharedQuantAdd(nn.Module):
    """Residual add whose two operands are re-quantized by one shared quantizer."""

    def __init__(self, quant: Quantizers):
        super().__init__()
        self.quant = quant.act("signed", residual=True)

    def forward(self, residual, branch):
        return self.quant(residual) + self.quant(branch)


class LayerScale(nn.Module):
    """Per-channel learned scale of a residual branch (ResMLP); ``non_negative`` scales by
    ``|gamma|`` (see ``QuantRecipe.layer_scale``)."""

    def __init__(self, dim: int, init_value: float, non_negative: bool = False):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init_value))
        self.non_negative = non_negative

    def forward(self, x):
        return x * (self.gamma.abs() if self.non_negative else self.gamma)


class QMLPBlock(nn.Module):
    """One MLP-Mixer or ResMLP block; the family is in ``make_token_mixer`` and ``layer_scale``."""

    def __init__(
        self,
        dim: int,
        make_token_mixer,
        channel_hidden: int,
        norm: str,
        quant: Quantizers,
        layer_scale: float | None = None,
    ):
        super().__init__()
        self.norm1 = make_norm(norm, dim)
        self.token_mixing = GroupedTokenMixing(
            dim, quant.recipe.token_groups, make_token_mixer, quant
        )
        non_negative = quant.recipe.layer_scale == "non_negative"
        self.ls1 = LayerScale(dim, layer_scale, non_negative) if layer_scale else nn.Identity()
        self.add1 = SharedQuantAdd(quant)
        self.norm2 = make_norm(norm, dim)
        self.channel_quant = quant.act("sensitive")
        self.mlp_channels = Mlp(dim, channel_hidden, quant)
        self.ls2 = LayerScale(dim, layer_scale, non_negative) if layer_scale else nn.Identity()
        self.add2 = SharedQuantAdd(quant)

    def forward(self, x):
        x = self.add1(x, self.ls1(self.token_mixing(self.norm1(x))))
        return self.add2(x, self.ls2(self.mlp_channels(self.channel_quant(self.norm2(x)))))


class Stem(nn.Module):
    """Input quantizer, non-overlapping patch embedding, output quantizer -> ``(B, T, C)``."""

    def __init__(self, in_chans: int, dim: int, patch_size: int, quant: Quantizers):
        super().__init__()
        self.input_quant = quant.act("signed", bits=quant.recipe.input_bits)
        self.proj = quant.conv(in_chans, dim, patch_size, patch_size)
        self.out_quant = quant.act("signed", residual=True)

    def forward(self, x):
        x = self.proj(self.input_quant(x))
        return self.out_quant(x.flatten(2).transpose(1, 2))
