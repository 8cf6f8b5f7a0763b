"""The host side of the accelerator's input: the input quantizer set aside and put back in front
of the hardware core; a FINN parent model's host parts executed alone."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.basic import qonnx_make_model

from qmlp_brevitas.finn.host_io import join_host_io, split_host_io

QONNX = "qonnx.custom_op.general"


def _graph(rng) -> ModelWrapper:
    """float -> MultiThreshold (input quantizer, INT4) -> Transpose -> MatMul -> Mul -> Add."""
    nodes = [
        helper.make_node(
            "MultiThreshold",
            ["x", "thr"],
            ["q"],
            domain=QONNX,
            out_dtype="INT4",
            out_bias=-8.0,
            name="MultiThreshold_0",
        ),
        helper.make_node("Transpose", ["q"], ["qt"], perm=[0, 2, 1], name="Transpose_0"),
        helper.make_node("MatMul", ["qt", "w"], ["acc"], name="MatMul_0"),
        helper.make_node("Mul", ["acc", "scale"], ["scaled"], name="Mul_0"),
        helper.make_node("Add", ["scaled", "bias"], ["y"], name="Add_0"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5, 4])],
    )
    model = ModelWrapper(qonnx_make_model(graph))
    model.set_initializer("thr", np.sort(rng.normal(size=(1, 15)), axis=1).astype(np.float32))
    model.set_initializer("w", rng.integers(-3, 4, size=(3, 4)).astype(np.float32))
    model.set_initializer("scale", rng.uniform(0.1, 1, size=(1, 4)).astype(np.float32))
    model.set_initializer("bias", rng.normal(size=(4,)).astype(np.float32))
    model = model.transform(InferShapes())
    model.set_tensor_datatype("q", DataType["INT4"])
    model.set_tensor_datatype("qt", DataType["INT4"])
    model.set_tensor_datatype("w", DataType["INT3"])
    model.set_tensor_datatype("acc", DataType["INT32"])
    return model


def test_split_leaves_an_integer_core_and_join_restores_the_model():
    rng = np.random.default_rng(0)
    model = _graph(rng)
    x = rng.normal(size=(1, 3, 5)).astype(np.float32)
    before = execute_onnx(model, {"x": x})["y"]

    core, host = split_host_io(ModelWrapper(model.model.SerializeToString()))
    assert [n.name for n in host.pre] == ["MultiThreshold_0", "Transpose_0"]
    assert [n.op_type for n in core.graph.node] == ["MatMul", "Mul", "Add"]
    assert core.graph.input[0].name == "qt" and core.graph.output[0].name == "y"
    assert core.get_tensor_datatype("qt") == DataType["INT4"]
    # the core's clean-up drops what it does not use; join must bring it back
    for init in [i for i in core.graph.initializer if i.name == "thr"]:
        core.graph.initializer.remove(init)
    for info in [v for v in core.graph.value_info if v.name == "q"]:
        core.graph.value_info.remove(info)

    joined = join_host_io(core, host)
    assert [n.name for n in joined.graph.node] == [n.name for n in model.graph.node]
    assert joined.graph.input[0].name == "x" and joined.graph.output[0].name == "y"
    np.testing.assert_array_equal(execute_onnx(joined, {"x": x})["y"], before)


def test_graph_without_input_quantizer_keeps_its_input():
    rng = np.random.default_rng(1)
    model = _graph(rng)
    # an integer graph input: no host input side
    model.graph.node.remove(model.graph.node[0])
    model.graph.node[0].input[0] = "x"
    model.set_tensor_datatype("x", DataType["INT4"])
    core, host = split_host_io(model)
    assert host.pre == [] and core.graph.input[0].name == "x"
    assert len(core.graph.node) == 4


def test_nothing_left_for_the_accelerator_is_an_error():
    rng = np.random.default_rng(2)
    model = _graph(rng)
    for name in ("MatMul_0", "Mul_0", "Add_0"):
        model.graph.node.remove(model.get_node_from_name(name))
    model.graph.output[0].name = "qt"
    with pytest.raises(ValueError, match="nothing is left"):
        split_host_io(model)


def _parent(rng) -> ModelWrapper:
    """A FINN parent: MultiThreshold -> Transpose -> StreamingDataflowPartition -> Mul."""
    nodes = [
        helper.make_node(
            "MultiThreshold",
            ["x", "thr"],
            ["q"],
            domain=QONNX,
            out_dtype="INT4",
            out_bias=-8.0,
            name="MultiThreshold_0",
        ),
        helper.make_node("Transpose", ["q"], ["qt"], perm=[0, 2, 1], name="Transpose_0"),
        helper.make_node(
            "StreamingDataflowPartition",
            ["qt"],
            ["acc"],
            domain="finn.custom_op.fpgadataflow",
            model="child.onnx",
            name="GenericPartition_0",
        ),
        helper.make_node("Mul", ["acc", "scale"], ["y"], name="Mul_0"),
    ]
    graph = helper.make_graph(
        nodes,
        "parent",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5, 3])],
        value_info=[
            helper.make_tensor_value_info("q", TensorProto.FLOAT, [1, 3, 5]),
            helper.make_tensor_value_info("qt", TensorProto.FLOAT, [1, 5, 3]),
            helper.make_tensor_value_info("acc", TensorProto.FLOAT, [1, 5, 3]),
        ],
    )
    model = ModelWrapper(qonnx_make_model(graph))
    model.set_initializer("thr", np.sort(rng.normal(size=(1, 15)), axis=1).astype(np.float32))
    model.set_initializer("scale", rng.uniform(0.1, 1, size=(1, 3)).astype(np.float32))
    return model


def test_partitioned_model_runs_the_host_parts():
    from qmlp_brevitas.finn.partition import PartitionedModel

    rng = np.random.default_rng(3)
    parent = PartitionedModel(_parent(rng))
    assert parent.host_nodes == [
        "MultiThreshold_0 (MultiThreshold)",
        "Transpose_0 (Transpose)",
        "Mul_0 (Mul)",
    ]
    assert parent.input_quantizer_output() == "q"
    x = rng.normal(size=(1, 3, 5)).astype(np.float32)
    feed = parent.accelerator_input(x)
    assert feed.shape == (1, 5, 3)
    assert np.array_equal(feed, np.round(feed)) and feed.min() >= -8 and feed.max() <= 7
    # the same integers, quantized elsewhere (Brevitas), take the same layout
    q = execute_onnx(parent.parent, {"x": x}, True, end_node=parent.pre[0])["q"]
    np.testing.assert_array_equal(parent.layout_quantized(q), feed)
    acc = rng.integers(-50, 50, size=(1, 5, 3)).astype(np.float32)
    np.testing.assert_allclose(
        parent.host_output(acc), acc * parent.parent.get_initializer("scale")
    )


def test_parent_with_two_partitions_is_refused():
    from qmlp_brevitas.finn.generic import PartitionError
    from qmlp_brevitas.finn.partition import PartitionedModel

    model = _parent(np.random.default_rng(4))
    sdp = model.get_node_from_name("GenericPartition_0")
    second = helper.make_node(
        "StreamingDataflowPartition", ["acc"], ["acc2"], domain=sdp.domain, name="P1"
    )
    model.graph.node.insert(3, second)
    model.get_node_from_name("Mul_0").input[0] = "acc2"
    with pytest.raises(PartitionError, match="2 dataflow partitions"):
        PartitionedModel(model)


def test_partition_with_a_reshape_layer_runs_in_a_fresh_process(tmp_path):
    """FINN registers its ``Reshape`` HW op only when the transformation that creates it is
    imported: a process that only executes a built model (the RTL check) must still run it."""
    import subprocess
    import sys

    from qmlp_brevitas.finn.settings import setup_finn

    setup_finn(tmp_path / "finn")
    from finn.transformation.fpgadataflow.convert_to_hw.shuffle import InferShuffle
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

    from qmlp_brevitas.finn.transforms import OrderPreservingShuffleToReshape

    node = helper.make_node("Transpose", ["qt"], ["acc"], perm=[0, 2, 3, 1])
    graph = helper.make_graph(
        [node],
        "child",
        [helper.make_tensor_value_info("qt", TensorProto.FLOAT, [1, 1, 5, 3])],
        [helper.make_tensor_value_info("acc", TensorProto.FLOAT, [1, 5, 3, 1])],
    )
    child = ModelWrapper(qonnx_make_model(graph))
    for name in ("qt", "acc"):
        child.set_tensor_datatype(name, DataType["INT4"])
    child = child.transform(InferShuffle(lambda model, node: True))
    child = child.transform(OrderPreservingShuffleToReshape())
    child = child.transform(SpecializeLayers("xczu7ev-ffvc1156-2-e"))
    assert [n.op_type for n in child.graph.node] == ["Reshape_rtl"]
    sdp = helper.make_node(
        "StreamingDataflowPartition",
        ["x"],
        ["y"],
        domain="finn.custom_op.fpgadataflow",
        model="unused.onnx",
    )
    parent_graph = helper.make_graph(
        [sdp],
        "parent",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 5, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5, 3, 1])],
    )
    ModelWrapper(qonnx_make_model(parent_graph)).save(str(tmp_path / "parent.onnx"))
    child.save(str(tmp_path / "child.onnx"))
    script = f"""
import numpy as np
from pathlib import Path
from qmlp_brevitas.finn.settings import setup_finn
setup_finn(Path({str(tmp_path / "finn2")!r}))
from qonnx.core.modelwrapper import ModelWrapper
from qmlp_brevitas.finn.generic import execute_in_parent
root = Path({str(tmp_path)!r})
x = np.arange(15, dtype=np.float32).reshape(1, 1, 5, 3) % 8
ctx = execute_in_parent(ModelWrapper(str(root / "parent.onnx")),
                        ModelWrapper(str(root / "child.onnx")), {{"x": x}}, root / "copy.onnx")
assert np.array_equal(ctx["y"], x.transpose(0, 2, 3, 1)), ctx["y"]
print("ran")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0 and "ran" in done.stdout, done.stderr[-2000:]
