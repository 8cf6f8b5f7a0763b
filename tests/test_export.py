"""QONNX export: runs in qonnx, matches Brevitas, and carries the asked bit widths."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import BIT_PAIRS, calibrated
from qonnx.core.onnx_exec import execute_onnx

from qmlp_brevitas import export as export_module
from qmlp_brevitas.export import (
    VERIFY_ATOL,
    OnnxFileError,
    export_model,
    load_onnx,
    quant_node_bit_widths,
)
from qmlp_brevitas.models import list_variants

# The tolerance on the logits and why it is right: see VERIFY_ATOL in qmlp_brevitas/export.py.
ATOL = VERIFY_ATOL


def _run(model_wrapper, x):
    name_in = model_wrapper.graph.input[0].name
    name_out = model_wrapper.graph.output[0].name
    return execute_onnx(model_wrapper, {name_in: x})[name_out]


@pytest.mark.slow
@pytest.mark.parametrize("name", list_variants(small_only=True))
@pytest.mark.parametrize("bits", BIT_PAIRS, ids=lambda b: f"w{b[0]}a{b[1]}")
def test_export_matches_brevitas_and_carries_bit_widths(name, bits, tmp_path):
    w, a = bits
    # depth 2 keeps qonnx's cleanup (quadratic in graph size) fast; every block is alike.
    model = calibrated(name, w, a, depth=2)
    rng = np.random.default_rng(0)
    examples = rng.standard_normal((4, model.in_chans, model.img_size, model.img_size))
    paths = export_model(model, torch.from_numpy(examples.astype(np.float32)), tmp_path)
    # A candidate may be passed over when one quantizer input lies within float32 rounding of a
    # rounding boundary (see VERIFY_ATOL); a wrong export disagrees on every candidate.
    assert paths["verification"]["agrees"], paths["verification"]
    assert len(paths["verification"]["passed_over"]) <= 1
    wrapper = load_onnx(paths["onnx"])
    out = _run(wrapper, np.load(paths["input"]))
    expected = np.load(paths["expected_output"])
    assert out.shape == expected.shape == (1, 10)
    np.testing.assert_allclose(out, expected, atol=ATOL, rtol=0)

    widths = quant_node_bit_widths(wrapper)
    # weights at w, activations at a, and the input (image) Quant at input_bits
    assert set(widths.values()) == {w, a, model.recipe.input_bits}
    n_weights = sum(1 for n in wrapper.graph.node if n.op_type in ("MatMul", "Gemm", "Conv"))
    assert list(widths.values()).count(w) >= n_weights
    assert all(n.op_type != "Quant" or n.domain.startswith("qonnx") for n in wrapper.graph.node)


def test_zero_point_survives_export(tmp_path):
    model = calibrated("qmlp_mixer_28", 4, 4, depth=1)
    paths = export_model(model, torch.randn(1, 1, 28, 28), tmp_path)
    wrapper = load_onnx(paths["onnx"])
    zero_points = [
        wrapper.get_initializer(n.input[2]) for n in wrapper.graph.node if n.op_type == "Quant"
    ]
    assert any(np.any(zp != 0) for zp in zero_points)
    out = _run(wrapper, np.load(paths["input"]))
    np.testing.assert_allclose(out, np.load(paths["expected_output"]), atol=ATOL, rtol=0)


def test_missing_and_corrupt_onnx_are_refused(tmp_path):
    with pytest.raises(OnnxFileError, match="does not exist"):
        load_onnx(tmp_path / "nothing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07this is not a protobuf model" * 10)
    with pytest.raises(OnnxFileError, match="not a valid ONNX model"):
        load_onnx(bad)


def test_verification_example_is_one_qonnx_reproduces(tmp_path, monkeypatch):
    """A candidate whose QONNX result differs from Brevitas is passed over and recorded."""
    model = calibrated("qmlp_mixer_28", 4, 4, depth=1)
    examples = torch.randn(3, 1, 28, 28)
    real_run = export_module.run_qonnx
    calls = []

    def first_candidate_flips(wrapper, x):
        out = real_run(wrapper, x)
        calls.append(x)
        return out + 0.5 if len(calls) == 1 else out  # as if a level flipped on candidate 0

    monkeypatch.setattr(export_module, "run_qonnx", first_candidate_flips)
    paths = export_model(model, examples, tmp_path)
    record = paths["verification"]
    assert record["example_index"] == 1 and record["agrees"]
    assert record["passed_over"] == [{"index": 0, "max_abs_diff": pytest.approx(0.5, abs=1e-3)}]
    np.testing.assert_array_equal(np.load(paths["input"]), examples[1:2].numpy())
    expected = model(examples[1:2]).detach().numpy()
    np.testing.assert_allclose(np.load(paths["expected_output"]), expected, atol=1e-6)
