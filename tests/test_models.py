"""Models: every registered small variant, float and quantized, forward/backward and bit widths."""

from __future__ import annotations

import pytest
import timm
import torch
from brevitas.nn import QuantIdentity
from conftest import BIT_PAIRS, calibrated
from torch import nn

from qmlp_brevitas.layers import GroupedTokenMixing, Mlp, TokenLinear
from qmlp_brevitas.models import (
    create_qmlp,
    list_variants,
    model_size_mb,
    quantized_bit_widths,
    quantized_layers,
)

SMALL = list_variants(small_only=True)


def test_registry_lists_small_and_paper_variants():
    assert set(SMALL) == {
        "qmlp_mixer_28",
        "qmlp_mixer_28_p4",
        "qmlp_resmlp_28",
        "qmlp_mixer_32",
        "qmlp_resmlp_32",
    }
    assert {"qmlp_resmlp_24_224", "qmlp_mixer_b16_224"} <= set(list_variants())
    assert set(list_variants()) <= set(timm.list_models("qmlp_*"))


@pytest.mark.parametrize("name", SMALL)
@pytest.mark.parametrize("bits", BIT_PAIRS, ids=lambda b: f"w{b[0]}a{b[1]}")
def test_forward_backward_every_parameter_gets_gradient(name, bits):
    torch.manual_seed(0)
    model = timm.create_model(name, w_bits=bits[0], a_bits=bits[1])
    x = torch.randn(4, model.in_chans, model.img_size, model.img_size)
    model.train()
    out = model(x)
    assert out.shape == (4, 10) and torch.isfinite(out).all()
    out.logsumexp(1).sum().backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert not no_grad, f"parameters without gradient: {no_grad}"


@pytest.mark.parametrize("name", SMALL)
@pytest.mark.parametrize("bits", BIT_PAIRS, ids=lambda b: f"w{b[0]}a{b[1]}")
def test_real_bit_width_of_every_quantized_layer(name, bits):
    w, a = bits
    model = calibrated(name, w, a)
    widths = quantized_bit_widths(model)
    n_weight_layers = sum(isinstance(m, nn.Linear | nn.Conv2d) for m in model.modules())
    assert len(quantized_layers(model)) == n_weight_layers  # every weight layer is quantized
    for layer, bw in widths.items():
        if layer == "stem.input_quant":
            assert bw == model.recipe.input_bits  # the image itself: data precision
        elif layer.endswith(".weight"):
            assert bw == w, layer
        else:
            assert bw == a, layer
    n_act_quant = sum(isinstance(m, QuantIdentity) for m in model.modules())
    assert len(widths) == n_weight_layers + n_act_quant


@pytest.mark.parametrize("name", SMALL)
def test_float_model_has_no_quantizer_and_same_weight_names(name):
    fp = create_qmlp(name)
    q = create_qmlp(name, w_bits=4, a_bits=4)
    assert not quantized_layers(fp) and not any(isinstance(m, QuantIdentity) for m in fp.modules())
    weights = {k for k in q.state_dict() if ".act_quant." not in k and ".weight_quant." not in k}
    assert weights == set(fp.state_dict())


@pytest.mark.parametrize("name", ["qmlp_mixer_28", "qmlp_resmlp_28"])
@pytest.mark.parametrize("groups", [1, 2, 4])
def test_multiple_token_mixing_has_k_mlps_and_k_quantizers(name, groups):
    model = create_qmlp(name, w_bits=4, a_bits=4, token_groups=groups)
    expected = Mlp if "mixer" in name else TokenLinear
    for block in model.blocks:
        mixing = block.token_mixing
        assert isinstance(mixing, GroupedTokenMixing)
        assert len(mixing.mixers) == groups and len(mixing.quants) == groups
        assert all(isinstance(m, expected) for m in mixing.mixers)
        assert all(isinstance(q, QuantIdentity) for q in mixing.quants)
        assert len({id(q) for q in mixing.quants}) == groups  # own quantizer per group


