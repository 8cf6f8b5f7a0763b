"""The float output scale and bias go back to ONNX nodes for the host, after FINN's HW
conversion, on hand-built graphs executed before and after (the other graph change that avoids
an HLS-only layer, the order-preserving shuffle as a reshape, is tested in
``test_shuffle_to_reshape.py``)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.util.basic import qonnx_make_model

from qmlp_brevitas.finn.generic import register_hw_ops
from qmlp_brevitas.finn.transforms import OutputDequantToHost, output_dequant_tail
from qmlp_brevitas.rtlsim.node import ensure_finn_settings

HW = "finn.custom_op.fpgadataflow"
RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _finn():
    ensure_finn_settings()
    register_hw_ops()


def _graph(nodes, inp, out, dtypes=None) -> ModelWrapper:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inp],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in out],
    )
    model = ModelWrapper(qonnx_make_model(graph))
    for name, dt in (dtypes or {}).items():
        model.set_tensor_datatype(name, DataType[dt])
    return model


def _run(model, inputs):
    from finn.core.onnx_exec import execute_onnx

    return execute_onnx(model, inputs)


def _eltwise(op, inp, const, out, shape, lhs_dt, out_dt="FLOAT32"):
    return helper.make_node(
        op,
        [inp, const],
        [out],
        name=f"{op}_{out}",
        domain=HW,
        backend="fpgadataflow",
        lhs_dtype=lhs_dt,
        rhs_dtype="FLOAT32",
        out_dtype=out_dt,
        lhs_shape=shape,
        rhs_shape=[shape[-1]],
        out_shape=shape,
        lhs_style="input",
        rhs_style="const",
    )


def _head(extra_consumer: bool = False) -> ModelWrapper:
    """Integer logits -> ElementwiseMul(scale) -> ElementwiseAdd(bias) -> output."""
    shape = [1, 10]
    nodes = [
        _eltwise("ElementwiseMul", "x", "scale", "scaled", shape, "INT12"),
        _eltwise("ElementwiseAdd", "scaled", "bias", "y", shape, "FLOAT32"),
    ]
    outputs = [("y", shape)]
    if extra_consumer:  # the scaled logits also leave the graph: not a pure tail
        nodes.append(helper.make_node("Relu", ["scaled"], ["z"]))
        outputs.append(("z", shape))
    model = _graph(nodes, [("x", shape)], outputs, {"x": "INT12"})
    model.graph.value_info.append(helper.make_tensor_value_info("scaled", TensorProto.FLOAT, shape))
    model.set_initializer("scale", RNG.uniform(0.01, 0.1, size=[10]).astype(np.float32))
    model.set_initializer("bias", RNG.normal(size=[10]).astype(np.float32))
    for name in ("scale", "bias"):
        model.set_tensor_datatype(name, DataType["FLOAT32"])
    for name in ("scaled", "y", "z"):
        model.set_tensor_datatype(name, DataType["FLOAT32"])
    return model


def test_output_scale_and_bias_go_to_the_host():
    before = _head()
    assert [n.op_type for n in output_dequant_tail(before)] == ["ElementwiseAdd", "ElementwiseMul"]
    after = ModelWrapper(before.model.__deepcopy__()).transform(OutputDequantToHost())
    assert [(n.op_type, n.domain) for n in after.graph.node] == [("Mul", ""), ("Add", "")]
    x = RNG.integers(-2048, 2048, size=[1, 10]).astype(np.float32)
    np.testing.assert_array_equal(_run(after, {"x": x})["y"], _run(before, {"x": x})["y"])


def test_scale_feeding_more_than_the_output_stays_on_the_accelerator():
    model = _head(extra_consumer=True)
    after = model.transform(OutputDequantToHost())
    assert [n.op_type for n in after.graph.node] == ["ElementwiseMul", "Add", "Relu"]
