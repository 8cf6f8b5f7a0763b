"""Token mean as FINN's ``GlobalAccPool`` with the ``1/T`` left as a ``Mul`` to be absorbed.

The Q-MLP head averages ``T`` tokens of a ``(N, T, C)`` stream (global average pooling over
tokens). FINN converts ``GlobalAveragePool`` on NCHW images only, and the route through it
breaks the channels-last layout of a token stream. An integer ``ReduceMean`` over the token axis
becomes ``Reshape (N, T, 1, C)`` -> ``GlobalAccPool`` (integer sum) -> ``Reshape`` ->
``Mul(1/T)``; streamlining then folds ``1/T`` into the following thresholds.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes

from ..domains import HW_DOMAIN
from .linear_past_reduce_mean import reduce_axes


class ReduceMeanToGlobalAccPool(Transformation):
    """Replace an integer token ``ReduceMean`` of a 3-D tensor (see module docstring)."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        graph = model.graph
        for node in graph.node:
            if node.op_type != "ReduceMean":
                continue
            shape = model.get_tensor_shape(node.input[0])
            idt = model.get_tensor_datatype(node.input[0])
            if len(shape) != 3 or reduce_axes(model, node) != [1] or not idt.is_integer():
                continue
            batch, tokens, channels = (int(d) for d in shape)
            name = node.name
            pooled_shape = [batch, 1, 1, channels]
            image, pooled, summed = (model.make_new_valueinfo_name() for _ in range(3))
            for tensor, tshape in ((image, [batch, tokens, 1, channels]), (pooled, pooled_shape)):
                graph.value_info.append(
                    helper.make_tensor_value_info(tensor, TensorProto.FLOAT, tshape)
                )
                model.set_tensor_layout(tensor, ["N", "H", "W", "C"])
            graph.value_info.append(
                helper.make_tensor_value_info(
                    summed, TensorProto.FLOAT, model.get_tensor_shape(node.output[0])
                )
            )
            nodes = [
                helper.make_node(
                    "Reshape",
                    [node.input[0], self._const(model, [batch, tokens, 1, channels], np.int64)],
                    [image],
                    name=f"{name}_to_image",
                ),
                helper.make_node(
                    "GlobalAccPool",
                    [image],
                    [pooled],
                    domain=HW_DOMAIN,
                    backend="fpgadataflow",
                    NumChannels=channels,
                    PE=1,
                    inputDataType=idt.name,
                    numInputVectors=[batch, tokens, 1],
                    name=f"GlobalAccPool_{name}",
                ),
                helper.make_node(
                    "Reshape",
                    [pooled, self._const(model, model.get_tensor_shape(node.output[0]), np.int64)],
                    [summed],
                    name=f"{name}_from_image",
                ),
                helper.make_node(
                    "Mul",
                    [summed, self._const(model, 1.0 / tokens, np.float32)],
                    [node.output[0]],
                    name=f"{name}_mean",
                ),
            ]
            index = list(graph.node).index(node)
            for offset, new in enumerate(nodes):
                graph.node.insert(index + offset, new)
            graph.node.remove(node)
            model = model.transform(InferShapes())
            return model.transform(InferDataTypes()), True
        return model, False

    @staticmethod
    def _const(model: ModelWrapper, value, dtype) -> str:
        name = model.make_new_valueinfo_name()
        model.set_initializer(name, np.asarray(value, dtype=dtype))
        return name
