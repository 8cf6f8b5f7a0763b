"""A positive scalar ``Mul`` before an ``IntLayerNorm``, absorbed into its input scale.

After streamlining, the residual stream reaches each integer LayerNorm as integers times the
shared quantizer's scale ``s``: ``Mul(n, s)``. The QONNX op takes ``round(x / input_scale)``,
so ``IntLayerNorm(Mul(n, s); input_scale)`` is ``IntLayerNorm(n; input_scale / s)``: the
multiply folds into the attribute and the op reads the integer stream itself (``input_scale``
ends at 1, which the conversion to the hardware layer requires). Epsilon is already an integer
of the op (``eps_int``), so, unlike FINN's LayerNorm, nothing else changes.
"""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.util.basic import get_by_name

from ..domains import QMLP_QONNX_DOMAIN
from .layernorm_scale import positive_scalar_mul_before

INT_LAYERNORM = "IntLayerNorm"


class AbsorbScalarMulIntoIntLayerNorm(Transformation):
    """``Mul(x, s)`` -> ``IntLayerNorm(input_scale)`` becomes ``IntLayerNorm(x, input_scale/s)``."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        graph = model.graph
        for node in graph.node:
            if node.op_type != INT_LAYERNORM or node.domain != QMLP_QONNX_DOMAIN:
                continue
            found = positive_scalar_mul_before(model, node)
            if found is None:
                continue
            mul, s = found
            attr = get_by_name(node.attribute, "input_scale")
            if attr is None:
                attr = node.attribute.add()
                attr.name, attr.type, attr.f = "input_scale", 1, 1.0
            attr.f = attr.f / s
            node.input[0] = mul.input[0]
            graph.node.remove(mul)
            return model.transform(InferDataTypes()), True
        return model, False
