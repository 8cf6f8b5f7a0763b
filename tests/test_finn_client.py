"""A client's Brevitas export, built as it is: Brevitas' own example model (``tfc_2w2a`` of
``brevitas_examples.bnn_pynq``, untrained: its pretrained weights need a download) exported by
Brevitas' ``export_qonnx`` (its defaults: torch's dynamo exporter) under a name of its own, with
no verification data beside it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from qmlp_brevitas.cli.build import main as build_main
from qmlp_brevitas.cli.common import run_main
from qmlp_brevitas.export import load_onnx, run_qonnx
from qmlp_brevitas.finn.build import BuildRequest, load_verification
from qmlp_brevitas.finn.verification import VerificationInputError
from qmlp_brevitas.layout import BuildFolder

STAGES = {"qonnx", "qonnx_prepared", "streamlined", "hw_layers", "folded"}


@pytest.fixture(scope="module")
def client_onnx(tmp_path_factory):
    """tfc_2w2a (MNIST MLP, 2-bit weights and activations) as a client exports it."""
    from brevitas.export import export_qonnx
    from brevitas_examples.bnn_pynq.models import model_with_cfg

    torch.manual_seed(0)
    model, _ = model_with_cfg("tfc_2w2a", pretrained=False)
    path = tmp_path_factory.mktemp("client") / "client_tfc.onnx"
    export_qonnx(model.eval(), torch.randn(1, 1, 28, 28), export_path=str(path))
    # Only the export itself (and the weights torch's exporter puts in a .data file beside it).
    assert {p.name for p in path.parent.iterdir()} <= {"client_tfc.onnx", "client_tfc.onnx.data"}
    return path


def test_input_is_generated_on_the_input_quantizers_levels(client_onnx, tmp_path):
    request = BuildRequest(client_onnx, tmp_path / "out", target_fps=1000)
    data = load_verification(request)
    assert data.source == "generated" and "seed 0" in data.note
    # tfc computes 2x - 1 in front of a 2-bit narrow quantizer (levels -1, 0, 1): the
    # inputs that land on those levels are 0, 0.5 and 1.
    assert data.input.shape == (1, 1, 28, 28)
    assert set(np.unique(data.input)) == {0.0, 0.5, 1.0}
    assert "3 levels" in data.note
    expected = run_qonnx(load_onnx(client_onnx), data.input)
    np.testing.assert_array_equal(data.expected_output, expected)
    again = load_verification(request)
    np.testing.assert_array_equal(again.input, data.input)  # seeded
    other = load_verification(BuildRequest(client_onnx, tmp_path / "o", target_fps=1000, seed=1))
    assert not np.array_equal(other.input, data.input)
    assert not (tmp_path / "out").exists()  # nothing made yet


def test_given_input_is_used_with_the_qonnx_output(client_onnx, tmp_path):
    x = np.random.default_rng(3).random((1, 784)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    request = BuildRequest(
        client_onnx, tmp_path / "out", target_fps=1000, verify_input=tmp_path / "x.npy"
    )
    data = load_verification(request)
    assert data.source == "given"
    np.testing.assert_array_equal(data.input, x.reshape(1, 1, 28, 28))
    np.testing.assert_array_equal(
        data.expected_output, run_qonnx(load_onnx(client_onnx), x.reshape(1, 1, 28, 28))
    )
    np.save(tmp_path / "wrong.npy", np.zeros((1, 10), np.float32))
    wrong = BuildRequest(
        client_onnx, tmp_path / "o", target_fps=1000, verify_input=tmp_path / "wrong.npy"
    )
    with pytest.raises(
        VerificationInputError, match=r"has shape \(1, 10\).*takes \(1, 1, 28, 28\)"
    ):
        load_verification(wrong)


def test_model_without_input_quantizer_asks_for_an_input(tmp_path):
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    helper_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "float_only.onnx"
    path.write_bytes(helper_model.SerializeToString())
    with pytest.raises(VerificationInputError, match="pass --input X.npy"):
        load_verification(BuildRequest(path, tmp_path / "out", target_fps=1000))


@pytest.mark.slow
def test_client_export_builds_as_it_is_then_again_from_finns_folding(client_onnx, capsys):
    # No --out: the build goes beside the file, named after it.
    assert run_main(build_main, ["--onnx", str(client_onnx), "--target-fps", "1000"]) == 0
    out = capsys.readouterr().out
    assert "verification data (generated)" in out and "verified on     generated" in out
    folder = BuildFolder(client_onnx.parent / "fpga-client_tfc")
    summary = json.loads(folder.summary.read_text())
    assert summary["status"] == "ok" and summary["verification_source"] == "generated"
    assert summary["model"] == str(client_onnx.absolute())
    assert set(summary["verification"]) == STAGES
    assert all(s["ok"] for s in summary["verification"].values()), summary["verification"]
    assert summary["estimated_fps"] >= 1000 and len(summary["layers"]) >= 4
    np.testing.assert_array_equal(
        np.load(folder.verify_expected_output),
        run_qonnx(load_onnx(client_onnx), np.load(folder.verify_input)),
    )
    # FINN's own folding of that build, given back with --folding (a Path field in FINN's config).
    again = BuildFolder(client_onnx.parent / "refolded")
    argv = ["--onnx", str(client_onnx), "--folding", str(folder.auto_folding_config)]
    assert run_main(build_main, [*argv, "--out", str(again.root)]) == 0
    refolded = json.loads(again.summary.read_text())
    assert refolded["folding_config"] == str(folder.auto_folding_config)
    assert again.folding_config.read_text() == folder.auto_folding_config.read_text()
    assert refolded["target_fps"] is None
    assert all(s["ok"] for s in refolded["verification"].values())
    assert [r["cycles"] for r in refolded["layers"]] == [r["cycles"] for r in summary["layers"]]
    # And into the first build's own folder, from the folding it wrote there (read before the
    # rebuild clears that build's reports).
    folding = folder.auto_folding_config.read_text()
    argv = ["--onnx", str(client_onnx), "--folding", str(folder.auto_folding_config)]
    assert run_main(build_main, [*argv, "--out", str(folder.root)]) == 0
    assert json.loads(folder.summary.read_text())["status"] == "ok"
    assert folder.folding_config.read_text() == folding
