"""A global ``MultiThreshold`` moved in front of data movement, onto the scale it must absorb.

In Q-MLP's token mixing each group ends in a MatMul across tokens whose per-output (per-token)
weight scale and bias follow it; the groups are then transposed back and concatenated before
the residual's shared quantizer. In the patch embedding the conv's per-channel scale sits in
front of a ``Reshape``/``Transpose`` to tokens. Behind the data movement those factors no longer
lie on the thresholds' channel axis and cannot be absorbed. A quantizer with one global set of
thresholds is elementwise, so it commutes with any data movement:
``MT(Concat(a, b)) = Concat(MT(a), MT(b))``, ``MT(Transpose(a)) = Transpose(MT(a))``, and the same
for ``Reshape``. It is moved only where a constant ``Mul``/``Add`` lies behind the movement, so
that streamlining can then absorb it, and never back and forth.
"""

from __future__ import annotations

from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes

MOVABLE = ("Concat", "Transpose", "Reshape")


def _global_thresholds(model: ModelWrapper, node) -> bool:
    if node.op_type != "MultiThreshold":
        return False
    thresholds = model.get_initializer(node.input[1])
    return thresholds is not None and thresholds.shape[0] == 1


def _dynamic_inputs(model: ModelWrapper, node) -> list[str]:
    if node.op_type == "Reshape":
        return [node.input[0]]
    return [i for i in node.input if model.get_initializer(i) is None]


def _linear_behind(model: ModelWrapper, tensor: str) -> bool:
    """Whether a constant ``Mul``/``Add`` produces ``tensor`` through data movement only."""
    producer = model.find_producer(tensor)
    if producer is None:
        return False
    if producer.op_type in ("Mul", "Add"):
        return model.get_initializer(producer.input[1]) is not None
    if producer.op_type in MOVABLE:
        return any(_linear_behind(model, t) for t in _dynamic_inputs(model, producer))
    return False


class MoveGlobalThresholdsBeforeDataMovement(Transformation):
    """Move a global-threshold ``MultiThreshold`` in front of the movement node feeding it."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        graph = model.graph
        for node in graph.node:
            if not _global_thresholds(model, node):
                continue
            mover = model.find_producer(node.input[0])
            if mover is None or mover.op_type not in MOVABLE:
                continue
            if len(model.find_consumers(mover.output[0])) != 1:
                continue
            inputs = _dynamic_inputs(model, mover)
            if mover.op_type == "Concat" and len(inputs) != len(mover.input):
                continue
            if not _linear_behind(model, mover.output[0]):
                continue
            attrs = {
                a.name: helper.get_attribute_value(a)
                for a in node.attribute
                if a.name != "data_layout"  # the layout changes with the movement
            }
            index = list(graph.node).index(mover)
            for k, src in enumerate(inputs):
                out = model.make_new_valueinfo_name()
                new = helper.make_node(
                    "MultiThreshold",
                    [src, node.input[1]],
                    [out],
                    domain=node.domain,
                    name=f"{node.name}_{k}",
                    **attrs,
                )
                graph.node.insert(index + k, new)
                mover.input[list(mover.input).index(src)] = out
            mover.output[0] = node.output[0]
            graph.node.remove(node)
            model = model.transform(InferShapes())
            return model.transform(InferDataTypes()), True
        return model, False
