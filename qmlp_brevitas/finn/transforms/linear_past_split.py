"""Per-channel ``Mul``/``Add`` before a last-axis ``Split``, moved behind it.

After ``ExtractNormScaleBias`` a LayerNorm is followed by its per-channel scale and shift; in
Q-MLP the channels are then split into token-mixing groups (Sec. 4.4). FINN's
``MoveScalarLinearPastSplit`` moves only scalars. ``Split(x * a)`` is ``Split(x) * Split(a)``
for ``a`` constant along all but the last axis, so each group gets its own slice of ``a`` and
streamlining can absorb it into that group's thresholds.
"""

from __future__ import annotations

import numpy as np
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.transformation.infer_shapes import InferShapes

from ._patterns import linear_before


class MoveChannelwiseLinearPastSplit(Transformation):
    """Move a ``Mul``/``Add`` with a last-axis (or scalar) constant past a last-axis ``Split``."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        graph = model.graph
        for node, param, split in linear_before(model, "Split"):
            shape = model.get_tensor_shape(split.input[0])
            axis = helper.get_node_attr_value(split, "axis")
            sizes = model.get_initializer(split.input[1]) if len(split.input) > 1 else None
            if sizes is None or axis % len(shape) != len(shape) - 1:
                continue
            if param.size != 1 and (param.ndim == 0 or param.size != param.shape[-1]):
                continue
            param = param.reshape(-1)
            split.input[0] = node.input[0]
            start = 0
            for i, size in enumerate(int(s) for s in sizes):
                part = param if param.size == 1 else param[start : start + size]
                start += size
                moved = model.make_new_valueinfo_name()
                part_name = model.make_new_valueinfo_name()
                model.set_initializer(part_name, part.astype(np.float32))
                out = split.output[i]
                split.output[i] = moved
                graph.node.insert(
                    list(graph.node).index(split) + 1,
                    helper.make_node(
                        node.op_type, [moved, part_name], [out], name=f"{node.name}_{i}"
                    ),
                )
            graph.node.remove(node)
            return model.transform(InferShapes()), True
        return model, False
