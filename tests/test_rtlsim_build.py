"""fpga/rtlsim.py over a FINN build folder: every RTL layer checked, rtlsim.json, coverage."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from qmlp_brevitas.rtlsim import graphs

ROOT = Path(__file__).resolve().parents[1]


def _cli():
    spec = importlib.util.spec_from_file_location("rtlsim_cli", ROOT / "fpga" / "rtlsim.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def rtl_cache(tmp_path_factory):
    """Compiled simulators shared by all RTL tests of the session."""
    path = tmp_path_factory.getbasetemp() / "rtlsim_cache"
    path.mkdir(exist_ok=True)
    return path


@pytest.mark.rtl
def test_build_folder_all_rtl_layers_match(tmp_path, rtl_cache, capsys):
    hw = graphs.make_mvau_thresholding_model()
    build = tmp_path / "build"
    (build / "intermediate_models").mkdir(parents=True)
    graphs.specialize(hw).save(str(build / "intermediate_models" / "step_apply_folding.onnx"))
    np.save(build / "input.npy", graphs.random_input(hw, seed=7)["inp"])
    rc = _cli().main(["--build", str(build), "--cache", str(rtl_cache)])
    out = capsys.readouterr().out
    assert rc == 0, out
    report = json.loads((build / "rtlsim.json").read_text())
    assert [layer["op_type"] for layer in report["layers"]] == ["MVAU_rtl", "Thresholding_rtl"]
    assert all(layer["status"] == "pass" for layer in report["layers"])
    assert report["mismatches"] == 0
    assert report["coverage"]["mac_share_checked"] == 1.0
    assert report["coverage"]["macs_total"] == 16 * 8 * 4
    assert "MVAU_rtl_0" in out and "coverage: 2 layers simulated" in out


def test_build_folder_without_model_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "intermediate_models").mkdir()
    rc = _cli().main(["--build", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2
    assert "no model with FINN RTL layers" in err and "fpga/build.py" in err


def test_missing_build_folder_is_a_clear_error(tmp_path, capsys):
    rc = _cli().main(["--build", str(tmp_path / "nope")])
    assert rc == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.rtl
def test_build_folder_with_fork_and_join_layers(tmp_path, rtl_cache, capsys):
    """A layer with two outputs (the project's DuplicateStreams_rtl) feeding a layer with two
    inputs (finn-plus's ElementwiseAdd_rtl): both checked from the build folder, each output
    and input stream at full rate and with back-pressure."""
    hw = graphs.make_fork_join_model()
    build = tmp_path / "build"
    (build / "intermediate_models").mkdir(parents=True)
    graphs.specialize_rtl(hw).save(str(build / "intermediate_models" / "step_apply_folding.onnx"))
    x = graphs.random_input(hw, seed=4)["inp"]
    np.save(build / "input.npy", x)
    rc = _cli().main(["--build", str(build), "--cache", str(rtl_cache)])
    out = capsys.readouterr().out
    assert rc == 0, out
    report = json.loads((build / "rtlsim.json").read_text())
    layers = {layer["op_type"]: layer for layer in report["layers"]}
    assert set(layers) == {"DuplicateStreams_rtl", "ElementwiseAdd_rtl"}
    for layer in layers.values():
        assert layer["status"] == "pass" and layer["mismatches"] == 0
        assert [m["mode"] for m in layer["modes"]] == ["full_rate", "backpressure"]
        assert layer["cycles_per_frame"] == layer["exp_cycles"] == 5 * 12 // 3
    # both outputs of the fork are checked: twice the words of the join's one output
    assert (
        layers["DuplicateStreams_rtl"]["words_checked"]
        == 2 * layers["ElementwiseAdd_rtl"]["words_checked"]
    )
    assert report["coverage"]["not_simulated"] == []
