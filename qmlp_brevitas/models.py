"""MLP-Mixer and ResMLP, float or Q-MLP quantized, registered with timm (paper Sec. 3-4).

One class, :class:`QMLPNet`, builds both families: MLP-Mixer uses an MLP across tokens and
LayerNorm; ResMLP a single linear layer across tokens, Affine norms and LayerScale. The
:class:`~qmlp_brevitas.recipe.QuantRecipe` decides float or quantized and which Q-MLP techniques
are on. Variants are registered in timm's registry, so ``timm.create_model("qmlp_mixer_28",
w_bits=4, a_bits=4)`` builds one; :func:`create_qmlp` adds presets and overrides.
"""

from __future__ import annotations

from functools import partial

import timm
import torch
from brevitas.nn import QuantConv2d, QuantLinear
from timm.models import register_model
from torch import nn

from .errors import ConfigError
from .int_layernorm import IntLayerNorm
from .layers import Mlp, QMLPBlock, Quantizers, Stem, TokenLinear, make_norm
from .recipe import QuantRecipe, make_recipe

FAMILIES = ("mixer", "resmlp")
ORIGINAL_NORM = {"mixer": "layernorm", "resmlp": "affine"}


class QMLPNet(nn.Module):
    """MLP-Mixer (``family="mixer"``) or ResMLP (``family="resmlp"``) with Q-MLP quantization."""

    def __init__(
        self,
        family: str = "mixer",
        img_size: int = 28,
        in_chans: int = 1,
        patch_size: int = 7,
        embed_dim: int = 128,
        depth: int = 4,
        token_mlp_ratio: float = 0.5,
        channel_mlp_ratio: float = 4.0,
        num_classes: int = 10,
        layer_scale_init: float = 0.1,
        recipe: QuantRecipe | None = None,
    ):
        super().__init__()
        if family not in FAMILIES:
            raise ConfigError(f"family must be one of {FAMILIES}, got {family!r}")
        if img_size % patch_size:
            raise ConfigError(f"img_size {img_size} is not divisible by patch_size {patch_size}")
        recipe = recipe or QuantRecipe()
        self.family = family
        self.recipe = recipe
        self.img_size = img_size
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.embed_dim = embed_dim
        self.num_tokens = (img_size // patch_size) ** 2
        norm = ORIGINAL_NORM[family] if recipe.norm == "original" else recipe.norm
        self.norm_kind = norm
        quant = Quantizers(recipe)

        if family == "mixer":
            token_hidden = int(token_mlp_ratio * embed_dim)
            make_token_mixer = partial(Mlp, self.num_tokens, token_hidden, quant)
            layer_scale = None
        else:
            make_token_mixer = partial(TokenLinear, self.num_tokens, quant)
            layer_scale = layer_scale_init

        self.stem = Stem(in_chans, embed_dim, patch_size, quant)
        self.blocks = nn.Sequential(
            *(
                QMLPBlock(
                    embed_dim,
                    make_token_mixer,
                    int(channel_mlp_ratio * embed_dim),
                    norm,
                    quant,
                    layer_scale,
                )
                for _ in range(depth)
            )
        )
        self.norm = make_norm(norm, embed_dim)
        self.final_quant = quant.act("sensitive")
        self.head_quant = quant.act("signed")
        self.head = quant.linear(embed_dim, num_classes)
        self._quant = quant
        for name, module in self.named_modules():
            if isinstance(module, IntLayerNorm):
                module.layer_name = name

    def forward_features(self, x):
        x = self.blocks(self.stem(x))
        return self.final_quant(self.norm(x))

    def forward_head(self, x, pre_logits: bool = False):
        x = self.head_quant(x.mean(dim=1))
        return x if pre_logits else self.head(x)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int):
        self.num_classes = num_classes
        self.head = self._quant.linear(self.embed_dim, num_classes)

    def get_classifier(self):
        return self.head


