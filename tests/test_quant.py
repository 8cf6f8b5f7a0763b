"""Quantizers: bit-width validation, percentile calibration, asymmetric zero points."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from brevitas.nn import QuantIdentity

from qmlp_brevitas.quant import BitWidthError, act_quantizer, check_bit_width, weight_quantizer
from qmlp_brevitas.recipe import QuantRecipe, make_recipe
from qmlp_brevitas.train import calibrate


def _calibrated_identity(quant, batches):
    layer = QuantIdentity(act_quant=quant, return_quant_tensor=False)
    calibrate(layer, [(b, None) for b in batches], batches=len(batches))
    return layer.eval()


@pytest.mark.parametrize("bits", [1, 9, 0, -4, 2.5, "4", True, None])
def test_bad_bit_widths_are_refused(bits):
    with pytest.raises(BitWidthError, match="from 2 to 8"):
        check_bit_width(bits)


@pytest.mark.parametrize("field", ["w_bits", "a_bits"])
def test_recipe_refuses_bits_out_of_range(field):
    values = {"w_bits": 4, "a_bits": 4, field: 16}
    with pytest.raises(BitWidthError, match="from 2 to 8"):
        QuantRecipe(**values)


def test_recipe_needs_both_or_no_bit_widths():
    with pytest.raises(ValueError, match="both w_bits and a_bits"):
        QuantRecipe(w_bits=4)


@pytest.mark.parametrize(
    "setting",
    [
        {"norm": "groupnorm"},
        {"act": "swish"},
        {"calibration": "mse"},
        {"token_groups": 0},
        {"percentile": 30.0},
    ],
)
def test_recipe_refuses_unknown_settings(setting):
    with pytest.raises(ValueError, match=next(iter(setting))):
        make_recipe("qmlp", w_bits=4, a_bits=4, **setting)


def test_unknown_preset_is_named():
    with pytest.raises(ValueError, match="unknown preset 'fancy'"):
        make_recipe("fancy")


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("percentile", [99.0, 99.99])
def test_percentile_scale_matches_direct_percentile(bits, percentile):
    """Calibrated threshold = mean over batches of the q-th percentile of |x| (Brevitas' k)."""
    gen = torch.Generator().manual_seed(1)
    batches = [torch.randn(64, 300, generator=gen) * s for s in (1.0, 1.5, 0.7)]
    layer = _calibrated_identity(act_quantizer(bits, percentile=percentile), batches)
    per_batch = []
    for b in batches:
        a = np.sort(np.abs(b.numpy()).ravel())
        k = int(np.floor(0.01 * percentile * a.size + 0.5))  # 1-indexed k-th smallest
        per_batch.append(a[k - 1])
        # numpy's interpolated percentile lies within one rank of it
        assert a[k - 2] <= np.percentile(a, percentile) <= a[k]
    # Brevitas maps the threshold onto -min_int = 2^(b-1) for signed, non-narrow activations.
    expected_scale = np.mean(per_batch) / 2 ** (bits - 1)
    assert float(layer.act_quant.scale()) == pytest.approx(expected_scale, rel=1e-5)
    assert int(layer.act_quant.bit_width()) == bits


def test_minmax_scale_is_max_abs():
    x = torch.linspace(-3.0, 5.0, 1000).reshape(10, 100)
    layer = _calibrated_identity(act_quantizer(4, calibration="minmax"), [x])
    assert float(layer.act_quant.scale()) == pytest.approx(5.0 / 8, rel=1e-6)


def test_asymmetric_quantizer_has_zero_point_on_shifted_data():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 256, generator=gen) * 0.5 + 1.0  # mostly positive, some negative values
    layer = _calibrated_identity(act_quantizer(4, asymmetric=True, percentile=99.9), [x])
    scale, zp = float(layer.act_quant.scale()), float(layer.act_quant.zero_point())
    lo = np.percentile(x.numpy(), 0.1, method="inverted_cdf")
    hi = np.percentile(x.numpy(), 99.9, method="inverted_cdf")
    assert zp > 0 and zp == round(zp)
    assert scale * 15 == pytest.approx(hi - lo, rel=0.02)
    assert zp == pytest.approx(-lo / scale, abs=0.51)
    # A symmetric quantizer of the same bit width spends more range on the same data:
    sym = _calibrated_identity(act_quantizer(4, percentile=99.9), [x])
    assert float(sym.act_quant.scale()) > scale


def test_asymmetric_quantizer_has_no_zero_point_on_non_negative_data():
    x = torch.rand(32, 256) * 3
    layer = _calibrated_identity(act_quantizer(4, asymmetric=True), [x])
    assert float(layer.act_quant.zero_point()) == 0.0


@pytest.mark.parametrize("bits", [2, 3, 5, 8])
def test_weight_quantizer_bits_and_per_channel_scales(bits):
    from brevitas.nn import QuantLinear

    layer = QuantLinear(16, 8, bias=True, weight_quant=weight_quantizer(bits))
    qw = layer.quant_weight()
    assert int(qw.bit_width) == bits
    assert qw.scale.shape == (8, 1)
    ints = (qw.value / qw.scale).detach()
    assert torch.allclose(ints, ints.round(), atol=1e-4)
    assert ints.abs().max() <= 2 ** (bits - 1) - 1  # narrow range
