"""The constant-time qonnx look-ups give qonnx's answers, and a build with them gives the same
graph as one without."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.general import (
    GiveReadableTensorNames,
    GiveUniqueNodeNames,
    GiveUniqueParameterTensors,
    SortCommutativeInputsInitializerLast,
    SortGraph,
)
from qonnx.util.basic import get_by_name, qonnx_make_model

from qmlp_brevitas.finn.fast_lookups import fast_graph_lookups, graph_differences


def _chain(n: int = 40) -> ModelWrapper:
    """x -> (Mul by w_i, Add b_i) * n, nodes deliberately out of order, one shared initializer."""
    nodes, inits = [], []
    prev = "x"
    for i in range(n):
        nodes.append(helper.make_node("Mul", [f"w{i}", prev], [f"m{i}"]))
        bias = "shared" if i % 7 == 0 else f"b{i}"
        nodes.append(helper.make_node("Add", [f"m{i}", bias], [f"a{i}"]))
        inits += [helper.make_tensor(f"w{i}", TensorProto.FLOAT, [1], [float(i + 1)])]
        if bias != "shared":
            inits.append(helper.make_tensor(bias, TensorProto.FLOAT, [1], [float(i)]))
        prev = f"a{i}"
    inits.append(helper.make_tensor("shared", TensorProto.FLOAT, [1], [0.5]))
    nodes = nodes[1::2] + nodes[::2]  # not topologically sorted
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [1, 4])],
        initializer=inits,
        value_info=[
            helper.make_tensor_value_info(t, TensorProto.FLOAT, [1, 4])
            for i in range(n)
            for t in (f"m{i}", f"a{i}")
            if t != prev
        ],
    )
    model = ModelWrapper(qonnx_make_model(graph))
    for i in range(0, n, 3):
        model.set_tensor_datatype(f"m{i}", DataType["INT8"])
    return model


def _answers(model: ModelWrapper) -> list:
    names = [f"{p}{i}" for p in "wbma" for i in range(45)] + ["x", "shared", "nope"]
    out = []
    for name in names:
        producer = model.find_producer(name)
        init = model.get_initializer(name)
        out.append(
            (
                name,
                None if producer is None else producer.name,
                None if init is None else init.tolist(),
                model.get_tensor_shape(name),
                model.get_tensor_datatype(name).name,
                get_by_name(model.graph.value_info, name) is not None,
            )
        )
    return out


def _mutate(model: ModelWrapper) -> None:
    model.rename_tensor("m3", "renamed_m3")
    model.set_initializer("w5", np.array([9.0], dtype=np.float32))
    model.set_tensor_datatype("a7", DataType["UINT4"])
    model.set_tensor_shape("a8", [2, 2])
    model.graph.value_info.remove(get_by_name(model.graph.value_info, "a9"))


def test_lookups_answer_like_qonnx():
    plain = _chain()
    expected_before = _answers(plain)
    _mutate(plain)
    expected_after = _answers(plain)
    fast = _chain()
    with fast_graph_lookups():
        assert _answers(fast) == expected_before
        _mutate(fast)
        assert _answers(fast) == expected_after
    assert ModelWrapper.find_producer.__module__.startswith("qonnx")  # restored


def test_tidy_up_transformations_give_qonnx_graph():
    def tidy(model):
        for t in (
            SortGraph(),
            GiveUniqueNodeNames(),
            GiveUniqueParameterTensors(),
            SortCommutativeInputsInitializerLast(),
            GiveReadableTensorNames(),
        ):
            model = model.transform(t)
        return model

    reference = tidy(_chain())
    with fast_graph_lookups():
        fast = tidy(_chain())
    assert [n.op_type for n in fast.graph.node][:2] == ["Mul", "Add"]
    assert graph_differences(fast, reference) == []
    # and the comparison sees a difference when there is one
    fast.graph.node[3].input[0] = "global_in"
    assert graph_differences(fast, reference)


@pytest.mark.slow
def test_build_gives_the_same_graph(tmp_path):
    import torch

    from qmlp_brevitas.export import export_model
    from qmlp_brevitas.finn.build import BuildRequest, run_build
    from qmlp_brevitas.models import create_qmlp
    from qmlp_brevitas.train import calibrate

    torch.manual_seed(0)
    model = create_qmlp("qmlp_mixer_28", w_bits=4, a_bits=4, depth=1)
    calibrate(model, [(torch.randn(8, 1, 28, 28), None) for _ in range(3)], 3)
    export_model(model.eval(), torch.randn(1, 1, 28, 28), tmp_path / "export")
    finals = {}
    for fast in (True, False):
        out = tmp_path / ("fast" if fast else "reference")
        request = BuildRequest(tmp_path / "export", out, target_fps=2000, fast_lookups=fast)
        finals[fast] = ModelWrapper(run_build(request)["final_model"])
    assert len(finals[True].graph.node) > 30
    assert graph_differences(finals[True], finals[False]) == []
