"""The whole accelerator in Verilator: a tiny MLP-Mixer with both token groups, FINN-built to
an all-RTL design, stitched, its FIFOs sized from simulated occupancy, and a few Fashion-MNIST
test images streamed through it (checked against FINN's integers and Brevitas' predictions);
FIFOs too shallow for the residual branch stall, and the stall names them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from qmlp_brevitas.data import build_dataset
from qmlp_brevitas.export import export_model
from qmlp_brevitas.models import create_qmlp
from qmlp_brevitas.train import calibrate

ROOT = Path(__file__).resolve().parents[1]
FRAMES = 3


def _rtlsim(argv: list[str]) -> int:
    from qmlp_brevitas.cli.common import run_main
    from qmlp_brevitas.cli.rtlsim import main

    return run_main(main, argv)


@pytest.fixture(scope="module")
def tiny_build(tmp_path_factory, fmnist_dir):
    """A one-block, 16-channel Q-MLP Mixer with the integer LayerNorm, exported and built."""
    from qmlp_brevitas.finn.build import BuildRequest, run_build
    from qmlp_brevitas.rtlsim.whole import brevitas_reference

    root = tmp_path_factory.mktemp("whole")
    torch.manual_seed(0)
    model = create_qmlp(
        "qmlp_mixer_28", w_bits=4, a_bits=4, depth=1, embed_dim=16, norm="intlayernorm"
    ).eval()
    test_set = build_dataset("fashion_mnist", fmnist_dir, train=False)
    images = torch.stack([test_set[i][0] for i in range(16)])
    calibrate(model, [(images[:8], None), (images[8:], None)], 2)
    model.eval()
    export_model(model, images[:4], root / "export")
    summary = run_build(
        BuildRequest(root / "export", root / "fpga", clock_ns=5.0, target_fps=10000)
    )
    assert summary["hls_layers"]["count"] == 0, summary["hls_layers"]
    assert summary["layer_counts"].get("IntLayerNorm_rtl", 0) == 3  # 2 in the block, 1 final
    labels = [int(test_set[i][1]) for i in range(FRAMES)]
    return root / "fpga", brevitas_reference(model, images[:FRAMES], labels)


@pytest.mark.slow
@pytest.mark.rtl
def test_whole_design_matches_finn_and_brevitas(tiny_build):
    from qmlp_brevitas.layout import BuildFolder
    from qmlp_brevitas.rtlsim.whole import simulate_whole

    build, ref = tiny_build
    report = simulate_whole(build, ref, resize=True, progress=False)
    assert report["status"] == "done", report["deadlock"]
    assert report["frames"] == report["frames_completed"] == FRAMES
    assert report["exact_outputs"] == 1.0
    assert report["prediction_agreement"] == 1.0
    assert report["input_quantization_agreement"] == 1.0
    assert report["logits_max_abs_diff_vs_brevitas"] < 1e-4
    # steady state at the bottleneck's rate, as FINN estimates it
    assert abs(report["fps"] / report["fps_finn_estimate"] - 1) < 0.05
    assert 0 < report["latency_cycles"] <= report["latency_cycles_finn_estimate"]
    depths = report["fifo_depths"]
    assert len(depths) == report["fifos"] > report["layers"]
    # the residual branch waits for the token mixing (two transposes): its FIFO holds most of
    # a frame, the FIFOs of a plain chain stay shallow
    residual = [f for f in depths.values() if f["before"].startswith("ElementwiseAdd")]
    assert max(f["depth"] for f in residual) >= max(f["words_per_frame"] for f in residual) // 2
    folder = BuildFolder(build)
    assert json.loads(folder.rtlsim_whole_report.read_text())["exact_outputs"] == 1.0
    assert folder.fifo_depths.is_file()


@pytest.mark.slow
@pytest.mark.rtl
def test_shallow_fifos_deadlock_and_the_report_names_them(tiny_build, tmp_path):
    from qonnx.core.modelwrapper import ModelWrapper

    from qmlp_brevitas.layout import BuildFolder
    from qmlp_brevitas.rtlsim.stitch import fifo_nodes, stitch_graph
    from qmlp_brevitas.rtlsim.whole import simulate_whole

    build, ref = tiny_build
    final = BuildFolder(build).final_model_path()
    graph = stitch_graph(ModelWrapper(str(final)), "xczu7ev-ffvc1156-2-e")
    depths = tmp_path / "depths.json"
    depths.write_text(json.dumps({"depths": {n.name: 2 for n in fifo_nodes(graph)}}))
    report = simulate_whole(build, ref, fifo_depths=depths, stall_cycles=20_000, progress=False)
    assert report["status"] == "deadlock"
    assert report["frames_completed"] < FRAMES and report["exact_outputs"] < 1.0
    # the residual branch's FIFO fills while the add waits for the token mixing
    assert "ElementwiseAdd_rtl_0 holds input on some ports but waits for in" in report["deadlock"]
    assert "full FIFOs: StreamingFIFO_rtl_" in report["deadlock"]
    assert "-> ElementwiseAdd_rtl_0)" in report["deadlock"]


def test_whole_without_build_folder_is_a_clear_error(tmp_path, capsys):
    rc = _rtlsim(["--build", str(tmp_path / "nope"), "--whole", "--frames", "2"])
    assert rc == 2
    assert "does not exist" in capsys.readouterr().err


def test_whole_with_zero_frames_is_refused(tmp_path, capsys):
    rc = _rtlsim(["--build", str(tmp_path), "--whole", "--frames", "0"])
    assert rc == 2
    assert "--frames must be at least 1" in capsys.readouterr().err
