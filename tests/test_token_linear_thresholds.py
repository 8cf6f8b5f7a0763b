"""ResMLP's grouped token mixing: per-token scale and bias absorbed into per-element thresholds,
exact on every input the integer accumulator can take (hand-built graph, execute_onnx before
and after)."""

from __future__ import annotations

import itertools

import numpy as np
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.basic import qonnx_make_model

from qmlp_brevitas.finn.transforms import AbsorbTokenLinearIntoElementThresholds
from qmlp_brevitas.finn.transforms.token_linear_thresholds import element_thresholds

TOKENS, GROUP, GROUPS = 3, 2, 2
CHANNELS = GROUP * GROUPS


def _graph(rng, sign: np.ndarray | None = None) -> ModelWrapper:
    """inp [1, T, C] UINT2 -> Split -> per group: Transpose, MatMul (INT3 weights), Mul by a
    per-token scale, Add a per-token bias, Transpose -> Concat -> Mul (per channel, e.g. the
    sign of a LayerScale) -> MultiThreshold with per-channel thresholds (INT4 output)."""
    nodes = [helper.make_node("Split", ["inp", "split"], ["g0", "g1"], axis=2, name="Split_0")]
    inits = {"split": np.array([GROUP, GROUP], dtype=np.int64)}
    concat_in = []
    for g in range(GROUPS):
        nodes += [
            helper.make_node("Transpose", [f"g{g}"], [f"t{g}"], perm=[0, 2, 1]),
            helper.make_node("MatMul", [f"t{g}", f"w{g}"], [f"acc{g}"]),
            helper.make_node("Mul", [f"acc{g}", f"s{g}"], [f"m{g}"]),
            helper.make_node("Add", [f"m{g}", f"b{g}"], [f"a{g}"]),
            helper.make_node("Transpose", [f"a{g}"], [f"back{g}"], perm=[0, 2, 1]),
        ]
        inits[f"w{g}"] = rng.integers(-4, 4, size=(TOKENS, TOKENS)).astype(np.float32)
        inits[f"s{g}"] = rng.uniform(0.05, 0.3, size=(1, TOKENS)).astype(np.float32)
        inits[f"b{g}"] = rng.normal(size=(TOKENS,)).astype(np.float32)
        concat_in.append(f"back{g}")
    nodes += [
        helper.make_node("Concat", concat_in, ["cat"], axis=-1, name="Concat_0"),
        helper.make_node("Mul", ["cat", "sign"], ["signed"], name="Mul_sign"),
        helper.make_node(
            "MultiThreshold",
            ["signed", "thr"],
            ["out"],
            domain="qonnx.custom_op.general",
            out_dtype="INT4",
            out_bias=-8.0,
            data_layout="NWC",
            name="MultiThreshold_0",
        ),
    ]
    inits["sign"] = (np.ones(CHANNELS) if sign is None else sign).astype(np.float32)
    inits["thr"] = np.sort(rng.normal(scale=1.5, size=(CHANNELS, 15)), axis=1).astype(np.float32)
    graph = helper.make_graph(
        nodes,
        "token_groups",
        [helper.make_tensor_value_info("inp", TensorProto.FLOAT, [1, TOKENS, CHANNELS])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, TOKENS, CHANNELS])],
    )
    model = ModelWrapper(qonnx_make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    for name, value in inits.items():
        model.set_initializer(name, value)
    model.set_tensor_datatype("inp", DataType["UINT2"])
    for g in range(GROUPS):
        model.set_tensor_datatype(f"w{g}", DataType["INT3"])
    model = model.transform(InferShapes()).transform(InferDataTypes())
    # qonnx leaves a Split's outputs FLOAT32: the transformation must look through the Split
    assert model.get_tensor_datatype("acc0") == DataType["FLOAT32"]
    return model


def _all_inputs() -> np.ndarray:
    """UINT2 inputs: extremes of every element (which reach the accumulators' ends) and random
    ones."""
    rng = np.random.default_rng(7)
    corners = np.array(list(itertools.product([0, 3], repeat=TOKENS * CHANNELS)))[::64]
    random = rng.integers(0, 4, size=(100, TOKENS * CHANNELS))
    return np.concatenate([corners, random]).reshape(-1, 1, TOKENS, CHANNELS).astype(np.float32)


def test_element_thresholds_reproduce_the_float_chain_exactly():
    rng = np.random.default_rng(0)
    ops = [("Mul", rng.uniform(0.01, 0.5, 6)), ("Add", rng.normal(size=6)), ("Mul", np.ones(6))]
    ops = [(op, c.astype(np.float32)) for op, c in ops]
    theta = np.sort(rng.normal(scale=3, size=(6, 7)), axis=1).astype(np.float32)
    lo, hi = np.full(6, -40), np.full(6, 40)
    thr = element_thresholds(ops, theta, lo, hi)
    xs = np.arange(-40, 41)
    for e in range(6):
        v = np.float32(xs) * ops[0][1][e]
        v = (v.astype(np.float32) + ops[1][1][e]).astype(np.float32) * ops[2][1][e]
        expected = (v[:, None] >= theta[e]).sum(axis=1)
        got = (xs[:, None] >= thr[e]).sum(axis=1)
        np.testing.assert_array_equal(got, expected)


def test_decreasing_chain_has_no_thresholds():
    ops = [("Mul", np.array([0.5, -0.5], dtype=np.float32))]
    theta = np.zeros((2, 3), dtype=np.float32)
    assert element_thresholds(ops, theta, np.array([-4, -4]), np.array([4, 4])) is None


def test_grouped_token_mixing_becomes_integer_and_exact():
    rng = np.random.default_rng(1)
    model = _graph(rng)
    after = model.transform(AbsorbTokenLinearIntoElementThresholds())
    ops = [n.op_type for n in after.graph.node]
    assert "Mul" not in ops and "Add" not in ops
    assert ops.count("MultiThreshold") == GROUPS and ops.count("Reshape") == 2 * GROUPS
    assert after.get_tensor_datatype("out") == DataType["INT4"]
    # the concat now joins integers
    concat = after.get_nodes_by_op_type("Concat")[0]
    assert all(after.get_tensor_datatype(i) == DataType["INT4"] for i in concat.input)
    for x in _all_inputs():
        before = execute_onnx(model, {"inp": x})["out"]
        np.testing.assert_array_equal(execute_onnx(after, {"inp": x})["out"], before)


def test_negative_channel_factor_leaves_the_graph_unchanged():
    rng = np.random.default_rng(2)
    model = _graph(rng, sign=np.array([1, -1, 1, 1]))
    after, changed = AbsorbTokenLinearIntoElementThresholds().apply(model)
    assert not changed
    assert [n.op_type for n in after.graph.node].count("Mul") == GROUPS + 1


def test_bias_arriving_after_the_rewrite_is_absorbed_too():
    """Streamlining may move a zero point's bias past the MatMul after the rewrite: it lands
    between the accumulator and the per-element thresholds, and is absorbed there."""
    rng = np.random.default_rng(3)
    n = GROUP * TOKENS
    nodes = [
        helper.make_node("MatMul", ["inp", "w"], ["acc"]),
        helper.make_node("Add", ["acc", "shift"], ["shifted"], name="Add_shift"),
        helper.make_node("Reshape", ["shifted", "flat_shape"], ["flat"]),
        helper.make_node(
            "MultiThreshold",
            ["flat", "thr"],
            ["out"],
            domain="qonnx.custom_op.general",
            out_dtype="INT4",
            out_bias=-8.0,
            data_layout="NWC",
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "late_bias",
        [helper.make_tensor_value_info("inp", TensorProto.FLOAT, [1, GROUP, TOKENS])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 1, n])],
    )
    model = ModelWrapper(qonnx_make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    model.set_initializer("w", rng.integers(-4, 4, size=(TOKENS, TOKENS)).astype(np.float32))
    model.set_initializer("shift", np.array([[3.0, -2.0, 5.0]], dtype=np.float32))
    model.set_initializer("flat_shape", np.array([1, 1, n], dtype=np.int64))
    thr = np.sort(rng.integers(-30, 30, size=(n, 15)), axis=1).astype(np.float32)
    model.set_initializer("thr", thr)
    model.set_tensor_datatype("inp", DataType["UINT2"])
    model.set_tensor_datatype("w", DataType["INT3"])
    model = model.transform(InferShapes()).transform(InferDataTypes())
    absorbed = model.transform(AbsorbTokenLinearIntoElementThresholds())
    assert "Add" not in [node.op_type for node in absorbed.graph.node]
    for values in itertools.product(range(4), repeat=TOKENS):
        x = np.tile(np.array(values, dtype=np.float32), (1, GROUP, 1))
        x[0, 1] = x[0, 1][::-1]
        np.testing.assert_array_equal(
            execute_onnx(absorbed, {"inp": x})["out"], execute_onnx(model, {"inp": x})["out"]
        )


def test_negative_layer_scale_is_named_in_the_build_error(tmp_path):
    from qmlp_brevitas.finn.settings import setup_finn

    setup_finn(tmp_path / "finn_tmp")
    from qmlp_brevitas.finn.steps import unmapped_nodes

    model = _graph(np.random.default_rng(2), sign=np.array([1, -1, 1, 1]))
    model = model.transform(AbsorbTokenLinearIntoElementThresholds())
    why = {u.node: u.reason for u in unmapped_nodes(model)}
    assert "float input" in why["Concat_0"]
    assert "Mul_sign multiplies 1 channels by a negative factor" in why["Concat_0"]
    assert "--layer-scale non_negative" in why["Concat_0"]
