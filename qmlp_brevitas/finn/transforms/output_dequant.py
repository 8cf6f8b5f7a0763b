"""The output de-quantization (per-class scale and bias of the logits) left to the host.

The head's last ``MatMul`` gives integer accumulators; Brevitas' logits are those times a float
scale plus a float bias, which FINN turns into float ``ElementwiseMul``/``ElementwiseAdd``
layers (HLS only) at the end of the accelerator. FINN's own ``InferElementwiseBinaryOperation``
offers a filter for exactly this case (``reject_output_dequant``: "output de-quantization
operations which should happen off-chip"), which its build step does not use. This moves such
layers back to standard ONNX ``Mul``/``Add`` nodes: a chain of elementwise layers with a float
output and a constant operand, ending at a graph output. FINN's dataflow partition then leaves
them in the parent model (executed on the host, in the same float arithmetic as before), and the
accelerator's output is the integer accumulator.
"""

from __future__ import annotations

from onnx import NodeProto
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

FINN_HW_DOMAIN = "finn.custom_op.fpgadataflow"
ONNX_OP = {"ElementwiseMul": "Mul", "ElementwiseAdd": "Add", "Mul": "Mul", "Add": "Add"}


def _dequant_node(model: ModelWrapper, node: NodeProto | None) -> bool:
    if node is None or node.op_type not in ONNX_OP:
        return False
    if node.domain not in ("", FINN_HW_DOMAIN):
        return False
    if model.get_tensor_datatype(node.output[0]) != DataType["FLOAT32"]:
        return False
    return sum(model.get_initializer(i) is not None for i in node.input) == 1


def output_dequant_tail(model: ModelWrapper) -> list[NodeProto]:
    """The trailing float ``Mul``/``Add`` (ONNX or FINN elementwise) nodes with a constant
    operand, from each graph output backwards; each feeds only the graph output or the next
    node of the chain."""
    tail: list[NodeProto] = []
    for out in model.graph.output:
        node, after = model.find_producer(out.name), []
        while _dequant_node(model, node) and model.find_consumers(node.output[0]) == after:
            tail.append(node)
            dynamic = next(i for i in node.input if model.get_initializer(i) is None)
            node, after = model.find_producer(dynamic), [node]
    return tail


class OutputDequantToHost(Transformation):
    """Turn the output de-quantization layers back into ONNX ``Mul``/``Add`` (host side)."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        changed = False
        for node in output_dequant_tail(model):
            if node.domain != FINN_HW_DOMAIN:
                continue
            del node.attribute[:]  # FINN's layer attributes; ONNX Mul/Add take none
            node.op_type, node.domain = ONNX_OP[node.op_type], ""
            changed = True
        return model, changed
