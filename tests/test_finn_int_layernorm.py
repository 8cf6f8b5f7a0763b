"""The integer LayerNorm in FINN: its transformations on tiny onnx.helper graphs (execute_onnx
before == after), the HW layer (execution, cycles, resources, refusals), its specialisation and
folding, and FINN's analyses seeing it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes

from qmlp_brevitas.intnorm import IntLayerNormError, IntLayerNormSpec, int_layernorm

CHANNELS = 16


@pytest.fixture(scope="module", autouse=True)
def finn_ready(tmp_path_factory):
    from qmlp_brevitas.finn.settings import setup_finn

    setup_finn(tmp_path_factory.mktemp("finn_tmp"))


def qonnx_norm_model(scale: float, input_scale: float, idt: str = "INT5", bits: int = 5):
    """x -> Mul(scale) -> IntLayerNorm(input_scale) -> y, x typed ``idt``."""
    spec = IntLayerNormSpec(CHANNELS, bits, 8, 3)
    nodes = [
        helper.make_node("Mul", ["x", "s"], ["xs"], name="scale"),
        helper.make_node(
            "IntLayerNorm",
            ["xs"],
            ["y"],
            name="norm",
            domain="qmlp_brevitas.custom_op",
            input_scale=input_scale,
            input_bits=bits,
            frac_bits=8,
            eps_int=3,
            rsqrt_bits=spec.rsqrt_bits,
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6, CHANNELS])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6, CHANNELS])],
    )
    proto = helper.make_model(
        graph,
        opset_imports=[
            helper.make_opsetid("", 17),
            helper.make_opsetid("qmlp_brevitas.custom_op", 1),
        ],
    )
    model = ModelWrapper(proto)
    model.set_initializer("s", np.asarray(scale, dtype=np.float32))
    model = model.transform(InferShapes()).transform(InferDataTypes())
    model.set_tensor_datatype("x", DataType[idt])
    return model


def integers(seed: int = 0, low: int = -16, high: int = 16) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(low, high, (1, 6, CHANNELS)).astype(np.float32)


def run(model, x):
    return execute_onnx(model, {"x": x})["y"]


def test_scalar_mul_is_absorbed_into_the_input_scale():
    from qmlp_brevitas.finn.transforms import AbsorbScalarMulIntoIntLayerNorm

    model = qonnx_norm_model(0.37, 0.37)
    x = integers()
    expected = run(model, x)
    spec = IntLayerNormSpec(CHANNELS, 5, 8, 3)
    np.testing.assert_array_equal(
        expected, int_layernorm(torch.from_numpy(x.astype(np.int64)), spec).numpy()
    )
    after = model.transform(AbsorbScalarMulIntoIntLayerNorm())
    assert [n.op_type for n in after.graph.node] == ["IntLayerNorm"]
    assert getCustomOp(after.graph.node[0]).get_nodeattr("input_scale") == pytest.approx(1.0)
    np.testing.assert_array_equal(run(after, x), expected)
    negative = qonnx_norm_model(-0.5, 0.5).transform(AbsorbScalarMulIntoIntLayerNorm())
    assert [n.op_type for n in negative.graph.node] == ["Mul", "IntLayerNorm"]


def test_conversion_to_the_hw_layer_and_its_refusals():
    from qmlp_brevitas.finn.steps import check_all_hw
    from qmlp_brevitas.finn.transforms import AbsorbScalarMulIntoIntLayerNorm, InferIntLayerNorm

    model = qonnx_norm_model(0.25, 0.25).transform(AbsorbScalarMulIntoIntLayerNorm())
    model.set_tensor_datatype("x", DataType["INT5"])
    x = integers(1)
    hw = model.transform(InferIntLayerNorm())
    node = hw.graph.node[0]
    assert (node.op_type, node.domain) == ("IntLayerNorm", "qmlp_brevitas.finn.custom_op")
    inst = getCustomOp(node)
    assert inst.get_nodeattr("inputDataType") == "INT5"
    assert hw.get_tensor_datatype("y") == DataType["INT11"]  # sqrt(15) * 2**8 < 1024
    np.testing.assert_array_equal(run(hw, x), run(model, x))
    check_all_hw(hw)  # the project's domain counts as hardware

    wide = qonnx_norm_model(0.25, 0.25).transform(AbsorbScalarMulIntoIntLayerNorm())
    wide.set_tensor_datatype("x", DataType["INT8"])
    with pytest.raises(
        IntLayerNormError, match=r"norm: input type INT8 range .* limit \[-16, 15\]"
    ):
        wide.transform(InferIntLayerNorm())

    scaled = qonnx_norm_model(0.25, 0.5).transform(AbsorbScalarMulIntoIntLayerNorm())
    scaled = scaled.transform(InferIntLayerNorm())
    assert scaled.graph.node[0].domain == "qmlp_brevitas.custom_op"  # left unconverted
    with pytest.raises(ValueError, match=r"norm \(IntLayerNorm\).*input_scale is 2"):
        check_all_hw(scaled)


def hw_model(simd=1, channels=64, vectors=(1, 16), idt="INT5"):
    from qmlp_brevitas.rtlsim import graphs

    return graphs.make_int_layernorm_model(channels, simd, vectors, idt)


def test_hw_layer_cycles_resources_and_folding_refusal():
    inst = getCustomOp(hw_model().graph.node[0])
    timing = inst.timing()
    assert (timing.words_per_token, timing.rsqrt_bits, timing.iters_per_clock) == (64, 22, 1)
    assert (timing.rsqrt_clocks, timing.interval, timing.latency) == (23, 64, 30)
    assert inst.get_exp_cycles() == 16 * 64
    res = inst.resource_model()
    assert res["DSP"] == 3 and res["BRAM_18K"] == 0 and 200 < res["LUT"] < 1000 and res["FF"] > 0
    assert inst.node_res_estimation("xczu7ev-ffvc1156-2-e")["FF"] == res["FF"]
    # one word per token: the square root runs all 23 bits in one clock, 3 clocks per token
    fast = getCustomOp(hw_model(simd=64).graph.node[0])
    assert fast.timing().iters_per_clock == 23 and fast.get_exp_cycles() == 16 * 3
    assert fast.resource_model()["LUT"] > 10 * res["LUT"]

    bad = hw_model(simd=3)
    with pytest.raises(IntLayerNormError, match=r"IntLayerNorm_0: SIMD is 3, limit a divisor of"):
        getCustomOp(bad.graph.node[0]).get_exp_cycles()
    with pytest.raises(IntLayerNormError, match="SIMD is 3"):
        getCustomOp(bad.graph.node[0]).get_folded_input_shape()


def test_hw_layer_refuses_a_wider_input_type():
    model = hw_model()
    model.set_tensor_datatype("inp", DataType["INT6"])
    with pytest.raises(IntLayerNormError, match=r"IntLayerNorm_0: input type INT6 range"):
        model.transform(InferDataTypes())


def test_specialisation_folding_and_finn_view():
    from finn.analysis.fpgadataflow.exp_cycles_per_layer import exp_cycles_per_layer
    from finn.analysis.fpgadataflow.res_estimation import res_estimation

    from qmlp_brevitas.finn.project_ops import (
        RTL_DOMAIN,
        SetProjectFolding,
        SpecializeProjectLayers,
        to_finn_view,
        to_project_view,
    )

    model = hw_model()
    getCustomOp(model.graph.node[0]).set_nodeattr("preferred_impl_style", "hls")  # none: RTL
    model = model.transform(SpecializeProjectLayers())
    node = model.graph.node[0]
    assert (node.op_type, node.domain) == ("IntLayerNorm_rtl", RTL_DOMAIN)
    x = np.random.default_rng(2).integers(-16, 16, (1, 16, 64)).astype(np.float32)
    reference = execute_onnx(hw_model(), {"inp": x})["outp"]
    np.testing.assert_array_equal(execute_onnx(model, {"inp": x})["outp"], reference)

    model = model.transform(SetProjectFolding(300))  # 16 tokens * 64/SIMD <= 300: SIMD 4
    inst = getCustomOp(model.graph.node[0])
    assert inst.get_nodeattr("SIMD") == 4 and inst.get_exp_cycles() == 256

    # FINN's analyses select layers by domain: not the project's own ...
    assert exp_cycles_per_layer(model) == {}
    # ... but in FINN's view they are estimated like FINN's layers
    assert to_finn_view(model) == 1
    assert exp_cycles_per_layer(model) == {node.name: 256}
    assert res_estimation(model, "xczu7ev-ffvc1156-2-e")[node.name]["LUT"] > 0
    assert to_project_view(model) == 1 and model.graph.node[0].domain == RTL_DOMAIN


def test_costing_and_folding_search_cover_the_project_layer():
    from qmlp_brevitas.finn.folding_search import search_folding
    from qmlp_brevitas.finn.layer_costs import layer_cost, network_costs
    from qmlp_brevitas.finn.parts import parse_budget
    from qmlp_brevitas.finn.project_ops import SpecializeProjectLayers

    part = "xczu7ev-ffvc1156-2-e"
    model = hw_model().transform(SpecializeProjectLayers())
    inst = getCustomOp(model.graph.node[0])
    cost = layer_cost(inst, part)
    model_res = inst.resource_model()
    # the layer's own estimates, marked as the project's model; FF too (FINN has none)
    assert all(cost.sources[r] == "modelled" for r in ("LUT", "FF", "DSP", "BRAM_18K"))
    assert cost.resources["FF"] == model_res["FF"] and cost.resources["LUT"] == model_res["LUT"]
    assert cost.cycles == 16 * 64 and cost.sources["cycles"] == "modelled"
    net = network_costs(model, part, 5.0)
    assert [c.name for c in net["layers"]] == ["IntLayerNorm_0"]
    found = search_folding(model, part, 5.0, parse_budget(None, part))
    assert found.folding["IntLayerNorm_0"]["SIMD"] > 1 and found.max_cycles < 16 * 64