def quantized_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The weight-quantized layers (QuantLinear/QuantConv2d) of a model, by name."""
    return {
        name: m
        for name, m in model.named_modules()
        if isinstance(m, QuantLinear | QuantConv2d) and m.weight_quant.is_quant_enabled
    }


def model_size_mb(model: nn.Module) -> float:
    """Parameter storage in MB (1e6 bytes): quantized weights at their bit width, the rest fp32.

    Quantizer parameters (scales, zero points) count as fp32; they are a few numbers per layer.
    """
    quant_weights = {
        id(m.weight): int(m.quant_weight().bit_width) for m in quantized_layers(model).values()
    }
    bits = sum(p.numel() * quant_weights.get(id(p), 32) for p in model.parameters())
    return bits / 8 / 1e6


# ---------------------------------------------------------------------------------------------
# Registry. Each variant is a dict of sizes handed to one builder; the recipe comes in as kwargs.

_RECIPE_FIELDS = set(QuantRecipe.__dataclass_fields__)


def _build(variant: str, sizes: dict, **kwargs) -> QMLPNet:
    for unused in (
        "pretrained",
        "pretrained_cfg",
        "pretrained_cfg_overlay",
        "cache_dir",
        "features_only",
    ):
        value = kwargs.pop(unused, None)
        if unused == "pretrained" and value:
            raise ConfigError(
                f"{variant}: no pretrained weights are published; load a local float checkpoint "
                "with --init instead"
            )
    preset = kwargs.pop("preset", "qmlp")
    recipe = kwargs.pop("recipe", None)
    recipe_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in _RECIPE_FIELDS}
    if recipe is None:
        recipe = make_recipe(preset, **recipe_kwargs)
    elif recipe_kwargs:
        raise ConfigError(f"pass either recipe= or recipe settings, not both: {recipe_kwargs}")
    return QMLPNet(**{**sizes, **kwargs}, recipe=recipe)


SMALL_VARIANTS = {
    "qmlp_mixer_28": dict(
        family="mixer", img_size=28, in_chans=1, patch_size=7, embed_dim=64, depth=4
    ),
    # Patch 4: 49 tokens of 4x4 pixels instead of 16 of 7x7 (about 2.7x the compute per image).
    "qmlp_mixer_28_p4": dict(
        family="mixer", img_size=28, in_chans=1, patch_size=4, embed_dim=64, depth=4
    ),
    "qmlp_resmlp_28": dict(
        family="resmlp", img_size=28, in_chans=1, patch_size=7, embed_dim=64, depth=4
    ),
    "qmlp_mixer_32": dict(
        family="mixer", img_size=32, in_chans=3, patch_size=4, embed_dim=128, depth=4
    ),
    "qmlp_resmlp_32": dict(
        family="resmlp", img_size=32, in_chans=3, patch_size=4, embed_dim=128, depth=4
    ),
}
PAPER_VARIANTS = {
    # ResMLP-24 (Touvron et al.): 384 channels, 24 blocks, patch 16 at 224.
    "qmlp_resmlp_24_224": dict(
        family="resmlp",
        img_size=224,
        in_chans=3,
        patch_size=16,
        embed_dim=384,
        depth=24,
        layer_scale_init=1e-5,
        num_classes=1000,
    ),
    # Mixer-B/16 (Tolstikhin et al.): 768 channels, 12 blocks, token/channel MLP 384/3072.
    "qmlp_mixer_b16_224": dict(
        family="mixer",
        img_size=224,
        in_chans=3,
        patch_size=16,
        embed_dim=768,
        depth=12,
        num_classes=1000,
    ),
}


def _register(name: str, sizes: dict):
    def variant(pretrained: bool = False, **kwargs) -> QMLPNet:
        return _build(name, sizes, pretrained=pretrained, **kwargs)

    variant.__name__ = name
    variant.__qualname__ = name
    variant.__doc__ = f"{name}: {sizes}"
    variant.__module__ = __name__
    register_model(variant)
    globals()[name] = variant


for _name, _sizes in {**SMALL_VARIANTS, **PAPER_VARIANTS}.items():
    _register(_name, _sizes)


def list_variants(small_only: bool = False) -> list[str]:
    return sorted(SMALL_VARIANTS if small_only else {**SMALL_VARIANTS, **PAPER_VARIANTS})


def create_qmlp(name: str, **kwargs) -> QMLPNet:
    """Build a registered variant; ``kwargs`` are recipe settings, ``preset`` or size overrides."""
    if name not in SMALL_VARIANTS and name not in PAPER_VARIANTS:
        raise ConfigError(f"unknown model {name!r}; registered: {', '.join(list_variants())}")
    return timm.create_model(name, **kwargs)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def quantized_bit_widths(model: nn.Module) -> dict[str, int]:
    """Real bit width of every weight and activation quantizer, by module name."""
    from brevitas.nn import QuantIdentity

    widths = {}
    for name, m in model.named_modules():
        if isinstance(m, QuantLinear | QuantConv2d) and m.weight_quant.is_quant_enabled:
            widths[f"{name}.weight"] = int(m.quant_weight().bit_width)
        elif isinstance(m, QuantIdentity):
            widths[name] = int(m.act_quant.bit_width())
    return widths
