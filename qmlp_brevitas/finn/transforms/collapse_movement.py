"""A chain of ``Transpose``/``Reshape`` nodes that keeps the element order, as one ``Reshape``.

Lowering the patch-embedding conv leaves ``NHWC -> Transpose(NCHW) -> Reshape(N, C, T) ->
Transpose(N, T, C)``, which is only a reshape of the NHWC data. Whether a chain keeps the
row-major element order is checked exactly by running it on ``arange``; if it does, a stream
needs no reordering and the chain is replaced by a single ``Reshape`` (no shuffle hardware).
"""

from __future__ import annotations

import numpy as np
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.transformation.infer_shapes import InferShapes

CHAIN = ("Transpose", "Reshape")


def _apply(model: ModelWrapper, node, data: np.ndarray) -> np.ndarray:
    if node.op_type == "Reshape":
        return data.reshape(model.get_tensor_shape(node.output[0]))
    perm = helper.get_node_attr_value(node, "perm")
    return data.transpose(perm if perm else None)


class CollapseOrderPreservingMovement(Transformation):
    """Replace the longest order-preserving ``Transpose``/``Reshape`` chain by one ``Reshape``."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        graph = model.graph
        for head in graph.node:
            if head.op_type != "Transpose":
                continue
            shape = model.get_tensor_shape(head.input[0])
            if shape is None:
                continue
            data = np.arange(int(np.prod(shape))).reshape(shape)
            chain, best = [], None
            node = head
            while node is not None and node.op_type in CHAIN:
                data = _apply(model, node, data)
                chain.append(node)
                if len(chain) > 1 and np.array_equal(data.reshape(-1), np.arange(data.size)):
                    best = list(chain)
                consumers = model.find_consumers(node.output[0]) or []
                node = consumers[0] if len(consumers) == 1 else None
            if best is None:
                continue
            target = model.make_new_valueinfo_name()
            model.set_initializer(
                target, np.array(model.get_tensor_shape(best[-1].output[0]), dtype=np.int64)
            )
            reshape = helper.make_node(
                "Reshape",
                [head.input[0], target],
                [best[-1].output[0]],
                name=f"{head.name}_reshape",
            )
            graph.node.insert(list(graph.node).index(head), reshape)
            for old in best:
                graph.node.remove(old)
            return model.transform(InferShapes()), True
        return model, False
