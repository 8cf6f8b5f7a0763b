"""The QONNX ``IntLayerNorm`` on an integer stream becomes the FINN layer ``IntLayerNorm``.

The conversion of the integer LayerNorm in the build's conversion to hardware layers (as FINN's
``InferLayerNorm`` does for ``LayerNormalization``): a ``qmlp_brevitas.custom_op`` node whose
input is an integer stream (``input_scale`` 1, every scale absorbed by streamlining) becomes a
HW node of :mod:`qmlp_brevitas.finn.custom_op` with ``SIMD`` 1 (folding comes later), the same
precision attributes and FINN's data types. The input type is the producer's after FINN's own
width minimisation of that producer (its ``minimize_accumulator_width``, which FINN's
``step_minimize_bit_width`` applies to every layer later): qonnx types the residual ``Add`` of
two 4-bit streams ``INT32``, FINN's ``ElementwiseAdd`` then ``INT5``. An input type wider
than the node's ``input_bits`` is refused with
:class:`~qmlp_brevitas.intnorm.IntLayerNormError` (naming the layer and the limit); a node
whose input is still scaled or float is left for the build's check, which names it.
"""

from __future__ import annotations

from onnx import helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation
from qonnx.transformation.infer_datatypes import InferDataTypes

from ..domains import QMLP_QONNX_DOMAIN
from ..project_ops import DOMAIN as HW_DOMAIN

SCALE_TOLERANCE = 1e-5  # |input_scale - 1|; exact for integers below 2**15 in magnitude
PASS_THROUGH = ("DuplicateStreams",)  # FINN layers whose outputs have their input's type


def _minimize_producer_width(model: ModelWrapper, tensor: str) -> ModelWrapper:
    """FINN's output-width minimisation of the FINN layer producing ``tensor`` (looking past
    stream duplication), propagated down to ``tensor``."""
    producer = model.find_producer(tensor)
    while producer is not None and producer.op_type in PASS_THROUGH:
        producer = model.find_producer(producer.input[0])
    if producer is None or not producer.domain.startswith("finn.custom_op.fpgadataflow"):
        return model
    inst = getCustomOp(producer)
    if not hasattr(inst, "minimize_accumulator_width"):
        return model
    inst.minimize_accumulator_width(model)
    return model.transform(InferDataTypes())


def unconverted_reason(model: ModelWrapper, node) -> str | None:
    """Why ``node`` (a QONNX ``IntLayerNorm``) cannot become the hardware layer, or None."""
    dtype = model.get_tensor_datatype(node.input[0])
    if not dtype.is_integer():
        return f"its input is {dtype.name}, not an integer stream"
    scale = float(getCustomOp(node).get_nodeattr("input_scale"))
    if abs(scale - 1.0) > SCALE_TOLERANCE:
        return f"its input_scale is {scale:.6g}, not 1: a scale in front was not absorbed"
    return None


class InferIntLayerNorm(Transformation):
    """QONNX ``IntLayerNorm`` nodes on integer streams -> FINN HW ``IntLayerNorm`` nodes."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        for node in model.graph.node:
            if node.op_type != "IntLayerNorm" or node.domain != QMLP_QONNX_DOMAIN:
                continue
            if unconverted_reason(model, node) is not None:
                continue
            output = node.output[0]
            model = _minimize_producer_width(model, node.input[0])
            node = model.find_producer(output)  # the same node in the model after inference
            self.convert(model, node)
            return model.transform(InferDataTypes()), True
        return model, False

    @staticmethod
    def convert(model: ModelWrapper, node) -> None:
        """Replace ``node`` by the HW layer, in place."""
        graph = model.graph
        spec = getCustomOp(node).spec(model)
        shape = list(model.get_tensor_shape(node.input[0]))
        dtype = model.get_tensor_datatype(node.input[0])
        spec.check_input_range(int(dtype.min()), int(dtype.max()), f"input type {dtype.name}")
        hw = helper.make_node(
            "IntLayerNorm",
            [node.input[0]],
            [node.output[0]],
            name=node.name,
            domain=HW_DOMAIN,
            backend="fpgadataflow",
            NumChannels=int(shape[-1]),
            SIMD=1,
            numInputVectors=[int(v) for v in shape[:-1]],
            input_bits=spec.input_bits,
            frac_bits=spec.frac_bits,
            eps_int=spec.eps_int,
            rsqrt_bits=spec.rsqrt_bits,
            inputDataType=dtype.name,
            outputDataType=f"INT{spec.output_bits}",
        )
        index = list(graph.node).index(node)
        graph.node.remove(node)
        graph.node.insert(index, hw)
        model.set_tensor_datatype(node.output[0], DataType[f"INT{spec.output_bits}"])
