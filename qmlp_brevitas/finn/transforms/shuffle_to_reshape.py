"""A FINN ``Shuffle`` that keeps the element order, as FINN's ``Reshape`` layer.

Lowering the patch-embedding conv to an ``Im2Col`` needs the image channels-last, so FINN puts a
``Transpose`` NCHW -> NHWC in front of the input quantizer and makes it a ``Shuffle`` layer,
which its transpose decomposition splits into an ``OuterShuffle`` (HLS only) and an
``InnerShuffle``. For a single-channel image (Fashion-MNIST) that transpose only moves an axis of
size 1: the stream carries the same elements in the same order before and after, so the layer is
a reshape. Whether a ``Shuffle`` keeps the row-major element order is checked exactly, by running
its reshape-transpose-reshape on ``arange``; if it does, it becomes FINN's ``Reshape`` HW layer
(same shapes and data type), whose RTL variant passes the stream through.
"""

from __future__ import annotations

import numpy as np
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.util.basic import get_by_name

FINN_HW_DOMAIN = "finn.custom_op.fpgadataflow"


def _ints(node, name: str) -> list[int]:
    return [int(v) for v in helper.get_attribute_value(get_by_name(node.attribute, name))]


def keeps_order(node) -> bool:
    """Whether the ``Shuffle`` node's reshape-transpose-reshape keeps the element order."""
    in_shape = _ints(node, "in_shape")
    data = np.arange(int(np.prod(in_shape))).reshape(_ints(node, "transpose_in_shape"))
    out = data.transpose(_ints(node, "perm")).reshape(-1)
    return bool(np.array_equal(out, np.arange(out.size)))


class OrderPreservingShuffleToReshape(Transformation):
    """Replace every order-preserving FINN ``Shuffle`` by a FINN ``Reshape`` HW layer."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        graph = model.graph
        changed = False
        for index, node in enumerate(list(graph.node)):
            if node.op_type != "Shuffle" or node.domain != FINN_HW_DOMAIN:
                continue
            if not keeps_order(node):
                continue
            dtype = helper.get_attribute_value(get_by_name(node.attribute, "data_type"))
            reshape = helper.make_node(
                "Reshape",
                [node.input[0]],
                [node.output[0]],
                name=f"{node.name}_reshape",
                domain=FINN_HW_DOMAIN,
                backend="fpgadataflow",
                inp_shape=_ints(node, "in_shape"),
                out_shape=_ints(node, "out_shape"),
                dtype=dtype.decode() if isinstance(dtype, bytes) else dtype,
            )
            graph.node.insert(index, reshape)
            graph.node.remove(node)
            changed = True
        return model, changed
