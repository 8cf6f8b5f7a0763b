"""The per-group quantizers behind a channel ``Split``, merged into one in front of it.

Q-MLP's groups (Sec. 4.4) split the LayerNorm output, a float stream, and quantize each group
with its own quantizer. FINN's ``StreamingSplit`` takes integer streams only, so the groups'
``MultiThreshold`` nodes are merged into one with per-channel thresholds (each group's rows
repeated over its channels) in front of the ``Split``. A group's output bias becomes an ``Add``
behind the split, which streamlining moves on and absorbs downstream.
"""

from __future__ import annotations

import numpy as np
from onnx import helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes


class MoveThresholdsBeforeSplit(Transformation):
    """``Split`` -> one ``MultiThreshold`` per output becomes ``MultiThreshold`` -> ``Split``."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        graph = model.graph
        for split in graph.node:
            if split.op_type != "Split" or len(split.input) < 2:
                continue
            sizes = model.get_initializer(split.input[1])
            shape = model.get_tensor_shape(split.input[0])
            if (
                sizes is None
                or helper.get_node_attr_value(split, "axis") % len(shape) != len(shape) - 1
            ):
                continue
            groups = [model.find_consumers(o) or [] for o in split.output]
            if any(len(g) != 1 or g[0].op_type != "MultiThreshold" for g in groups):
                continue
            mts = [g[0] for g in groups]
            insts = [getCustomOp(m) for m in mts]
            thresholds = [model.get_initializer(m.input[1]) for m in mts]
            if any(t is None for t in thresholds) or len({t.shape[1] for t in thresholds}) != 1:
                continue
            if len({i.get_nodeattr("out_scale") for i in insts}) != 1:
                continue
            rows = [
                np.broadcast_to(t, (int(n), t.shape[1]))
                for t, n in zip(thresholds, sizes, strict=True)
            ]
            merged_thr = model.make_new_valueinfo_name()
            model.set_initializer(merged_thr, np.concatenate(rows).astype(np.float32))
            merged_out = model.make_new_valueinfo_name()
            count_dtype = DataType.get_smallest_possible(thresholds[0].shape[1])
            merged = helper.make_node(
                "MultiThreshold",
                [split.input[0], merged_thr],
                [merged_out],
                domain=mts[0].domain,
                out_dtype=count_dtype.name,
                out_scale=float(insts[0].get_nodeattr("out_scale")),
                data_layout={2: "NC", 3: "NWC", 4: "NHWC"}[len(shape)],
                name=f"{mts[0].name}_merged",
            )
            graph.node.insert(list(graph.node).index(split), merged)
            split.input[0] = merged_out
            for k, (mt, inst) in enumerate(zip(mts, insts, strict=True)):
                bias = model.make_new_valueinfo_name()
                model.set_initializer(
                    bias, np.asarray(inst.get_nodeattr("out_bias"), dtype=np.float32)
                )
                graph.node.insert(
                    list(graph.node).index(mt),
                    helper.make_node(
                        "Add", [split.output[k], bias], [mt.output[0]], name=f"{mt.name}_bias"
                    ),
                )
                graph.node.remove(mt)
            model = model.transform(InferShapes())
            return model.transform(InferDataTypes()), True
        return model, False
