"""Each Q-MLP FINN transformation on a tiny onnx.helper graph: execute_onnx before == after."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes

from qmlp_brevitas.finn.transforms import (
    AbsorbClipIntoQuant,
    AbsorbScalarMulIntoLayerNorm,
    ChannelsLastThresholds,
    CollapseOrderPreservingMovement,
    MoveChannelwiseLinearPastSplit,
    MoveGlobalThresholdsBeforeDataMovement,
    MoveLinearPastReduceMean,
    MoveThresholdsBeforeSplit,
    SlicesToSplit,
    ZeroPointQuantToThresholds,
)

RNG = np.random.default_rng(0)


def make_model(nodes, inp_shape, out_shape, inits: dict, opset: int = 17) -> ModelWrapper:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, inp_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
    )
    proto = helper.make_model(
        graph,
        opset_imports=[
            helper.make_opsetid("", opset),
            helper.make_opsetid("qonnx.custom_op.general", 1),
        ],
    )
    model = ModelWrapper(proto)
    for name, value in inits.items():
        model.set_initializer(name, np.asarray(value, dtype=np.float32))
    model = model.transform(InferShapes())
    return model.transform(InferDataTypes())


def run(model: ModelWrapper, x: np.ndarray) -> np.ndarray:
    return execute_onnx(model, {"x": x})["y"]


def assert_same(before: ModelWrapper, after: ModelWrapper, x: np.ndarray) -> None:
    np.testing.assert_allclose(run(after, x), run(before, x), atol=1e-6)


def op_types(model: ModelWrapper) -> list[str]:
    return [n.op_type for n in model.graph.node]


def quant(inp: str, out: str, name: str, signed: int = 0) -> helper.NodeProto:
    return helper.make_node(
        "Quant",
        [inp, f"{name}_s", f"{name}_z", f"{name}_b"],
        [out],
        domain="qonnx.custom_op.general",
        signed=signed,
        narrow=0,
        rounding_mode="ROUND",
        name=name,
    )


@pytest.mark.parametrize("zero_point", [8.0, 3.0])
def test_zero_point_quant_to_thresholds(zero_point):
    node = quant("x", "y", "q")
    inits = {"q_s": 0.37, "q_z": zero_point, "q_b": 4.0}
    before = make_model([node], [1, 6, 8], [1, 6, 8], inits)
    after = before.transform(ZeroPointQuantToThresholds())
    assert "Quant" not in op_types(after) and "MultiThreshold" in op_types(after)
    x = RNG.normal(0, 3, (1, 6, 8)).astype(np.float32)
    assert_same(before, after, x)


@pytest.mark.parametrize("scale,redundant", [(0.2, True), (0.5, False)])
def test_absorb_clip_into_quant(scale, redundant):
    clip = helper.make_node("Clip", ["x", "lo", "hi"], ["c"], name="clip")
    node = quant("c", "y", "q")
    inits = {"lo": 0.0, "hi": 6.0, "q_s": scale, "q_z": 0.0, "q_b": 4.0}
    before = make_model([clip, node], [1, 5, 8], [1, 5, 8], inits)
    after = before.transform(AbsorbClipIntoQuant())
    assert "Clip" not in op_types(after)
    assert ("Quant" in op_types(after)) == redundant
    x = RNG.normal(2, 5, (1, 5, 8)).astype(np.float32)
    assert_same(before, after, x)


def _slice(name, start, end, out):
    return helper.make_node("Slice", ["x", f"{name}_st", f"{name}_en", "ax"], [out], name=name)


def test_slices_to_split():
    nodes = [
        _slice("s0", 0, 4, "a"),
        _slice("s1", 4, 10, "b"),
        helper.make_node("Concat", ["b", "a"], ["y"], axis=-1),
    ]
    inits = {"s0_st": [0], "s0_en": [4], "s1_st": [4], "s1_en": [10], "ax": [2]}
    before = make_model(nodes, [1, 3, 10], [1, 3, 10], {})
    for k, v in inits.items():
        before.set_initializer(k, np.asarray(v, dtype=np.int64))
    before = before.transform(InferShapes())
    after = before.transform(SlicesToSplit())
    assert "Slice" not in op_types(after) and op_types(after).count("Split") == 1
    assert_same(before, after, RNG.normal(size=(1, 3, 10)).astype(np.float32))


def test_move_channelwise_linear_past_split():
    nodes = [
        helper.make_node("Mul", ["x", "g"], ["m"]),
        helper.make_node("Add", ["m", "b"], ["a"]),
        helper.make_node("Split", ["a", "sizes"], ["p", "q"], axis=2),
        helper.make_node("Sub", ["p", "q"], ["y"]),
    ]
    before = make_model(
        nodes, [1, 3, 8], [1, 3, 4], {"g": RNG.normal(size=8), "b": RNG.normal(size=8)}
    )
    before.set_initializer("sizes", np.array([4, 4], dtype=np.int64))
    before = before.transform(InferShapes())
    after = before.transform(MoveChannelwiseLinearPastSplit()).transform(
        MoveChannelwiseLinearPastSplit()
    )
    assert op_types(after)[0] == "Split"
    assert_same(before, after, RNG.normal(size=(1, 3, 8)).astype(np.float32))


def test_move_linear_past_reduce_mean():
    nodes = [
        helper.make_node("Mul", ["x", "s"], ["m"]),
        helper.make_node("Add", ["m", "b"], ["a"]),
        helper.make_node("ReduceMean", ["a"], ["y"], axes=[1], keepdims=0),
    ]
    before = make_model(nodes, [1, 5, 6], [1, 6], {"s": RNG.normal(size=6), "b": [0.3]})
    after = before.transform(MoveLinearPastReduceMean()).transform(MoveLinearPastReduceMean())
    assert op_types(after)[0] == "ReduceMean"
    assert_same(before, after, RNG.normal(size=(1, 5, 6)).astype(np.float32))


def test_threshold_bias_stays_until_streamlining_absorbs_it():
    """A signed-typed MultiThreshold counts from 0 until its bias Add is absorbed: that Add must
    not move behind the mean, or the integer stream keeps a wrong (signed) type."""
    thresholds = np.sort(RNG.normal(size=(1, 255)), axis=1)
    nodes = [
        _mt("x", "q", "thr", "mt", out_dtype="INT8"),
        helper.make_node("Add", ["q", "b"], ["a"], name="bias"),
        helper.make_node("Mul", ["a", "s"], ["m"], name="scale"),
        helper.make_node("ReduceMean", ["m"], ["y"], axes=[1], keepdims=0),
    ]
    inits = {"thr": thresholds, "b": [-128.0], "s": [0.05]}
    before = make_model(nodes, [1, 5, 6], [1, 6], inits)
    after = before.transform(MoveLinearPastReduceMean())
    assert op_types(after) == ["MultiThreshold", "Add", "ReduceMean", "Mul"]
    assert_same(before, after, RNG.normal(size=(1, 5, 6)).astype(np.float32))
    # With the bias absorbed (out_bias set) the type is true, and the Add in front of the mean
    # (now another constant) moves as before.
    absorbed = [_mt("x", "q", "thr", "mt", out_dtype="INT8", out_bias=-128.0), *nodes[1:]]
    moved = make_model(absorbed, [1, 5, 6], [1, 6], inits).transform(MoveLinearPastReduceMean())
    assert op_types(moved) == ["MultiThreshold", "ReduceMean", "Add", "Mul"]


def test_threshold_bias_stays_in_front_of_a_split():
    thresholds = np.sort(RNG.normal(size=(1, 255)), axis=1)
    nodes = [
        _mt("x", "q", "thr", "mt", out_dtype="INT8"),
        helper.make_node("Add", ["q", "b"], ["a"], name="bias"),
        helper.make_node("Split", ["a", "sizes"], ["y", "z"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4]),
            helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 3, 4]),
        ],
    )
    model = ModelWrapper(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    model.set_initializer("thr", thresholds.astype(np.float32))
    model.set_initializer("b", np.asarray([-128.0], dtype=np.float32))
    model.set_initializer("sizes", np.asarray([4, 4], dtype=np.int64))
    after = model.transform(InferShapes()).transform(MoveChannelwiseLinearPastSplit())
    assert op_types(after) == ["MultiThreshold", "Add", "Split"]


def _mt(inp, out, thr, name, **attrs):
    return helper.make_node(
        "MultiThreshold", [inp, thr], [out], domain="qonnx.custom_op.general", name=name, **attrs
    )


def test_move_global_thresholds_before_data_movement():
    nodes = [
        helper.make_node("Mul", ["x", "s1"], ["m1"]),
        helper.make_node("Mul", ["x", "s2"], ["m2"]),
        helper.make_node("Transpose", ["m1"], ["t1"], perm=[0, 2, 1]),
        helper.make_node("Transpose", ["m2"], ["t2"], perm=[0, 2, 1]),
        helper.make_node("Concat", ["t1", "t2"], ["c"], axis=-1),
        _mt("c", "y", "thr", "mt", out_dtype="UINT2"),
    ]
    inits = {"s1": RNG.uniform(0.5, 2, 4), "s2": RNG.uniform(0.5, 2, 4), "thr": [[-0.5, 0.0, 0.7]]}
    before = make_model(nodes, [1, 3, 4], [1, 4, 6], inits)
    after = before
    for _ in range(3):
        after = after.transform(MoveGlobalThresholdsBeforeDataMovement())
    kinds = op_types(after)
    assert kinds.index("MultiThreshold") < kinds.index("Transpose")
    assert_same(before, after, RNG.normal(size=(1, 3, 4)).astype(np.float32))


def test_move_thresholds_before_split():
    nodes = [
        helper.make_node("Split", ["x", "sizes"], ["p", "q"], axis=2),
        _mt("p", "tp", "thr_p", "mtp", out_dtype="INT2", out_bias=-2.0),
        _mt("q", "tq", "thr_q", "mtq", out_dtype="UINT2"),
        helper.make_node("Concat", ["tp", "tq"], ["y"], axis=2),
    ]
    inits = {"thr_p": [[-1.0, 0.0, 1.0]], "thr_q": RNG.normal(size=(3, 3)).cumsum(axis=1)}
    before = make_model(nodes, [1, 4, 5], [1, 4, 5], inits)
    before.set_initializer("sizes", np.array([2, 3], dtype=np.int64))
    before = before.transform(InferShapes())
    after = before.transform(MoveThresholdsBeforeSplit())
    assert op_types(after)[:2] == ["MultiThreshold", "Split"]
    assert_same(before, after, RNG.normal(size=(1, 4, 5)).astype(np.float32))


def test_absorb_scalar_mul_into_layernorm():
    nodes = [
        helper.make_node("Mul", ["x", "s"], ["m"]),
        helper.make_node("LayerNormalization", ["m", "g", "b"], ["y"], axis=-1, epsilon=1e-2),
    ]
    before = make_model(nodes, [1, 3, 8], [1, 3, 8], {"s": 0.1, "g": np.ones(8), "b": np.zeros(8)})
    after = before.transform(AbsorbScalarMulIntoLayerNorm())
    assert op_types(after) == ["LayerNormalization"]
    x = RNG.integers(-8, 8, (1, 3, 8)).astype(np.float32)
    np.testing.assert_allclose(run(after, x), run(before, x), atol=1e-5)


def test_collapse_order_preserving_movement():
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]),
        helper.make_node("Reshape", ["t", "shape"], ["r"]),
        helper.make_node("Transpose", ["r"], ["y"], perm=[0, 2, 1]),
    ]
    before = make_model(nodes, [1, 2, 2, 5], [1, 4, 5], {})
    before.set_initializer("shape", np.array([1, 5, 4], dtype=np.int64))
    before = before.transform(InferShapes())
    after = before.transform(CollapseOrderPreservingMovement())
    assert op_types(after) == ["Reshape"]
    assert_same(before, after, RNG.normal(size=(1, 2, 2, 5)).astype(np.float32))


def test_channels_last_thresholds():
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 1]),
        _mt("t", "y", "thr", "mt", out_dtype="UINT2", data_layout="NCW"),
    ]
    thr = np.sort(RNG.normal(size=(6, 3)), axis=1)
    model = make_model(nodes, [1, 6, 4], [1, 4, 6], {"thr": thr})
    after = model.transform(ChannelsLastThresholds())
    x = RNG.normal(size=(1, 6, 4)).astype(np.float32)
    t = x.transpose(0, 2, 1)
    expected = (t[..., None] >= thr[None, None]).sum(-1)
    np.testing.assert_array_equal(run(after, x), expected)
