"""A positive scalar ``Mul`` before a ``LayerNormalization``, absorbed into its epsilon.

After streamlining, a residual stream reaches each LayerNorm as integers times the shared
quantizer's scale ``s``. LayerNorm removes the scale except inside the square root:
``LN(s * x; eps) = LN(x; eps / s**2)`` for ``s > 0`` (normalisation over the same axis). Folding
``s`` into epsilon hands FINN's ``LayerNorm`` an integer input instead of a float multiply.
"""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.util.basic import get_by_name


def positive_scalar_mul_before(model: ModelWrapper, node):
    """``(mul, s)`` when ``node``'s first input is a ``Mul`` by a positive scalar constant ``s``
    that feeds nothing else (so that it can be absorbed into ``node``), else ``None``."""
    mul = model.find_producer(node.input[0])
    if mul is None or mul.op_type != "Mul":
        return None
    scale = model.get_initializer(mul.input[1])
    if scale is None or scale.size != 1 or float(scale.item()) <= 0:
        return None
    if len(model.find_consumers(mul.output[0])) != 1:
        return None
    return mul, float(scale.item())


class AbsorbScalarMulIntoLayerNorm(Transformation):
    """``Mul(x, s)`` -> ``LayerNormalization(eps)`` becomes ``LayerNormalization(x, eps/s**2)``."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        graph = model.graph
        for node in graph.node:
            if node.op_type != "LayerNormalization":
                continue
            found = positive_scalar_mul_before(model, node)
            if found is None:
                continue
            mul, s = found
            eps = get_by_name(node.attribute, "epsilon")
            if eps is None:
                eps = node.attribute.add()
                eps.name, eps.type, eps.f = "epsilon", 1, 1e-5
            eps.f = eps.f / (s * s)
            node.input[0] = mul.input[0]
            graph.node.remove(mul)
            return model.transform(InferDataTypes()), True
        return model, False
