"""Channel slices that partition a tensor, as one ``Split`` (FINN's ``StreamingSplit``).

Q-MLP's multiple token-mixing MLPs (Zhao et al. 2022, Sec. 4.4) cut the channels into groups;
PyTorch's ``chunk`` exports as one ``Slice`` per group. FINN maps ``Split`` on the last axis to
``StreamingSplit`` but has no hardware ``Slice``. Slices of one tensor on its last axis with
unit steps whose ranges tile ``[0, C)`` exactly become one ``Split``.
"""

from __future__ import annotations

import numpy as np
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.transformation.infer_shapes import InferShapes


def _last_axis_range(model: ModelWrapper, node, rank: int, channels: int):
    """``(start, end)`` of a static unit-step ``Slice`` on the last axis, or None."""
    consts = [model.get_initializer(name) if name else None for name in node.input[1:]]
    if len(consts) < 3 or any(c is None for c in consts[:3]):
        return None
    starts, ends, axes = (np.atleast_1d(c).astype(np.int64) for c in consts[:3])
    steps = np.atleast_1d(consts[3]) if len(consts) > 3 and consts[3] is not None else [1]
    if len(axes) != 1 or int(axes[0]) % rank != rank - 1 or int(steps[0]) != 1:
        return None
    start, end = (int(v) + channels if int(v) < 0 else int(v) for v in (starts[0], ends[0]))
    return min(start, channels), min(end, channels)


class SlicesToSplit(Transformation):
    """Replace the last-axis ``Slice`` nodes that tile one tensor by a single ``Split``."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        graph = model.graph
        for tensor in {n.input[0] for n in graph.node if n.op_type == "Slice"}:
            shape = model.get_tensor_shape(tensor)
            if shape is None or model.get_initializer(tensor) is not None:
                continue
            slices = [n for n in model.find_consumers(tensor) if n.op_type == "Slice"]
            ranges = [_last_axis_range(model, n, len(shape), shape[-1]) for n in slices]
            if len(slices) < 2 or any(r is None for r in ranges):
                continue
            order = sorted(range(len(slices)), key=lambda i: ranges[i])
            bounds = [ranges[i] for i in order]
            tiles = bounds[0][0] == 0 and bounds[-1][1] == shape[-1]
            if not tiles or any(a[1] != b[0] for a, b in zip(bounds, bounds[1:], strict=False)):
                continue
            sizes = model.make_new_valueinfo_name()
            model.set_initializer(sizes, np.array([e - s for s, e in bounds], dtype=np.int64))
            split = helper.make_node(
                "Split",
                [tensor, sizes],
                [slices[i].output[0] for i in order],
                axis=len(shape) - 1,
                name=f"Split_{slices[order[0]].name}",
            )
            graph.node.insert(list(graph.node).index(slices[order[0]]), split)
            for node in slices:
                graph.node.remove(node)
            return model.transform(InferShapes()), True
        return model, False
