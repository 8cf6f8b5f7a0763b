"""The tidy-on-change streamlining gives FINN's graph: same transformation list, same result."""

from __future__ import annotations

import inspect
import re

import numpy as np
import pytest
import torch

from qmlp_brevitas.export import export_model
from qmlp_brevitas.models import create_qmlp
from qmlp_brevitas.train import calibrate


@pytest.fixture(scope="module")
def finn_ready(tmp_path_factory):
    from qmlp_brevitas.finn.settings import setup_finn

    setup_finn(tmp_path_factory.mktemp("finn_tmp"))


def test_sequence_is_finns_streamline(finn_ready):
    from finn.transformation.streamline import Streamline

    from qmlp_brevitas.finn.transforms.tidy_on_change import STREAMLINE_SEQUENCE

    source = inspect.getsource(Streamline.apply)
    listed = re.search(r"streamline_transformations = \[(.*?)\]", source, re.S).group(1)
    finn_names = re.findall(r"(\w+)\(\)", listed)
    assert [t.__name__ for t in STREAMLINE_SEQUENCE] == finn_names


def _tidy_model(tmp_path):
    """A one-block W4A4 Q-MLP exported, prepared and converted to FINN's dialect."""
    from finn.builder.build_dataflow_steps import step_qonnx_to_finn, step_tidy_up
    from qonnx.core.modelwrapper import ModelWrapper

    from qmlp_brevitas.finn.build import BuildRequest, make_config, prepare_build
    from qmlp_brevitas.finn.steps import step_qmlp_prepare_qonnx

    torch.manual_seed(0)
    model = create_qmlp("qmlp_mixer_28", w_bits=4, a_bits=4, depth=1).eval()
    calibrate(model, [(torch.randn(8, 1, 28, 28), None) for _ in range(3)], 3)
    export_model(model, torch.randn(2, 1, 28, 28), tmp_path / "export")
    request = BuildRequest(tmp_path / "export", tmp_path / "out", target_fps=1000)
    prepare_build(request)  # the verification data the steps read
    cfg = make_config(request, [])
    cfg.get_report_directory().mkdir(parents=True, exist_ok=True)
    onnx = ModelWrapper(str(tmp_path / "export" / "model.onnx"))
    for step in (step_qmlp_prepare_qonnx, step_qonnx_to_finn, step_tidy_up):
        onnx = step(onnx, cfg)
    return onnx, cfg


def _run(model, x):
    from qonnx.core.onnx_exec import execute_onnx

    name = model.graph.input[0].name
    feed = {name: x.reshape(model.get_tensor_shape(name)).astype(np.float32)}
    return execute_onnx(model, feed)[model.graph.output[0].name]


@pytest.mark.slow
def test_streamline_step_gives_finns_graph(tmp_path, finn_ready):
    from finn.builder.build_dataflow_steps import step_streamline

    from qmlp_brevitas.finn.transforms import streamline_step

    model, cfg = _tidy_model(tmp_path)
    reference = step_streamline(model, cfg)
    ours = streamline_step(model)
    assert [n.op_type for n in ours.graph.node] == [n.op_type for n in reference.graph.node]
    assert "MultiThreshold" in {n.op_type for n in ours.graph.node}
    names = {i.name for i in reference.graph.initializer}
    assert {i.name for i in ours.graph.initializer} == names
    for name in names:
        np.testing.assert_array_equal(ours.get_initializer(name), reference.get_initializer(name))
    x = np.load(tmp_path / "export" / "input.npy")
    np.testing.assert_array_equal(_run(ours, x), _run(reference, x))
