"""Zero-point (asymmetric) activation quantizers as thresholds, a shift and a scale.

FINN's ``ConvertQuantActToMultiThreshold`` refuses ``Quant`` nodes with a zero point other than 0
(``quant_act_to_multithreshold.py``). Q-MLP puts such linear asymmetric quantizers on its
sensitive operations (Zhao et al. 2022, Sec. 4.5). This turns each into an exact
``MultiThreshold`` (unsigned count) -> ``Add(qmin - z)`` -> ``Mul(s)``; streamlining then absorbs
the shift and scale into the next layer, as for FINN's own symmetric quantizers.
"""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.transformation.infer_shapes import InferShapes

from ._quant_thresholds import is_activation_quant, replace_with_thresholds


class ZeroPointQuantToThresholds(Transformation):
    """Replace every activation ``Quant`` with a nonzero zero point by thresholds (see module)."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        for node in model.graph.node:
            if not is_activation_quant(model, node):
                continue
            if not model.get_initializer(node.input[2]).any():
                continue
            replace_with_thresholds(model, node)
            # One change per pass: the node list was edited.
            return model.transform(InferShapes()), True
        return model, False
