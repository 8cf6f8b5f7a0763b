"""A FINN ``Shuffle`` that keeps the element order, as FINN's ``Reshape`` hardware layer.

FINN turns every ``Transpose`` into a ``Shuffle`` (the build keeps the first one too,
``infer_shuffle_skip_first=False``). A transpose that moves only axes of size 1 keeps the
row-major element order: the input image's ``NCHW -> NHWC`` with one channel is one. As a
``Shuffle`` it still buffers the frame, and FINN cannot fold it beyond one element per cycle
(SIMD must divide both last dimensions, 28 and 1): 7,840 cycles for the 28x28 image, the
default model's bottleneck above 25,000 frames/s. As a ``Reshape`` it is wiring. Whether a
``Shuffle`` keeps the order is checked exactly by running its reshape-transpose-reshape on
``arange``.
"""

from __future__ import annotations

import numpy as np
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

HW_DOMAIN = "finn.custom_op.fpgadataflow"


def keeps_order(in_shape, transpose_in_shape, perm, out_shape) -> bool:
    """Whether reshape -> transpose(perm) -> reshape leaves the row-major order unchanged."""
    size = int(np.prod(in_shape))
    data = np.arange(size).reshape(transpose_in_shape).transpose(perm).reshape(out_shape)
    return bool(np.array_equal(data.reshape(-1), np.arange(size)))


class OrderPreservingShuffleToReshape(Transformation):
    """Replace each order-preserving ``Shuffle`` by a ``Reshape`` HW layer (same tensors)."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        graph = model.graph
        changed = False
        for index, node in enumerate(list(graph.node)):
            if node.op_type != "Shuffle" or node.domain != HW_DOMAIN:
                continue
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            shapes = [list(attrs[k]) for k in ("in_shape", "transpose_in_shape", "out_shape")]
            if not keeps_order(shapes[0], shapes[1], list(attrs["perm"]), shapes[2]):
                continue
            dtype = attrs["data_type"]
            reshape = helper.make_node(
                "Reshape",
                [node.input[0]],
                [node.output[0]],
                name=f"{node.name}_reshape",
                domain=HW_DOMAIN,
                backend="fpgadataflow",
                inp_shape=shapes[0],
                out_shape=shapes[2],
                dtype=dtype.decode() if isinstance(dtype, bytes) else dtype,
            )
            graph.node.insert(index, reshape)
            graph.node.remove(node)
            changed = True
        return model, changed
