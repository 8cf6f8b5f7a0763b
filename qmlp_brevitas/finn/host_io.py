"""The accelerator's integer input: the input quantizer runs on the host.

After streamlining, an exported model starts with its input quantizer as a ``MultiThreshold``
on the float image (often followed by the NCHW->NHWC ``Transpose``). FINN would map it to a
threshold layer comparing 32-bit floats, fed by a float stream. As in FINN's own examples
(``infer_shuffle_skip_first``: the first transpose stays on the host) it stays on the host
instead: the accelerator takes the quantized image as integers, as the model's input quantizer
gives them. (The classifier's float scale and bias at the other end stay on the host too, by
:class:`~qmlp_brevitas.finn.transforms.OutputDequantToHost`.)

:func:`split_host_io` takes those nodes out of the graph before FINN's conversion to hardware
layers, and :func:`join_host_io` puts them back after it, in front of the converted core; FINN's
``step_create_dataflow_partition`` then leaves them in the parent model, which runs them in
software (:mod:`qmlp_brevitas.finn.partition`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from onnx import NodeProto, ValueInfoProto
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper

# Pure layout nodes the host may do right after the input quantizer.
HOST_LAYOUT_OPS = ("Transpose", "Reshape", "Flatten")


@dataclass
class HostIO:
    """Nodes set aside for the host and the graph input they were cut from."""

    pre: list[NodeProto] = field(default_factory=list)
    graph_input: ValueInfoProto | None = None
    # shapes and FINN data types of the tensors inside the host parts
    tensors: dict[str, tuple[ValueInfoProto, DataType]] = field(default_factory=dict)
    # their parameters (thresholds, scales, shapes), which the core's clean-up would drop
    params: dict[str, tuple[np.ndarray, DataType]] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        """Names of the host nodes."""
        return [n.name for n in self.pre]


def _single_consumer(model: ModelWrapper, tensor: str) -> NodeProto | None:
    consumers = model.find_consumers(tensor) or []
    return consumers[0] if len(consumers) == 1 else None


def input_quantizer_nodes(model: ModelWrapper) -> list[NodeProto]:
    """The input quantizer (a ``MultiThreshold`` from float to integers on the graph input) and
    the layout nodes right behind it; empty if the graph does not start with one."""
    first = _single_consumer(model, model.graph.input[0].name)
    if first is None or first.op_type != "MultiThreshold":
        return []
    if model.get_tensor_datatype(first.input[0]) != DataType["FLOAT32"]:
        return []
    if not model.get_tensor_datatype(first.output[0]).is_integer():
        return []
    nodes = [first]
    nxt = _single_consumer(model, first.output[0])
    while nxt is not None and nxt.op_type in HOST_LAYOUT_OPS:
        if any(model.get_initializer(i) is None for i in nxt.input[1:]):
            break
        nodes.append(nxt)
        nxt = _single_consumer(model, nxt.output[0])
    return nodes


def _value_info(model: ModelWrapper, tensor: str) -> ValueInfoProto:
    for vi in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        if vi.name == tensor:
            return vi
    raise ValueError(f"tensor {tensor} has no shape information; run InferShapes first")


def split_host_io(model: ModelWrapper) -> tuple[ModelWrapper, HostIO]:
    """Remove the host nodes from ``model`` (in place); return it and what was removed.

    The remaining graph's input is the integer output of the input quantizer (after its layout
    nodes).
    """
    pre = input_quantizer_nodes(model)
    host = HostIO(pre=pre)
    graph = model.graph
    if len(pre) >= len(graph.node):
        raise ValueError("nothing is left for the accelerator once the host nodes are removed")
    for tensor in {t for n in pre[:-1] for t in n.output}:
        host.tensors[tensor] = (_value_info(model, tensor), model.get_tensor_datatype(tensor))
    for node in pre:
        for name in node.input:
            value = model.get_initializer(name)
            if value is not None:
                host.params[name] = (value, model.get_tensor_datatype(name))
    if pre:
        new_in = _value_info(model, pre[-1].output[0])
        host.graph_input = graph.input[0]
        graph.value_info.remove(new_in)
        graph.input.remove(graph.input[0])
        graph.input.insert(0, new_in)
        for node in pre:
            graph.node.remove(node)
    return model, host


def join_host_io(model: ModelWrapper, host: HostIO) -> ModelWrapper:
    """Put the host nodes of :func:`split_host_io` back around ``model`` (in place)."""
    graph = model.graph
    if host.pre:
        core_in = graph.input[0]
        host.pre[-1].output[0] = core_in.name
        graph.input.remove(core_in)
        graph.value_info.append(core_in)
        graph.input.insert(0, host.graph_input)
        for k, node in enumerate(host.pre):
            graph.node.insert(k, node)
    known = {vi.name for vi in graph.value_info}
    for tensor, (info, dtype) in host.tensors.items():
        if tensor not in known:
            graph.value_info.append(info)
        model.set_tensor_datatype(tensor, dtype)
    for name, (value, dtype) in host.params.items():
        model.set_initializer(name, value)
        model.set_tensor_datatype(name, dtype)
    return model
