"""Scalar or per-channel ``Mul``/``Add`` before a token ``ReduceMean``, moved behind it.

The Q-MLP head averages the tokens of the final (dequantized) features. The mean is linear, so
``mean_t(x * a + b) = mean_t(x) * a + b`` for ``a``, ``b`` constant over the reduced axes. FINN's
``MoveScalarLinearPastInvariants`` does not cover ``ReduceMean``; moving the dequantization
behind it leaves an integer mean whose scale streamlining folds into the next thresholds.

The bias right behind a signed quantizer's ``MultiThreshold`` stays until streamlining absorbs
it (see :func:`._patterns.pending_threshold_bias`); moved, it would leave an integer stream typed
``INT8`` that counts 0..255, and the token sum behind it (``GlobalAccPool``) too narrow a type.
"""

from __future__ import annotations

from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.transformation.infer_shapes import InferShapes

from ._patterns import linear_before


def reduce_axes(model: ModelWrapper, node) -> list[int] | None:
    """The (non-negative) reduced axes of a ``ReduceMean``, attribute or input, or None."""
    rank = len(model.get_tensor_shape(node.input[0]))
    axes = None
    for attr in node.attribute:
        if attr.name == "axes":
            axes = list(attr.ints)
    if axes is None and len(node.input) > 1 and node.input[1]:
        value = model.get_initializer(node.input[1])
        if value is None:
            return None
        axes = [int(a) for a in value.reshape(-1)]
    if axes is None:
        return list(range(rank))
    return sorted(a % rank for a in axes)


class MoveLinearPastReduceMean(Transformation):
    """Move ``Mul``/``Add`` by a constant that does not vary over the reduced axes."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        graph = model.graph
        for node, param, mean in linear_before(model, "ReduceMean"):
            rank = len(model.get_tensor_shape(mean.input[0]))
            axes = reduce_axes(model, mean)
            per_channel = param.size > 1
            if axes is None or (
                per_channel and (rank - 1 in axes or param.size != param.shape[-1])
            ):
                continue
            param_name = model.make_new_valueinfo_name()
            model.set_initializer(param_name, param.reshape(-1) if per_channel else param)
            out = mean.output[0]
            moved = model.make_new_valueinfo_name()
            mean.input[0] = node.input[0]
            mean.output[0] = moved
            graph.node.insert(
                list(graph.node).index(mean) + 1,
                helper.make_node(node.op_type, [moved, param_name], [out], name=node.name),
            )
            graph.node.remove(node)
            return model.transform(InferShapes()), True
        return model, False
