"""RTL layers simulated with Verilator + cocotb, bit-exact against FINN's execution.

A quantized linear layer as FINN maps it (MVAU_rtl followed by Thresholding_rtl, built and
specialised the way FINN's own layer tests do), streamed at full rate and with random bubbles
and back-pressure. Each configuration is compiled once per test session (shared cache).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from qmlp_brevitas.rtlsim import graphs
from qmlp_brevitas.rtlsim.layer import BACKPRESSURE, FULL_RATE, prepare_layer, run_layer
from qmlp_brevitas.rtlsim.reference import execution_context

pytestmark = pytest.mark.rtl

LAYERS = ["MVAU_rtl_0", "Thresholding_rtl_0"]


@pytest.fixture(scope="session")
def rtl_cache(tmp_path_factory):
    """Compiled simulators shared by all tests of the session."""
    path = tmp_path_factory.getbasetemp() / "rtlsim_cache"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="module")
def linear_layer():
    """The specialised MVAU -> Thresholding model, its input and FINN's execution context."""
    hw = graphs.make_mvau_thresholding_model()
    inputs = graphs.random_input(hw, seed=3)
    context = execution_context(hw, inputs)
    model = graphs.specialize(hw)
    assert [n.op_type for n in model.graph.node] == ["MVAU_rtl", "Thresholding_rtl"]
    return model, inputs, context


def _io(model, name, context):
    node = model.get_node_from_name(name)
    inputs = {t: context[t] for t in node.input if model.get_initializer(t) is None}
    return inputs, {t: context[t] for t in node.output}


@pytest.mark.parametrize("name", LAYERS)
def test_layer_matches_finn_with_and_without_backpressure(linear_layer, rtl_cache, tmp_path, name):
    model, _, context = linear_layer
    prepared = prepare_layer(model, name, tmp_path)
    inputs, reference = _io(model, name, context)
    res = run_layer(prepared, inputs, reference, rtl_cache, (FULL_RATE, BACKPRESSURE), frames=2)
    assert res.status == "pass", res.reason or res.modes
    assert res.mismatches == 0
    full, bp = res.modes
    words_per_frame = int(np.prod(prepared.inst.get_folded_output_shape()[:-1]))
    assert full.words_checked == bp.words_checked == 2 * words_per_frame
    assert not full.timed_out and not bp.timed_out
    # full rate runs at FINN's estimate; bubbles and back-pressure really slowed the stream
    assert res.exp_cycles > 0
    assert abs(full.cycles_per_frame - res.exp_cycles) <= 0.1 * res.exp_cycles
    assert bp.cycles > full.cycles
    # the result is written from the simulator's own output words
    result = json.loads((tmp_path / name / "run_full_rate" / "result.json").read_text())
    assert len(result["outputs"][0]["words"]) == full.words_checked


def test_second_run_reuses_compiled_simulator(linear_layer, rtl_cache, tmp_path):
    model, _, context = linear_layer
    name = "Thresholding_rtl_0"
    inputs, reference = _io(model, name, context)
    prepared = prepare_layer(model, name, tmp_path)
    res = run_layer(prepared, inputs, reference, rtl_cache, (FULL_RATE,), frames=1)
    assert res.status == "pass"
    assert res.build_cached and res.build_s == 0.0


def test_corrupted_threshold_file_fails(linear_layer, rtl_cache, tmp_path):
    model, _, context = linear_layer
    name = "Thresholding_rtl_0"
    prepared = prepare_layer(model, name, tmp_path)
    dat_files = sorted(prepared.hdl_dir.glob("*threshs*.dat"))
    assert dat_files, "FINN wrote no threshold files"
    for dat in dat_files:  # every threshold becomes the same value
        lines = dat.read_text().split()
        dat.write_text("\n".join([lines[len(lines) // 2]] * len(lines)) + "\n")
    inputs, reference = _io(model, name, context)
    res = run_layer(prepared, inputs, reference, rtl_cache, (FULL_RATE,), frames=1)
    assert res.status == "fail", res.reason
    assert res.mismatches > 0


def test_corrupted_weight_file_fails(linear_layer, rtl_cache, tmp_path):
    model, _, context = linear_layer
    name = "MVAU_rtl_0"
    prepared = prepare_layer(model, name, tmp_path)
    weight_file = prepared.hdl_dir / "input_1.npy"  # FINN's streamed weights
    weights = np.load(weight_file)
    np.save(weight_file, weights.reshape(-1)[::-1].reshape(weights.shape))  # same values, moved
    inputs, reference = _io(model, name, context)
    res = run_layer(prepared, inputs, reference, rtl_cache, (FULL_RATE,), frames=1)
    assert res.status == "fail", res.reason
    assert res.mismatches > 0


def test_corrupted_input_fails(linear_layer, rtl_cache, tmp_path):
    model, _, context = linear_layer
    name = "MVAU_rtl_0"
    prepared = prepare_layer(model, name, tmp_path)
    inputs, reference = _io(model, name, context)
    (key,) = inputs
    bad = inputs[key].copy()
    bad.flat[5] = 1.0 if bad.flat[5] != 1.0 else -1.0
    res = run_layer(prepared, {key: bad}, reference, rtl_cache, (FULL_RATE,), frames=1)
    assert res.status == "fail"
    assert 0 < res.mismatches < res.words_checked  # only the words of that vector differ
