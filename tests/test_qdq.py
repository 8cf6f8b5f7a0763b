"""Standard-ONNX QDQ export: QuantToQDQ on hand-built graphs (qonnx before, onnxruntime after),
and the exported Q-MLP model in onnxruntime against Brevitas."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from conftest import calibrated
from onnx import TensorProto, helper, numpy_helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.transformation.infer_shapes import InferShapes

from qmlp_brevitas.export import VERIFY_ATOL, export_model, load_onnx
from qmlp_brevitas.layout import RunFolder
from qmlp_brevitas.qdq import QDQExportError, qdq_types, run_onnxruntime, to_qdq

QONNX = "qonnx.custom_op.general"
INT4, UINT4, INT8, UINT8 = TensorProto.INT4, TensorProto.UINT4, TensorProto.INT8, TensorProto.UINT8


def _quant(x, out, scale, zero_point, bits, signed=1, narrow=0, name=None):
    inputs = [x, f"{out}_s", f"{out}_z", f"{out}_b"]
    node = helper.make_node(
        "Quant", inputs, [out], name=name or out, domain=QONNX, signed=signed, narrow=narrow,
        rounding_mode="ROUND",
    )  # fmt: skip
    inits = [
        numpy_helper.from_array(np.asarray(scale, np.float32), f"{out}_s"),
        numpy_helper.from_array(np.asarray(zero_point, np.float32), f"{out}_z"),
        numpy_helper.from_array(np.asarray(bits, np.float32), f"{out}_b"),
    ]
    return node, inits


def _mlp(act_bits: int, weight_bits: int, act_signed: int = 1, narrow: int = 0) -> ModelWrapper:
    """x -> Quant (per tensor) -> MatMul with a per-channel Quant weight -> + bias -> Clip
    (ReLU6) -> unsigned Quant with a zero point -> y."""
    rng = np.random.default_rng(0)
    weights = rng.standard_normal((8, 6)).astype(np.float32)
    nodes, inits = [], []
    for node, init in (
        _quant("x", "xq", 0.25, 0, act_bits, act_signed, narrow),
        _quant("w", "wq", np.linspace(0.1, 0.3, 6).reshape(1, 6), 0, weight_bits, 1, 1),
        _quant("r", "y", 6 / (2**act_bits - 1), 2, act_bits, 0, 0),
    ):
        nodes.append(node)
        inits += init
    nodes[2:2] = [
        helper.make_node("MatMul", ["xq", "wq"], ["mm"], name="mm"),
        helper.make_node("Add", ["mm", "bias"], ["biased"], name="add"),
        helper.make_node("Clip", ["biased", "zero", "six"], ["r"], name="relu6"),
    ]
    inits += [
        numpy_helper.from_array(weights, "w"),
        numpy_helper.from_array(rng.standard_normal(6).astype(np.float32) * 0.37, "bias"),
        numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        numpy_helper.from_array(np.array(6.0, np.float32), "six"),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 6])],
        inits,
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid(QONNX, 1)]
    return ModelWrapper(helper.make_model(graph, opset_imports=opsets)).transform(InferShapes())


@pytest.mark.parametrize(
    ("act_bits", "weight_bits", "act_signed", "narrow", "types"),
    [
        (4, 4, 1, 0, {"xq": INT4, "wq": INT4, "y": UINT4}),
        (8, 8, 1, 0, {"xq": INT8, "wq": INT8, "y": UINT8}),
        (4, 8, 0, 0, {"xq": UINT4, "wq": INT8, "y": UINT4}),
        (3, 2, 1, 1, {"xq": INT4, "wq": INT4, "y": UINT4}),  # 3 and 2 bits in 4-bit types
        (6, 5, 1, 0, {"xq": INT8, "wq": INT8, "y": UINT8}),
    ],
)
def test_quant_nodes_become_qdq_with_the_bit_widths_types(
    act_bits, weight_bits, act_signed, narrow, types
):
    model = _mlp(act_bits, weight_bits, act_signed, narrow)
    qdq = to_qdq(model)
    assert qdq.opset_import[0].version == 21
    assert not [n for n in qdq.graph.node if n.domain or n.op_type == "Quant"]
    # No Clip right in front of a QuantizeLinear (onnxruntime's fusion fails there on 4 bits).
    producers = {o: n.op_type for n in qdq.graph.node for o in n.output}
    quantize_inputs = [n.input[0] for n in qdq.graph.node if n.op_type == "QuantizeLinear"]
    assert "Clip" not in {producers.get(i) for i in quantize_inputs}
    found = qdq_types(qdq)
    for quant, elem_type in types.items():
        mine = {t for name, t in found.items() if name.startswith(f"{quant}_qdq")}
        assert mine == {elem_type}, (quant, mine)
    # The weights are stored as integers of that type, with only a DequantizeLinear.
    inits = {i.name: i for i in qdq.graph.initializer}
    assert inits["wq_qdq_int"].data_type == types["wq"]
    assert [n.op_type for n in qdq.graph.node if n.name.startswith("wq_")] == ["DequantizeLinear"]
    # Values past the quantizers' ends and on rounding ties (x / 0.25 = k + 0.5).
    x = np.concatenate([np.arange(-8, 8, 0.5), np.arange(-4.125, 3.875, 0.25)])
    x = x.reshape(-1, 8)[:4].astype(np.float32) * (1.0 if act_bits < 8 else 8.0)
    expected = execute_onnx(model, {"x": x})["y"]
    np.testing.assert_array_equal(run_onnxruntime(qdq, x), expected)


def test_zero_point_quantizer_rounds_like_brevitas_at_a_float32_tie():
    """x / s = -2.5000002, but x / s + 8 rounds to 5.5 in float32: Brevitas and QONNX round
    that to 6; QuantizeLinear(x, s, 8) would round -2.5000002 to -3 and give 5 (an input of the
    default W4A4 model, where this changed a prediction)."""
    node, inits = _quant("x", "y", np.float32(0.44824666), 8, 4, signed=0)
    graph = helper.make_graph(
        [node],
        "zero_point",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        inits,
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid(QONNX, 1)]
    model = ModelWrapper(helper.make_model(graph, opset_imports=opsets))
    x = np.array([[-1.1206168, 0.3]], dtype=np.float32)
    expected = execute_onnx(model, {"x": x})["y"]
    assert expected[0, 0] == np.float32(0.44824666) * -2  # level 6, zero point 8
    np.testing.assert_array_equal(run_onnxruntime(to_qdq(model), x), expected)


def test_narrow_range_is_kept_with_a_clamp():
    model = _mlp(4, 4, 1, narrow=1)  # signed narrow: -7..7, the INT4 type holds -8..7
    qdq = to_qdq(model)
    clamps = [n.op_type for n in qdq.graph.node if n.name.startswith("xq_qdq_")]
    assert clamps[:2] == ["Max", "Min"]
    x = np.full((4, 8), -10.0, np.float32)
    np.testing.assert_array_equal(run_onnxruntime(qdq, x), execute_onnx(model, {"x": x})["y"])


def test_what_qdq_cannot_express_is_refused_by_name():
    model = _mlp(4, 4)
    bits = model.get_initializer("xq_b")
    model.set_initializer("xq_b", np.asarray(9.0, np.float32) + 0 * bits)
    with pytest.raises(
        QDQExportError, match="xq: bit width 9.0; QDQ export supports one of 2 to 8"
    ):
        to_qdq(model)
    model = _mlp(4, 4)
    model.set_initializer("y_z", np.asarray(1.5, np.float32))
    with pytest.raises(QDQExportError, match=r"y: zero point 1.5 is not an integer"):
        to_qdq(model)


@pytest.mark.parametrize("name", ["qmlp_mixer_28", "qmlp_resmlp_28"])
def test_qmlp_qdq_export_predicts_like_brevitas_in_onnxruntime(name, tmp_path):
    """On the export test's images: onnxruntime (default optimizations) runs the QDQ export of
    a W4A4 Q-MLP model with the same predictions as Brevitas, in 4-bit Q/DQ types (with the
    paper's float LayerNorm: the integer one is the project's own op)."""
    model = calibrated(name, 4, 4, depth=2, norm="layernorm")
    rng = np.random.default_rng(0)
    examples = torch.from_numpy(rng.standard_normal((16, 1, 28, 28)).astype(np.float32))
    paths = export_model(model, examples[:4], tmp_path, qdq=True)
    qdq = onnx.load(paths["qdq"]["onnx"])
    types = set(qdq_types(qdq).values())
    assert types == {INT4, UINT4, INT8}  # 4-bit weights and activations, the 8-bit input
    assert sum(t == INT8 for t in qdq_types(qdq).values()) == 2  # input quantizer: Q and DQ
    assert {n.domain for n in qdq.graph.node} == {""}
    expected = model(examples).detach().numpy()
    outputs = np.concatenate([run_onnxruntime(qdq, x[None]) for x in examples.numpy()])
    np.testing.assert_array_equal(outputs.argmax(1), expected.argmax(1))
    np.testing.assert_allclose(outputs, expected, atol=VERIFY_ATOL, rtol=0)
    record = paths["qdq"]
    assert record["onnx"] == str(RunFolder(tmp_path).qdq_model)
    assert (record["images"], record["same_prediction"], record["within_atol"]) == (4, 4, 4)
    assert paths["qdq"]["max_abs_diff"] <= VERIFY_ATOL


def test_qonnx_export_itself_does_not_run_in_onnxruntime(tmp_path):
    """Why the QDQ export exists: the QONNX graph's Quant nodes are not ONNX operators."""
    model = calibrated("qmlp_mixer_28", 4, 4, depth=1)
    paths = export_model(model, torch.randn(1, 1, 28, 28), tmp_path)
    with pytest.raises(Exception, match="Quant"):
        run_onnxruntime(load_onnx(paths["onnx"]).model, np.load(paths["input"]))


def test_integer_layernorm_has_no_qdq_form(tmp_path):
    """The preset's integer LayerNorm is a custom op: refused by name, not left to onnxruntime."""
    model = calibrated("qmlp_mixer_28", 4, 4, depth=1, norm="intlayernorm")
    paths = export_model(model, torch.randn(2, 1, 28, 28), tmp_path)
    with pytest.raises(QDQExportError, match=r"IntLayerNorm.*--norm layernorm"):
        to_qdq(ModelWrapper(paths["onnx"]))
