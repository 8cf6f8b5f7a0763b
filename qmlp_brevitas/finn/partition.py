"""A FINN parent model: host nodes around one dataflow partition, executed in parts.

FINN's ``step_create_dataflow_partition`` moves the hardware layers into a child model behind a
``StreamingDataflowPartition`` node; the nodes before and after it (the input quantizer and the
output de-quantization, see :mod:`qmlp_brevitas.finn.host_io`) stay in the parent and run on the
host. :class:`PartitionedModel` executes the host parts alone, as a driver does around the
accelerator (the whole parent with a child model in place of the partition, as FINN's own
verification of the later build stages does, is
:func:`~qmlp_brevitas.finn.generic.execute_in_parent`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper

from ..layout import BuildFolder
from .generic import PartitionError


class PartitionedModel:
    """``parent``: a model with exactly one ``StreamingDataflowPartition`` node."""

    def __init__(self, parent: ModelWrapper):
        nodes = list(parent.graph.node)
        sdps = [i for i, n in enumerate(nodes) if n.op_type == "StreamingDataflowPartition"]
        if len(sdps) != 1:
            raise PartitionError(f"the parent model has {len(sdps)} dataflow partitions, not 1")
        self.parent = parent
        self.sdp = nodes[sdps[0]]
        self.pre = nodes[: sdps[0]]
        self.post = nodes[sdps[0] + 1 :]
        if len(self.sdp.input) != 1 or len(self.sdp.output) != 1:
            raise PartitionError("the dataflow partition must have one input and one output")

    @classmethod
    def from_build(cls, build_dir: str | Path) -> PartitionedModel:
        """The parent model of a FINN build folder (``intermediate_models/``)."""
        path = BuildFolder(build_dir).dataflow_parent
        if not path.is_file():
            raise PartitionError(f"{path} does not exist: the build did not partition the model")
        return cls(ModelWrapper(str(path)))

    @property
    def host_nodes(self) -> list[str]:
        """``"name (op)"`` of every node the host runs, input side first."""
        return [f"{n.name} ({n.op_type})" for n in self.pre + self.post]

    def accelerator_input(self, x: np.ndarray) -> np.ndarray:
        """What the host feeds the accelerator for the model input ``x``."""
        from qonnx.core.onnx_exec import execute_onnx

        name = self.parent.graph.input[0].name
        x = np.asarray(x, dtype=np.float32).reshape(self.parent.get_tensor_shape(name))
        if not self.pre:
            return x
        context = execute_onnx(
            self.parent, {name: x}, True, start_node=self.pre[0], end_node=self.pre[-1]
        )
        return context[self.sdp.input[0]]

    def input_quantizer_output(self) -> str | None:
        """The tensor the host's input quantizer (a leading ``MultiThreshold``) writes."""
        if self.pre and self.pre[0].op_type == "MultiThreshold":
            return self.pre[0].output[0]
        return None

    def layout_quantized(self, q: np.ndarray) -> np.ndarray:
        """What the host feeds the accelerator for already quantized input ``q`` (the input
        quantizer's integers): the host's layout nodes after its input quantizer."""
        from qonnx.core.onnx_exec import execute_onnx

        name = self.input_quantizer_output()
        if name is None:
            raise PartitionError("the host part does not start with an input quantizer")
        q = np.asarray(q, dtype=np.float32).reshape(self.parent.get_tensor_shape(name))
        if len(self.pre) == 1:
            return q
        context = execute_onnx(
            self.parent, {name: q}, True, start_node=self.pre[1], end_node=self.pre[-1]
        )
        return context[self.sdp.input[0]]

    def host_output(self, y: np.ndarray) -> np.ndarray:
        """The model output for the accelerator's output ``y``."""
        from qonnx.core.onnx_exec import execute_onnx

        if not self.post:
            return y
        out = self.parent.graph.output[0].name
        y = np.asarray(y, dtype=np.float32).reshape(
            self.parent.get_tensor_shape(self.sdp.output[0])
        )
        context = execute_onnx(self.parent, {self.sdp.output[0]: y}, True, start_node=self.post[0])
        return context[out]
