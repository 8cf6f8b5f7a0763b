"""End-to-end FINN builds of small exported models (slow): every compute node a FINN hardware
layer, every stage matching the export's reference, a cycle estimate for every layer, and the
bottleneck agreeing with the folding target. Also the errors of a bad input."""

from __future__ import annotations

import pytest
import torch

from qmlp_brevitas.export import OnnxFileError, export_model
from qmlp_brevitas.models import create_qmlp
from qmlp_brevitas.train import calibrate

CLOCK_NS = 5.0
TARGET_FPS = 2000
FINN_HW = "finn.custom_op.fpgadataflow"
PROJECT_HW = "qmlp_brevitas.finn.custom_op"


def _export(model, out_dir):
    torch.manual_seed(0)
    model.eval()
    calibrate(model, [(torch.randn(8, 1, 28, 28), None) for _ in range(3)], 3)
    return export_model(model, torch.randn(1, 1, 28, 28), out_dir)


def _qmlp(tmp_path, bits, **recipe):
    torch.manual_seed(0)
    model = create_qmlp("qmlp_mixer_28", w_bits=bits, a_bits=bits, depth=1, **recipe)
    return _export(model, tmp_path / "export")


def _plain(tmp_path):
    from qmlp_brevitas.finn.plain_mlp import PlainQuantMLP

    torch.manual_seed(0)
    model = PlainQuantMLP(hidden=(64, 32))
    model.train()
    for _ in range(3):
        model(torch.randn(16, 1, 28, 28))
    return _export(model, tmp_path / "export")


def _build(tmp_path, export):
    from qmlp_brevitas.finn.build import BuildRequest, run_build

    request = BuildRequest(
        tmp_path / "export", tmp_path / "fpga", clock_ns=CLOCK_NS, target_fps=TARGET_FPS
    )
    return run_build(request)


def _check_build(summary):
    from qonnx.core.modelwrapper import ModelWrapper

    final = ModelWrapper(summary["final_model"])
    assert all(n.domain.startswith((FINN_HW, PROJECT_HW)) for n in final.graph.node)
    assert len(final.graph.node) == len(summary["layers"])
    stages = summary["verification"]
    assert set(stages) >= {"qonnx", "qonnx_prepared", "streamlined", "hw_layers", "folded"}
    assert all(r["ok"] and r["max_abs_diff"] < 1e-4 for r in stages.values()), stages
    layernorms = {r["name"] for r in summary["layers"] if r["op_type"].startswith("LayerNorm")}
    own = {r["name"] for r in summary["layers"] if r["op_type"].startswith("IntLayerNorm")}
    # Every layer has a FINN cycle estimate except FINN's LayerNorm_hls, which reports none,
    # and the project's own layers, whose estimate is their own (source "modelled").
    assert set(summary["missing_cycle_estimates"]) <= layernorms | own
    assert all(r["cycles"] > 0 for r in summary["layers"] if r["name"] not in layernorms)
    budget = 1e9 / (CLOCK_NS * TARGET_FPS)
    cycles = {r["name"]: r["cycles"] for r in summary["layers"]}
    assert summary["bottleneck"] == max(cycles, key=cycles.get)
    assert summary["max_cycles"] == max(cycles.values()) <= budget
    assert summary["estimated_fps"] >= TARGET_FPS
    assert summary["totals"]["LUT"] > 0
    # every layer costed: FINN's estimate or the project's model, with its source
    assert not summary["missing_lut_estimates"]
    for row in summary["layers"] + summary["inserted"]:
        assert row["LUT"] > 0 or row["op_type"] == "StreamingDataWidthConverter", row["name"]
        assert set(row["sources"]) >= {"LUT", "FF", "BRAM_18K", "URAM", "DSP", "cycles"}
        assert set(row["sources"].values()) <= {"finn", "modelled", "synthesized"}
    assert summary["totals"]["LUT"] >= summary["finn_totals"]["LUT"]
    assert 0 < summary["mac_utilisation"] <= 1
    assert 0 < summary["part_fraction"]["LUT"] < 1
    assert summary["message"] and "Vivado" in summary["message"]
    return final


@pytest.mark.slow
@pytest.mark.parametrize("bits", [4, 8])
def test_qmlp_layernorm_compiles(tmp_path, bits):
    summary = _build(tmp_path, _qmlp(tmp_path, bits, norm="layernorm"))
    final = _check_build(summary)
    ops = {n.op_type.rsplit("_", 1)[0] for n in final.graph.node}
    assert {"MVAU", "Thresholding", "LayerNorm", "GlobalAccPool", "StreamingSplit"} <= ops
    assert {"StreamingConcat", "ElementwiseAdd", "DuplicateStreams", "InnerShuffle"} <= ops
    assert summary["layernorm"]["layers"] == 3