def test_token_groups_see_only_their_channels():
    """Group i's output depends on channel group i of its input alone."""
    torch.manual_seed(0)
    model = create_qmlp("qmlp_mixer_28", token_groups=2).eval()
    mixing = model.blocks[0].token_mixing
    x = torch.randn(2, model.num_tokens, model.embed_dim)
    y = mixing(x)
    x2 = x.clone()
    x2[..., : model.embed_dim // 2] += 1.0  # change group 0 only
    y2 = mixing(x2)
    half = model.embed_dim // 2
    assert not torch.allclose(y[..., :half], y2[..., :half])
    assert torch.equal(y[..., half:], y2[..., half:])


def test_sensitive_operations_get_the_asymmetric_quantizer():
    model = calibrated("qmlp_mixer_28", 4, 4)
    block = model.blocks[0]
    for q in [*block.token_mixing.quants, block.channel_quant, model.final_quant]:
        assert not q.act_quant.is_signed and q.act_quant.zero_point().abs().sum() > 0
    assert block.mlp_channels.hidden_quant.act_quant.zero_point() == 0  # after ReLU6: unsigned
    sym = calibrated("qmlp_mixer_28", 4, 4, asymmetric=False)
    assert sym.blocks[0].channel_quant.act_quant.is_signed


def test_residual_add_shares_one_quantizer():
    model = calibrated("qmlp_resmlp_28", 4, 4)
    seen = []
    add = model.blocks[0].add1
    add.quant.register_forward_hook(lambda m, i, o: seen.append(o))
    model(torch.randn(1, 1, 28, 28))
    assert len(seen) == 2  # the residual and the branch pass the same quantizer
    scale = float(add.quant.act_quant.scale())
    total = seen[0] + seen[1]
    assert torch.allclose(total / scale, (total / scale).round(), atol=1e-3)


@pytest.mark.parametrize(
    ("kwargs", "norm_type"),
    [
        ({"preset": "naive"}, "Affine"),
        ({"norm": "layernorm"}, "LayerNorm"),
        ({"norm": "intlayernorm"}, "IntLayerNorm"),
        ({"norm": "batchnorm"}, "TokenBatchNorm"),
        ({"norm": "none"}, "Identity"),
    ],
)
def test_norm_setting(kwargs, norm_type):
    model = create_qmlp("qmlp_resmlp_28", w_bits=4, a_bits=4, **kwargs)
    assert type(model.blocks[0].norm1).__name__ == norm_type


def test_naive_preset_uses_family_norm_gelu_and_symmetric_minmax():
    mixer = create_qmlp("qmlp_mixer_28", w_bits=4, a_bits=4, preset="naive")
    assert isinstance(mixer.blocks[0].norm1, nn.LayerNorm)  # Mixer's own norm
    assert isinstance(mixer.blocks[0].mlp_channels.act, nn.GELU)
    assert len(mixer.blocks[0].token_mixing.mixers) == 1
    assert mixer.blocks[0].channel_quant.act_quant.is_signed


def test_model_size_counts_quantized_bits():
    fp, q4, q8 = (
        create_qmlp("qmlp_mixer_28", **kw)
        for kw in ({}, {"w_bits": 4, "a_bits": 4}, {"w_bits": 8, "a_bits": 8})
    )
    weights = sum(m.weight.numel() for m in quantized_layers(q4).values())
    assert model_size_mb(fp) == pytest.approx(4 * sum(p.numel() for p in fp.parameters()) / 1e6)
    for model, bits in ((q4, 4), (q8, 8)):
        others = sum(p.numel() for p in model.parameters()) - weights  # biases, norms, scales
        assert model_size_mb(model) == pytest.approx((weights * bits / 8 + 4 * others) / 1e6)


def test_paper_variants_build_at_paper_size():
    resmlp = create_qmlp("qmlp_resmlp_24_224", w_bits=4, a_bits=4, token_groups=1)
    params = sum(p.numel() for p in resmlp.parameters())
    assert 29e6 < params < 32e6  # ResMLP-24: 30M parameters
    assert resmlp.num_tokens == 196 and len(resmlp.blocks) == 24


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown model 'qmlp_tiny'"):
        create_qmlp("qmlp_tiny")
    with pytest.raises(ValueError, match="not divisible by token_groups 3"):
        create_qmlp("qmlp_mixer_28", token_groups=3)
    with pytest.raises(ValueError, match="no pretrained weights"):
        timm.create_model("qmlp_mixer_28", pretrained=True)
