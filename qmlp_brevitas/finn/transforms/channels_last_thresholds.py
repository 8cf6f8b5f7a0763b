"""Channels-last layout for ``MultiThreshold`` nodes on token streams.

A ``(N, T, C)`` token tensor is channels-last, but a ``MultiThreshold`` behind a ``Transpose``
inherits a channels-first layout (``NCW``) from layout inference and then fails with
"Threshold shape incorrect" once its thresholds are per channel along the last axis. Every
``MultiThreshold`` on a 3-D tensor whose thresholds are global or per last-axis channel is
marked ``NWC`` (FINN's name for channels-last 3-D data), matching FINN's hardware
``Thresholding``, which thresholds the innermost (channel) axis.
"""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation


class ChannelsLastThresholds(Transformation):
    """Set ``data_layout=NWC`` on 3-D ``MultiThreshold`` nodes thresholding the last axis."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        changed = False
        for node in model.graph.node:
            if node.op_type != "MultiThreshold":
                continue
            shape = model.get_tensor_shape(node.input[0])
            thresholds = model.get_initializer(node.input[1])
            if shape is None or len(shape) != 3 or thresholds is None:
                continue
            if thresholds.shape[0] not in (1, shape[-1]):
                continue
            inst = getCustomOp(node)
            if inst.get_nodeattr("data_layout") != "NWC":
                inst.set_nodeattr("data_layout", "NWC")
                changed = True
            if model.get_tensor_layout(node.input[0]) != ["N", "W", "C"]:
                model.set_tensor_layout(node.input[0], ["N", "W", "C"])
        return model, changed