@pytest.mark.slow
def test_qmlp_integer_only_compiles(tmp_path):
    summary = _build(tmp_path, _qmlp(tmp_path, 4, norm="affine"))
    final = _check_build(summary)
    assert not any(n.op_type.startswith("LayerNorm") for n in final.graph.node)
    assert summary["layernorm"]["layers"] == 0


@pytest.fixture(scope="module")
def int_layernorm_build(tmp_path_factory):
    """A 1-block W4A4 Q-MLP model with integer LayerNorms, exported and built once."""
    tmp_path = tmp_path_factory.mktemp("int_layernorm")
    summary = _build(tmp_path, _qmlp(tmp_path, 4, norm="intlayernorm"))
    return tmp_path / "fpga", summary


@pytest.mark.slow
def test_qmlp_int_layernorm_compiles_with_estimates(int_layernorm_build):
    import json

    build, summary = int_layernorm_build
    final = _check_build(summary)
    ops = [n.op_type for n in final.graph.node]
    assert ops.count("IntLayerNorm_rtl") == 3 and not any(o.startswith("LayerNorm") for o in ops)
    norms = [r for r in summary["layers"] if r["op_type"] == "IntLayerNorm_rtl"]
    assert all(r["cycles"] == 16 * 64 and r["LUT"] > 0 and r["DSP"] > 0 for r in norms)
    assert summary["layernorm"]["kinds"] == {"IntLayerNorm_rtl": 3}
    assert summary["layernorm"]["sources"] == ["modelled"]  # the layer's own estimates
    assert all(set(r["sources"].values()) == {"modelled"} for r in norms)
    # FINN's own reports carry the layer's estimates
    cycles = json.loads((build / "report" / "estimate_layer_cycles.json").read_text())
    resources = json.loads((build / "report" / "estimate_layer_resources.json").read_text())
    for row in norms:
        assert cycles[row["name"]] == row["cycles"]
        assert resources[row["name"]]["LUT"] == row["LUT"] and resources[row["name"]]["FF"] > 0
    # the thresholds behind each norm compare 12-bit integers, not a float-derived value
    after = [
        final.find_consumer(n.output[0]) for n in final.graph.node if "IntLayerNorm" in n.op_type
    ]
    assert {n.op_type for n in after if n is not None} <= {"Thresholding_rtl", "StreamingSplit_hls"}


@pytest.mark.slow
@pytest.mark.rtl
def test_qmlp_int_layernorm_layers_simulate_bit_exact(int_layernorm_build, tmp_path):
    from qmlp_brevitas.rtlsim.check import check_build

    build, _ = int_layernorm_build
    names = ["IntLayerNorm_rtl_0", "IntLayerNorm_rtl_1", "IntLayerNorm_rtl_2"]
    report = check_build(build, cache_dir=tmp_path / "cache", layers=names)
    assert [r["name"] for r in report["layers"]] == names
    assert all(
        r["status"] == "pass" and r["words_checked"] == 2 * 2 * 16 * 64 for r in report["layers"]
    )
    assert report["mismatches"] == 0 and not report["errors"]
    assert set(names) <= set(report["coverage"]["simulated"])


@pytest.mark.slow
def test_plain_mlp_compiles(tmp_path):
    summary = _build(tmp_path, _plain(tmp_path))
    final = _check_build(summary)
    assert [n.op_type for n in final.graph.node].count("MVAU_rtl") == 3


def test_unmappable_node_is_named(tmp_path):
    from onnx import TensorProto, helper
    from qonnx.core.modelwrapper import ModelWrapper

    from qmlp_brevitas.finn.settings import setup_finn

    setup_finn(tmp_path / "finn_tmp")
    from qmlp_brevitas.finn.steps import UnmappedNodeError, check_all_hw

    graph = helper.make_graph(
        [helper.make_node("Sin", ["x"], ["y"], name="odd_sin")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    with pytest.raises(UnmappedNodeError, match=r"odd_sin \(Sin\).*float input"):
        check_all_hw(ModelWrapper(helper.make_model(graph)))


def test_missing_and_corrupt_onnx(tmp_path):
    from qmlp_brevitas.finn.build import resolve_model_dir

    with pytest.raises(OnnxFileError, match="does not exist"):
        resolve_model_dir(run=tmp_path)
    (tmp_path / "model.onnx").write_bytes(b"not an onnx file")
    with pytest.raises(OnnxFileError, match="not a valid ONNX model"):
        resolve_model_dir(run=tmp_path)
