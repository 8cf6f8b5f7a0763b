"""A plain quantized MLP for 28x28 images, like FINN's TFC, to show the flow is not Q-MLP only.

Brevitas ``QuantIdentity`` input quantizer, then ``QuantLinear`` -> ``QuantReLU`` layers and a
``QuantLinear`` classifier (Umuroglu et al., FINN, 2017: the TFC topology with configurable
widths). Exported with :func:`qmlp_brevitas.export.export_model` like any model of this project.
"""

from __future__ import annotations

import torch
from brevitas.nn import QuantIdentity, QuantLinear, QuantReLU
from torch import nn

from ..quant import PerTensorWeightQuant, check_bit_width


class PlainQuantMLP(nn.Module):
    """``28*28 -> hidden... -> classes`` with ``w_bits`` weights and ``a_bits`` activations."""

    def __init__(
        self,
        hidden: tuple[int, ...] = (64, 64),
        w_bits: int = 4,
        a_bits: int = 4,
        in_features: int = 28 * 28,
        num_classes: int = 10,
    ):
        super().__init__()
        check_bit_width(w_bits, "weight bit width")
        check_bit_width(a_bits, "activation bit width")
        weight_quant = PerTensorWeightQuant.let(bit_width=w_bits)
        self.input_quant = QuantIdentity(bit_width=8, return_quant_tensor=False)
        layers = []
        width = in_features
        for h in hidden:
            layers += [
                QuantLinear(width, h, bias=False, weight_quant=weight_quant),
                nn.BatchNorm1d(h),
                QuantReLU(bit_width=a_bits, return_quant_tensor=False),
            ]
            width = h
        self.features = nn.Sequential(*layers)
        self.head = QuantLinear(width, num_classes, bias=False, weight_quant=weight_quant)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_quant(x).flatten(1)
        return self.head(self.features(x))
