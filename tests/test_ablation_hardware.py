"""The ablation's hardware columns: a FINN estimate build per quantized row, cached per run."""

from __future__ import annotations

import json

import pytest
import torch

from qmlp_brevitas.ablation import AblationConfig, AblationRow, RowResult, default_columns
from qmlp_brevitas.errors import RunFolderError
from qmlp_brevitas.export import export_model
from qmlp_brevitas.finn import cost
from qmlp_brevitas.layout import RunFolder
from qmlp_brevitas.models import create_qmlp
from qmlp_brevitas.train import calibrate

TARGET_FPS = 2000


def _export_run(run_dir, **recipe):
    """A one-block qmlp_mixer_28, calibrated on noise and exported like a trained run."""
    torch.manual_seed(0)
    model = create_qmlp("qmlp_mixer_28", w_bits=4, a_bits=4, depth=1, **recipe).eval()
    calibrate(model, [(torch.randn(8, 1, 28, 28), None) for _ in range(3)], 3)
    export_model(model, torch.randn(2, 1, 28, 28), run_dir)
    return run_dir


def _row_result(run_dir) -> RowResult:
    row = AblationRow("qmlp", "qmlp")
    return RowResult(row, 4, [0], [0.5], [{"model_size_mb": 0.1}], [run_dir])


def test_failure_reason_reads_the_fields_of_the_unmapped_node():
    failed = {
        "compiles": False,
        "failed_step": "step_qmlp_convert_to_hw",
        "reason": "not read when a node did not map",
        "unmapped_nodes": [{"node": "Erf_0", "op_type": "Erf", "reason": "float input"}],
        "mismatched_stages": [],
    }
    assert cost.failure_reason(failed) == "Erf node Erf_0 not mappable (step_qmlp_convert_to_hw)"
    other = {**failed, "unmapped_nodes": [], "reason": "boom"}
    other["mismatched_stages"] = [{"stage": "streamlined", "max_abs_diff": 2.85}]
    assert cost.failure_reason(other) == (
        "step_qmlp_convert_to_hw: boom; before that, stage streamlined (2.85) did not match "
        "the export"
    )
    assert len(cost.failure_reason({**other, "reason": "x" * 500, "mismatched_stages": []})) == 120


def test_columns_of_a_mapped_and_an_unmapped_row():
    request = {"target_fps": 1000, "clock_ns": 5.0, "part": "p"}
    mapped = {
        "compiles": True,
        "layers": 12,
        "verified": True,
        "fps": 1525.9,
        "LUT": 100.4,
        "DSP": 3.0,
        "BRAM_18K": 2.0,
        "request": request,
    }
    cells = cost.cost_columns(mapped)
    assert cells["FINN"] == "yes, 12 layers"
    assert cells["fps (target 1000)"] == 1526 and cells[cost.LUT_COLUMN] == 100
    assert cost.cost_columns({**mapped, "verified": False})["FINN"] == "yes, 12 layers, MISMATCH"
    failed = {
        "compiles": False,
        "failed_step": "step_qmlp_convert_to_hw",
        "reason": "node E (Erf) cannot be mapped",
        "unmapped_nodes": [{"node": "E", "op_type": "Erf", "reason": "float input"}],
        "request": request,
    }
    unmapped = cost.cost_columns(failed)
    assert unmapped["FINN"] == "no: Erf node E not mappable (step_qmlp_convert_to_hw)"
    assert set(unmapped) == set(cells) and unmapped["DSP"] == ""


def test_missing_export_is_a_clear_error(tmp_path):
    with pytest.raises(RunFolderError, match=r"has no QONNX export.*--export"):
        cost.hardware_cost(tmp_path)


def test_hardware_option_turns_on_export_and_adds_the_column():
    cfg = AblationConfig(hardware_fps=500)
    assert cfg.export and len(default_columns(cfg)) == 2
    assert len(default_columns(AblationConfig())) == 1
    with pytest.raises(ValueError, match="positive"):
        AblationConfig(hardware_fps=0)
    with pytest.raises(ValueError, match=r"--hardware-bits \[2\] are not among"):
        AblationConfig(hardware_fps=500, hardware_bits=(2,))
    # Rows at a bit width without hardware columns get no cells (and no build).
    only_w8 = AblationConfig(bits=(8, 4), hardware_fps=500, hardware_bits=(8,))
    assert default_columns(only_w8)[1](_row_result("unused")) == {}


@pytest.mark.slow
def test_qmlp_row_compiles_and_its_cost_is_cached(tmp_path, monkeypatch):
    run = _export_run(tmp_path / "run")
    column = cost.hardware_column(TARGET_FPS)
    cells = column(_row_result(run))
    folder = RunFolder(run).cost_build(TARGET_FPS)
    saved = json.loads(folder.hardware_cost.read_text())
    summary = json.loads(folder.summary.read_text())
    assert saved["compiles"] and saved["verified"]
    assert cells["FINN"] == f"yes, {len(summary['layers'])} layers"
    assert cells[f"fps (target {TARGET_FPS})"] == round(summary["estimated_fps"]) >= TARGET_FPS
    assert cells["DSP"] == round(summary["totals"]["DSP"])
    assert cells[cost.LUT_COLUMN] == round(summary["totals"]["LUT"]) > 0

    def no_build(_request):
        raise AssertionError("the cached cost must be read back, not built again")

    monkeypatch.setattr("qmlp_brevitas.finn.build.run_build", no_build)
    assert column(_row_result(run)) == cells
    with pytest.raises(AssertionError, match="read back"):  # another target is a new build
        cost.hardware_cost(run, target_fps=TARGET_FPS // 2)


@pytest.mark.slow
def test_gelu_row_does_not_compile_and_says_which_node(tmp_path):
    run = _export_run(tmp_path / "run", act="gelu")
    result = cost.hardware_cost(run, TARGET_FPS)
    assert not result["compiles"]
    assert result["failed_step"] == "step_qmlp_convert_to_hw"
    assert {n["op_type"] for n in result["unmapped_nodes"]} >= {"Erf"}
    assert cost.cost_columns(result)["FINN"].startswith("no: Erf node ")
    summary = json.loads(RunFolder(run).cost_build(TARGET_FPS).summary.read_text())
    assert summary["status"] == "failed" and summary["failed_step"] == "step_qmlp_convert_to_hw"
