"""fpga/rtlsim.py over a FINN build folder: every RTL layer checked, rtlsim.json, coverage."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qmlp_brevitas.cli.common import run_main
from qmlp_brevitas.cli.rtlsim import main as rtlsim_main
from qmlp_brevitas.layout import BuildFolder
from qmlp_brevitas.rtlsim import graphs


@pytest.fixture(scope="session")
def rtl_cache(tmp_path_factory):
    """Compiled simulators shared by all RTL tests of the session."""
    path = tmp_path_factory.getbasetemp() / "rtlsim_cache"
    path.mkdir(exist_ok=True)
    return path


@pytest.mark.rtl
def test_build_folder_all_rtl_layers_match(tmp_path, rtl_cache, capsys):
    hw = graphs.make_mvau_thresholding_model()
    folder = BuildFolder(tmp_path / "build")
    folder.intermediate_models.mkdir(parents=True)
    folder.verify_input.parent.mkdir()
    graphs.specialize(hw).save(str(folder.final_model))
    np.save(folder.verify_input, graphs.random_input(hw, seed=7)["inp"])
    build = folder.root
    rc = run_main(rtlsim_main, ["--build", str(build), "--cache", str(rtl_cache)])
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
    rc = run_main(rtlsim_main, ["--build", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2
    assert "no finished FINN build" in err and "fpga/build.py" in err


def test_missing_build_folder_is_a_clear_error(tmp_path, capsys):
    rc = run_main(rtlsim_main, ["--build", str(tmp_path / "nope")])
    assert rc == 2
    assert "does not exist" in capsys.readouterr().err


def test_model_that_is_not_onnx_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("this is not a model\n")
    rc = run_main(rtlsim_main, ["--build", str(tmp_path), "--model", str(tmp_path / "notes.txt")])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and err.count("\n") == 1
    assert "notes.txt is not a valid ONNX model" in err


def test_model_without_rtl_layers_fails_instead_of_checking_nothing(tmp_path, capsys):
    folder = BuildFolder(tmp_path)
    folder.verify_input.parent.mkdir()
    hw = graphs.make_mvau_thresholding_model()  # generic HW layers, not specialised to RTL
    hw.save(str(tmp_path / "hw.onnx"))
    np.save(folder.verify_input, graphs.random_input(hw, seed=7)["inp"])
    rc = run_main(rtlsim_main, ["--build", str(tmp_path), "--model", str(tmp_path / "hw.onnx")])
    out, err = capsys.readouterr()
    assert rc == 1, out + err
    assert "has no FINN RTL layers" in err and "nothing to simulate" in err
    assert "0 layers simulated" not in out
    assert not folder.rtlsim_report.exists()


def test_failed_build_is_refused(tmp_path, capsys):
    folder = BuildFolder(tmp_path)
    folder.summary.write_text(
        json.dumps({"status": "failed", "failed_step": "step_x", "reason": "why"})
    )
    rc = run_main(rtlsim_main, ["--build", str(tmp_path)])
    assert rc == 2
    assert "is failed in step_x: why; build it again" in capsys.readouterr().err


@pytest.mark.rtl
def test_build_folder_with_fork_and_join_layers(tmp_path, rtl_cache, capsys):
    """A layer with two outputs (the project's DuplicateStreams_rtl) feeding a layer with two
    inputs (finn-plus's ElementwiseAdd_rtl): both checked from the build folder, each output
    and input stream at full rate and with back-pressure."""
    hw = graphs.make_fork_join_model()
    folder = BuildFolder(tmp_path / "build")
    folder.intermediate_models.mkdir(parents=True)
    folder.verify_input.parent.mkdir()
    graphs.specialize_rtl(hw).save(str(folder.final_model))
    np.save(folder.verify_input, graphs.random_input(hw, seed=4)["inp"])
    build = folder.root
    rc = run_main(rtlsim_main, ["--build", str(build), "--cache", str(rtl_cache)])
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


def test_float_input_is_not_taken_as_the_accelerators_integer_input():
    """A float image of the right shape is refused as an integer model input, so that the RTL
    check builds the partition's input through FINN's parent model instead."""
    from qmlp_brevitas.layout import BuildFolderError
    from qmlp_brevitas.rtlsim.check import fit_input

    hw = graphs.make_mvau_thresholding_model()
    x = graphs.random_input(hw, seed=3)["inp"]
    assert np.array_equal(fit_input(hw, x)["inp"], x)
    with pytest.raises(BuildFolderError, match="not of the datatype"):
        fit_input(hw, x + 0.25)
