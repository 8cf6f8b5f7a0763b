"""An order-preserving FINN Shuffle becomes a Reshape layer; other shuffles stay."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.basic import qonnx_make_model


def _transpose_model(shape, perm) -> ModelWrapper:
    out_shape = [shape[p] for p in perm]
    node = helper.make_node("Transpose", ["x"], ["y"], perm=perm)
    graph = helper.make_graph(
        [node],
        "t",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
    )
    model = ModelWrapper(qonnx_make_model(graph)).transform(InferShapes())
    model.set_tensor_datatype("x", DataType["INT4"])
    model.set_tensor_datatype("y", DataType["INT4"])
    return model


@pytest.fixture(scope="module")
def finn(tmp_path_factory):
    from qmlp_brevitas.finn.settings import setup_finn

    setup_finn(tmp_path_factory.mktemp("finn"))


@pytest.mark.parametrize(
    "shape, perm, becomes_reshape",
    [([1, 1, 6, 6], [0, 2, 3, 1], True), ([1, 3, 4, 4], [0, 2, 3, 1], False)],
)
def test_order_preserving_shuffle_becomes_reshape(finn, shape, perm, becomes_reshape):
    from finn.transformation.fpgadataflow.convert_to_hw.shuffle import InferShuffle

    from qmlp_brevitas.finn.generic import register_hw_ops
    from qmlp_brevitas.finn.transforms import OrderPreservingShuffleToReshape

    register_hw_ops()
    model = _transpose_model(shape, perm).transform(InferShuffle(lambda model, node: True))
    assert [n.op_type for n in model.graph.node] == ["Shuffle"]
    x = np.random.default_rng(0).integers(-8, 8, size=shape).astype(np.float32)
    expected = execute_onnx(model, {"x": x})["y"]
    new = model.transform(OrderPreservingShuffleToReshape())
    ops = [n.op_type for n in new.graph.node]
    assert ops == (["Reshape"] if becomes_reshape else ["Shuffle"])
    np.testing.assert_array_equal(execute_onnx(new, {"x": x})["y"], expected)
    np.testing.assert_array_equal(expected, x.transpose(perm))
