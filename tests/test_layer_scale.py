"""ResMLP's LayerScale as published (signed) or non-negative (for integer hardware)."""

from __future__ import annotations

import pytest
import torch

from qmlp_brevitas.layers import LayerScale
from qmlp_brevitas.models import create_qmlp
from qmlp_brevitas.recipe import make_recipe


def test_non_negative_layer_scale_uses_the_magnitude():
    signed, non_negative = LayerScale(4, 0.1), LayerScale(4, 0.1, non_negative=True)
    gamma = torch.tensor([0.5, -0.25, 0.0, -2.0])
    with torch.no_grad():
        signed.gamma.copy_(gamma)
        non_negative.gamma.copy_(gamma)
    x = torch.randn(2, 3, 4)
    torch.testing.assert_close(signed(x), x * gamma)
    torch.testing.assert_close(non_negative(x), x * gamma.abs())


def test_recipe_setting_reaches_every_layer_scale():
    model = create_qmlp("qmlp_resmlp_28", w_bits=4, a_bits=4, depth=2, layer_scale="non_negative")
    scales = [m for m in model.modules() if isinstance(m, LayerScale)]
    assert len(scales) == 4 and all(m.non_negative for m in scales)
    default = create_qmlp("qmlp_resmlp_28", w_bits=4, a_bits=4, depth=1)
    assert not any(m.non_negative for m in default.modules() if isinstance(m, LayerScale))


def test_unknown_layer_scale_is_refused():
    with pytest.raises(ValueError, match="layer_scale must be one of"):
        make_recipe("qmlp", w_bits=4, a_bits=4, layer_scale="positive")
