"""The accelerator's integer boundary: input quantizer and output de-quantization on the host.

After streamlining, an exported model starts with its input quantizer as a ``MultiThreshold``
on the float image (often followed by the NCHW->NHWC ``Transpose``) and ends with the
classifier's float scale and bias (``Mul``/``Add`` by constants). FINN would map them to hardware
layers on float streams. As in FINN's own examples (``infer_shuffle_skip_first``, the
``reject_output_dequant`` filter of ``InferElementwiseBinaryOperation``) they stay on the host
instead: the dataflow accelerator then takes the quantized image as integers and returns the
classifier's integer accumulators, and everything in between is integer hardware.

:func:`split_host_io` takes those nodes out of the graph before FINN's conversion to hardware
layers, and :func:`join_host_io` puts them back after it, around the converted core; FINN's
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
# Constant float ops the host may do on the classifier's output.
HOST_DEQUANT_OPS = ("Mul", "Add")


@dataclass
class HostIO:
    """Nodes set aside for the host and the graph boundary they were cut from."""

    pre: list[NodeProto] = field(default_factory=list)
    post: list[NodeProto] = field(default_factory=list)
    graph_input: ValueInfoProto | None = None
    graph_output: ValueInfoProto | None = None
    # shapes and FINN data types of the tensors inside the host parts
    tensors: dict[str, tuple[ValueInfoProto, DataType]] = field(default_factory=dict)
    # their parameters (thresholds, scales, shapes), which the core's clean-up would drop
    params: dict[str, tuple[np.ndarray, DataType]] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        """Names of the host nodes, input side first."""
        return [n.name for n in self.pre + self.post]


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


def output_dequant_nodes(model: ModelWrapper) -> list[NodeProto]:
    """The float ``Mul``/``Add`` by constants that end the graph, in graph order."""
    nodes: list[NodeProto] = []
    tensor = model.graph.output[0].name
    while True:
        node = model.find_producer(tensor)
        if node is None or node.op_type not in HOST_DEQUANT_OPS:
            break
        if model.get_initializer(node.input[1]) is None:
            break
        if model.get_tensor_datatype(node.output[0]).is_integer():
            break
        if (
            node.output[0] != model.graph.output[0].name
            and _single_consumer(model, node.output[0]) is None
        ):
            break
        nodes.insert(0, node)
        tensor = node.input[0]
    return nodes


def _value_info(model: ModelWrapper, tensor: str) -> ValueInfoProto:
    for vi in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        if vi.name == tensor:
            return vi
    raise ValueError(f"tensor {tensor} has no shape information; run InferShapes first")


def split_host_io(model: ModelWrapper) -> tuple[ModelWrapper, HostIO]:
    """Remove the host nodes from ``model`` (in place); return it and what was removed.

    The remaining graph's input is the integer output of the input quantizer (after its layout
    nodes), and its output is the integer input of the de-quantization.
    """
    pre, post = input_quantizer_nodes(model), output_dequant_nodes(model)
    host = HostIO(pre=pre, post=post)
    graph = model.graph
    if len(pre) + len(post) >= len(graph.node):
        raise ValueError("nothing is left for the accelerator once the host nodes are removed")
    inner = {t for n in pre[:-1] for t in n.output} | {t for n in post[:-1] for t in n.output}
    for tensor in inner:
        host.tensors[tensor] = (_value_info(model, tensor), model.get_tensor_datatype(tensor))
    for node in pre + post:
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
    if post:
        new_out = _value_info(model, post[0].input[0])
        host.graph_output = graph.output[0]
        graph.value_info.remove(new_out)
        graph.output.remove(graph.output[0])
        graph.output.insert(0, new_out)
        for node in post:
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
    if host.post:
        core_out = graph.output[0]
        host.post[0].input[0] = core_out.name
        graph.output.remove(core_out)
        graph.value_info.append(core_out)
        graph.output.insert(0, host.graph_output)
        graph.node.extend(host.post)
    known = {vi.name for vi in graph.value_info}
    for tensor, (info, dtype) in host.tensors.items():
        if tensor not in known:
            graph.value_info.append(info)
        model.set_tensor_datatype(tensor, dtype)
    for name, (value, dtype) in host.params.items():
        model.set_initializer(name, value)
        model.set_tensor_datatype(name, dtype)
    return model
