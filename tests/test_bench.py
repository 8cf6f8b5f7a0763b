"""Step-time benchmark: float vs QAT, eager vs fast path, JSON output and device choice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from qmlp_brevitas import bench
from qmlp_brevitas.cli.bench import main as bench_main
from qmlp_brevitas.cli.common import run_main

ROOT = Path(__file__).resolve().parents[1]


def test_compare_times_every_mode_and_reports_the_ratios():
    result = bench.compare("qmlp_mixer_28", batch_size=8, steps=2, warmup=1)
    for mode in bench.MODES:
        assert len(result["step_times_s"][mode]) == 2
        assert all(t > 0 for t in result["step_times_s"][mode])
    assert result["ratio"] == pytest.approx(result["qat_s"] / result["float_s"])
    assert result["ratio_eager"] == pytest.approx(result["qat_eager_s"] / result["float_s"])
    assert result["fast_speedup"] == pytest.approx(result["qat_eager_s"] / result["qat_s"])
    # Every one of the default model's 62 quantized layers, including the residual stream's 9
    # quantizers that hand their scale to the integer LayerNorms as a QuantTensor, and its 9
    # integer LayerNorms take the fast path.
    assert result["device"] == "cpu" and result["fast_layers"] == 62 + 9
    assert result["eager_layers"] == {}
    assert {"float_cpu_s", "qat_cpu_s", "ratio_cpu", "load_average_before"} <= set(result)
    assert "median of 2 rounds" in "\n".join(bench.compare_lines(result))


def test_tool_writes_the_json(tmp_path, capsys):
    out = tmp_path / "results" / "bench.json"
    argv = ["--model", "qmlp_mixer_28", "--batch-size", "8", "--steps", "1", "--warmup", "0"]
    assert run_main(bench_main, [*argv, "--compare", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert {"float_s", "qat_s", "ratio", "qat_eager_s", "ratio_eager"} <= set(data)
    assert "QAT, fast path" in capsys.readouterr().out
    assert run_main(bench_main, [*argv, "--no-fast", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["median_s"] > 0
    # --norm layernorm: the float-LayerNorm model, whose 62 quantized layers are all fast.
    assert (
        run_main(bench_main, [*argv, "--compare", "--norm", "layernorm", "--json", str(out)]) == 0
    )
    data = json.loads(out.read_text())
    assert data["norm"] == "layernorm" and data["fast_layers"] == 62 and not data["eager_layers"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_without_cuda_is_one_clear_line(capsys):
    argv = ["--model", "qmlp_mixer_28", "--device", "cuda", "--compare"]
    assert run_main(bench_main, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "CUDA is not available" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--steps", "0"], "--steps must be at least 1, got 0"),
        (["--warmup", "-1"], "--warmup must be at least 0, got -1"),
        (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
        (["--threads", "0"], "--threads must be at least 1, got 0"),
        (["--w", "9", "--compare"], "weight bit width (--w) must be an integer from 2 to 8"),
        (["--device", "gpu0"], "unknown device 'gpu0'; use cpu or cuda[:N]"),
    ],
)
def test_bad_settings_are_one_line_before_any_model_is_built(argv, message, capsys, monkeypatch):
    def refuse(*_args, **_kwargs):
        raise AssertionError("a model was built before the settings were checked")

    monkeypatch.setattr(bench, "make_workload", refuse)
    assert run_main(bench_main, ["--model", "qmlp_mixer_28", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_json_under_a_file_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bench, "make_workload", None)  # any use fails the test
    (tmp_path / "taken").write_text("a file")
    argv = ["--model", "qmlp_mixer_28", "--json", str(tmp_path / "taken" / "b.json")]
    assert run_main(bench_main, argv) == 2
    assert f"{tmp_path / 'taken'} is a file" in capsys.readouterr().err
    assert run_main(bench_main, ["--model", "qmlp_mixer_28", "--json", str(tmp_path)]) == 2
    assert "is a folder; name a file" in capsys.readouterr().err


def test_device_names_are_checked():
    assert bench.pick_device("cpu") == torch.device("cpu")
    with pytest.raises(bench.DeviceError, match="unknown device 'gpu0'"):
        bench.pick_device("gpu0")
    with pytest.raises(bench.DeviceError, match="not supported"):
        bench.pick_device("meta")


@pytest.mark.slow
def test_gpu_script_runs_its_benchmarks_and_writes_json(tmp_path):
    """The CUDA command, here on the CPU (DEVICE=cpu) with a small batch, no paper model."""
    import os
    import subprocess
    import sys

    root = ROOT
    env = {**os.environ, "DEVICE": "cpu", "STEPS": "1", "BATCH": "8", "PAPER": "0"}
    env["PYTHON"] = sys.executable
    proc = subprocess.run(
        ["bash", str(root / "scripts" / "gpu_bench.sh"), str(tmp_path)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads((tmp_path / "mixer28-b8.json").read_text())
    assert data["device"] == "cpu" and data["batch_size"] == 8 and data["ratio"] > 0
    assert "QAT, fast path" in proc.stdout
