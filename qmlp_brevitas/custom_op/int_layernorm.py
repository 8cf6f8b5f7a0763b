"""``IntLayerNorm`` as a QONNX op: the exported integer LayerNorm, executed by qonnx.

Input: the residual stream, ``x = s * n`` with integers ``n``; the op takes ``n =
round(x / input_scale)`` (streamlining divides ``input_scale`` by every scalar scale it
absorbs, down to 1 when ``x`` itself is the integer stream). Output: the integers ``y`` of
:func:`qmlp_brevitas.intnorm.int_layernorm` (a float tensor of integers, typed ``INT<O>``);
the graph multiplies them by ``2**-frac_bits`` and by LayerNorm's affine after the node.

Attributes: ``input_scale`` (float), ``input_bits`` (signed width of ``n``), ``frac_bits``,
``eps_int`` (integer epsilon), ``rsqrt_bits`` (the precision ``K`` they imply, recorded and
checked). Normalisation is over the last axis.
"""

from __future__ import annotations

import numpy as np
import torch
from onnx import helper
from qonnx.core.datatype import DataType
from qonnx.custom_op.base import CustomOp

from ..intnorm import IntLayerNormError, IntLayerNormSpec, int_layernorm


def spec_from_node(op: CustomOp, channels: int) -> IntLayerNormSpec:
    """The spec of an ``IntLayerNorm`` node (QONNX or FINN), checking its ``rsqrt_bits``."""
    spec = IntLayerNormSpec(
        int(channels),
        int(op.get_nodeattr("input_bits")),
        int(op.get_nodeattr("frac_bits")),
        int(op.get_nodeattr("eps_int")),
        layer=op.onnx_node.name or op.onnx_node.op_type,
    )
    recorded = int(op.get_nodeattr("rsqrt_bits"))
    if recorded not in (0, spec.rsqrt_bits):
        raise IntLayerNormError(
            spec.layer,
            "recorded rsqrt_bits",
            recorded,
            spec.rsqrt_bits,
            "the node was made by another version of the integer LayerNorm; export it again",
        )
    return spec


def execute_integers(values: np.ndarray, spec: IntLayerNormSpec) -> np.ndarray:
    """The integer LayerNorm of integer-valued ``values`` (any float/int dtype), as float32."""
    ints = torch.from_numpy(np.asarray(values, dtype=np.float64).round().astype(np.int64))
    return int_layernorm(ints, spec).numpy().astype(np.float32)


class IntLayerNorm(CustomOp):
    """The integer LayerNorm over the last axis (see module docstring)."""

    def get_nodeattr_types(self):
        return {
            "input_scale": ("f", False, 1.0),
            "input_bits": ("i", True, 0),
            "frac_bits": ("i", True, 0),
            "eps_int": ("i", False, 0),
            "rsqrt_bits": ("i", False, 0),
        }

    def spec(self, model) -> IntLayerNormSpec:
        """The spec of this node in ``model`` (the channels are its input's last axis)."""
        return spec_from_node(self, model.get_tensor_shape(self.onnx_node.input[0])[-1])

    def make_shape_compatible_op(self, model):
        node = self.onnx_node
        return helper.make_node("Identity", [node.input[0]], [node.output[0]])

    def infer_node_datatype(self, model):
        spec = self.spec(model)
        model.set_tensor_datatype(self.onnx_node.output[0], DataType[f"INT{spec.output_bits}"])

    def execute_node(self, context, graph):
        node = self.onnx_node
        x = context[node.input[0]]
        spec = spec_from_node(self, x.shape[-1])
        scale = float(self.get_nodeattr("input_scale"))
        if scale <= 0:
            raise IntLayerNormError(spec.layer, "input_scale", scale, "> 0")
        context[node.output[0]] = execute_integers(np.asarray(x, np.float64) / scale, spec)

    def verify_node(self):
        info = []
        for name in ("input_bits", "frac_bits"):
            try:
                self.get_nodeattr(name)
                info.append(f"{name} is set")
            except AttributeError:
                info.append(f"{name} is missing")
        return info
