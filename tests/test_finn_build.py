"""End-to-end FINN builds of small exported models (slow): every compute node a FINN hardware
layer, every stage matching the export's reference, a cycle estimate for every layer, and the
bottleneck agreeing with the folding target. Also the errors of a bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from qmlp_brevitas.cli.build import main as build_main
from qmlp_brevitas.cli.common import run_main
from qmlp_brevitas.errors import ConfigError
from qmlp_brevitas.export import OnnxFileError, export_model
from qmlp_brevitas.finn.build import BuildRequest, load_verification
from qmlp_brevitas.layout import BuildFolder, BuildFolderError
from qmlp_brevitas.models import create_qmlp
from qmlp_brevitas.train import calibrate

CLOCK_NS = 5.0
TARGET_FPS = 2000


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
    from qmlp_brevitas.finn.build import run_build

    request = BuildRequest(
        tmp_path / "export", tmp_path / "fpga", clock_ns=CLOCK_NS, target_fps=TARGET_FPS
    )
    return run_build(request)


def _check_build(summary):
    from qonnx.core.modelwrapper import ModelWrapper

    from qmlp_brevitas.finn.domains import is_hw_layer

    final = ModelWrapper(summary["final_model"])
    assert all(is_hw_layer(n.domain) for n in final.graph.node)
    assert len(final.graph.node) == len(summary["layers"])
    # only FINN's float LayerNorm is left as HLS; the input quantizer and the float output
    # scale/bias run on the host
    assert set(summary["hls_layers"]["op_types"]) <= {"LayerNorm_hls"}
    assert summary["hls_layers"]["count"] == sum(
        n.op_type.endswith("_hls") for n in final.graph.node
    )
    # the host quantizes the input (and lays it out) and de-quantizes the logits
    host = [n["op_type"] for n in summary["host_nodes"]]
    assert host[0] == "MultiThreshold"
    assert set(host) <= {"MultiThreshold", "Transpose", "Flatten", "Mul", "Add"}
    stages = summary["verification"]
    assert set(stages) >= {"qonnx", "qonnx_prepared", "streamlined", "hw_layers", "folded"}
    assert all(r["ok"] and r["max_abs_diff"] < 1e-4 for r in stages.values()), stages
    layernorms = {r["name"] for r in summary["layers"] if r["op_type"].startswith("LayerNorm")}
    # Every layer has FINN's cycle estimate except FINN's LayerNorm_hls, which reports none, the
    # project's RTL pool, whose own count leaves out the HLS pool's write-out cycles, and the
    # project's own layers, whose estimate is their own (source "modelled").
    pools = {r["name"] for r in summary["layers"] if r["op_type"] == "GlobalAccPool_rtl"}
    own = {r["name"] for r in summary["layers"] if r["op_type"].startswith("IntLayerNorm")}
    assert set(summary["missing_cycle_estimates"]) <= layernorms | pools | own
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
    assert summary["hls_layers"]["count"] == 0


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
    assert {n.op_type for n in after if n is not None} <= {"Thresholding_rtl", "StreamingSplit_rtl"}


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


def _sin_graph(tmp_path):
    """x -> Sin -> y: a node FINN has no hardware layer for."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Sin", ["x"], ["y"], name="odd_sin")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    path = tmp_path / "sin.onnx"
    path.write_bytes(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    )
    np.save(tmp_path / "x.npy", np.linspace(-1, 1, 4, dtype=np.float32).reshape(1, 4))
    return path


def test_unmappable_node_is_named_with_fields(tmp_path):
    from qonnx.core.modelwrapper import ModelWrapper

    from qmlp_brevitas.finn.settings import setup_finn

    setup_finn(tmp_path / "finn_tmp")
    from qmlp_brevitas.finn.errors import read_unmapped
    from qmlp_brevitas.finn.steps import UnmappedNodeError, check_all_hw

    report = tmp_path / "report" / "unmapped_nodes.json"
    with pytest.raises(UnmappedNodeError, match=r"odd_sin \(Sin\).*float input") as info:
        check_all_hw(ModelWrapper(str(_sin_graph(tmp_path))), report)
    err = info.value
    assert (err.node, err.op_type) == ("odd_sin", "Sin") and "float input" in err.reason
    assert [n.node for n in read_unmapped(report)] == ["odd_sin"]


def test_missing_and_corrupt_onnx(tmp_path):
    request = BuildRequest(tmp_path, tmp_path / "out", target_fps=1000)
    with pytest.raises(OnnxFileError, match="does not exist"):
        load_verification(request)
    (tmp_path / "model.onnx").write_bytes(b"not an onnx file")
    with pytest.raises(OnnxFileError, match="not a valid ONNX model"):
        load_verification(request)
    (tmp_path / "notes.txt").write_text("a text file\n")
    with pytest.raises(OnnxFileError, match="not a valid ONNX model"):
        load_verification(BuildRequest(tmp_path / "notes.txt", tmp_path / "out", target_fps=1))


@pytest.mark.parametrize(
    "part",
    [
        "xczu7ev-ffvc1156-2-e",
        "xc7z020clg400-1",
        "xcu250-figd2104-2L-e",
        "xcvc1902-vsva2197-2MP-e-S",
        "xck26-sfvc784-2LV-c",
        "xc7a35tcpg236-1",
        "xcku040-ffva1156-2-e",
    ],
)
def test_known_and_well_formed_parts_are_accepted(part, tmp_path):
    assert BuildRequest(tmp_path, tmp_path / "out", part=part, target_fps=1).part == part


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--part", "nonsense", "--part 'nonsense' is not a Xilinx FPGA part name"),
        ("--part", "xczu7ev", "--part 'xczu7ev' is not a Xilinx FPGA part name"),
        ("--board", "nonsense", "--board 'nonsense' is not a board FINN knows; choose one of"),
        ("--target-fps", "0", "--target-fps must be positive, got 0"),
        ("--clock-ns", "-5", "--clock-ns must be positive, got -5.0"),
        ("--folding", "missing.json", "does not exist"),
        ("--input", "missing.npy", "--input"),
    ],
)
def test_bad_build_options_are_refused_before_anything_is_made(
    option, value, message, tmp_path, capsys
):
    onnx = _sin_graph(tmp_path)
    out = tmp_path / "out"
    if value.endswith((".json", ".npy")):
        value = str(tmp_path / value)
    argv = ["--onnx", str(onnx), "--out", str(out), option, value]
    assert run_main(build_main, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert not out.exists()


def test_board_and_part_lists_name_what_is_accepted(tmp_path):
    with pytest.raises(ConfigError, match=r"Pynq-Z1.*ZCU104"):
        BuildRequest(tmp_path, tmp_path / "o", board="nonsense", target_fps=1)
    with pytest.raises(ConfigError, match=r"xc7z020clg400-1.*xczu7ev-ffvc1156-2-e"):
        BuildRequest(tmp_path, tmp_path / "o", part="nonsense", target_fps=1)
    assert BuildRequest(tmp_path, tmp_path / "o", board="Pynq-Z1", target_fps=1).board == "Pynq-Z1"


def test_bad_folding_file_and_out_under_a_file_are_refused(tmp_path, capsys):
    onnx = _sin_graph(tmp_path)
    (tmp_path / "folding.json").write_text("{not json")
    argv = ["--onnx", str(onnx), "--out", str(tmp_path / "out"), "--folding"]
    assert run_main(build_main, [*argv, str(tmp_path / "folding.json")]) == 2
    assert "is not valid JSON" in capsys.readouterr().err
    (tmp_path / "folding.json").write_text("[1, 2]")
    assert run_main(build_main, [*argv, str(tmp_path / "folding.json")]) == 2
    assert "must be a JSON object of layer name -> settings" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    argv = ["--onnx", str(onnx), "--out", str(tmp_path / "file" / "fpga")]
    assert run_main(build_main, argv) == 2
    assert f"{tmp_path / 'file'} is a file" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_folding_file_goes_into_finns_config_as_a_path(tmp_path):
    """FINN's config field is a Path; a str crashed its JSON (``'str' object has no attribute
    '__fspath__'``) on every --folding file."""
    from qmlp_brevitas.finn.build import ESTIMATE_STEPS, make_config
    from qmlp_brevitas.finn.settings import setup_finn

    setup_finn(tmp_path / "finn_tmp")
    from finn.builder.build_dataflow_config import DataflowBuildConfig

    folding = tmp_path / "auto_folding_config.json"
    folding.write_text(json.dumps({"Defaults": {}, "MVAU_rtl_0": {"PE": 2, "SIMD": 4}}))
    request = BuildRequest(tmp_path, tmp_path / "out", folding_config=str(folding))
    cfg = make_config(request, ESTIMATE_STEPS)
    again = DataflowBuildConfig.from_json(cfg.to_json())
    copy = BuildFolder(tmp_path / "out").folding_config
    assert again.folding_config_file == copy.absolute() and again.target_fps is None


@pytest.mark.parametrize("in_pytest", [True, False], ids=["step-error-raised", "finn-logs-it"])
def test_failed_rebuild_marks_the_folder_failed(tmp_path, monkeypatch, capsys, in_pytest):
    """A rebuild that stops leaves no summary of the earlier build, nor its reports, pointing at
    step models that are gone; the summary says where and why it failed, with the node's fields
    (also when FINN's builder catches the step's error and only logs it, as outside pytest)."""
    onnx = _sin_graph(tmp_path)
    folder = BuildFolder(tmp_path / "fpga")
    folder.intermediate_models.mkdir(parents=True)
    folder.report_dir.mkdir()
    folder.step_model("step_tidy_up").write_bytes(b"old")
    folder.layer_cycles.write_text("{}")
    folder.rtlsim_report.write_text("{}")
    folder.summary.write_text(json.dumps({"status": "ok", "final_model": "gone.onnx"}))
    if not in_pytest:
        monkeypatch.delenv("PYTEST_CURRENT_TEST")
    argv = ["--onnx", str(onnx), "--input", str(tmp_path / "x.npy"), "--out", str(folder.root)]
    assert run_main(build_main, argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "FINN build failed in step_qmlp_convert_to_hw: node Sin_0 (Sin) cannot be mapped" in err
    summary = json.loads(folder.summary.read_text())
    assert summary["status"] == "failed"
    assert summary["failed_step"] == "step_qmlp_convert_to_hw"
    # FINN's tidy-up names the nodes by type
    assert [n["node"] for n in summary["unmapped_nodes"]] == ["Sin_0"]
    assert "final_model" not in summary
    assert not folder.layer_cycles.exists() and not folder.rtlsim_report.exists()
    assert folder.step_model("step_tidy_up").read_bytes() != b"old"  # this build's own
    with pytest.raises(BuildFolderError, match="is failed in step_qmlp_convert_to_hw"):
        folder.final_model_path()


def test_build_error_carries_the_unmapped_node(tmp_path):
    from qmlp_brevitas.finn.build import run_build
    from qmlp_brevitas.finn.errors import BuildError

    onnx = _sin_graph(tmp_path)
    request = BuildRequest(
        onnx, tmp_path / "fpga", target_fps=1000, verify_input=tmp_path / "x.npy"
    )
    with pytest.raises(BuildError) as info:
        run_build(request)
    err = info.value
    assert err.step == "step_qmlp_convert_to_hw" and err.exit_code == 1
    assert [(n.node, n.op_type) for n in err.unmapped] == [("Sin_0", "Sin")]


def test_rebuild_removes_the_earlier_builds_costing_files(tmp_path, capsys):
    """Yosys' counts, the folding search and the design-space result name the earlier build's
    layers; a rebuild (here one that fails) must not leave them to describe the new one."""
    onnx = _sin_graph(tmp_path)
    folder = BuildFolder(tmp_path / "fpga")
    folder.root.mkdir()
    for path in (folder.synthesis, folder.folding_search, folder.design_point):
        path.write_text(json.dumps({"MVAU_rtl_0": {"LUT": 1}}))
    argv = ["--onnx", str(onnx), "--input", str(tmp_path / "x.npy"), "--out", str(folder.root)]
    assert run_main(build_main, argv) == 1
    assert "FINN build failed" in capsys.readouterr().err
    assert json.loads(folder.summary.read_text())["status"] == "failed"
    for path in (folder.synthesis, folder.folding_search, folder.design_point):
        assert not path.exists(), path


@pytest.mark.slow
def test_budget_build_searches_builds_and_records_the_search(tmp_path, capfd):
    """``--budget`` on a one-block Q-MLP: the first build in ``search_base``, the searched
    folding built and verified on the same data, the search in the summary and in
    ``folding_search.json``; then Yosys' counts of a layer (``synthesis.json``) re-cost the
    build without losing its status or verification source."""
    from qmlp_brevitas.finn.report import refresh_summary

    _qmlp(tmp_path, 4)
    folder = BuildFolder(tmp_path / "fpga")
    argv = ["--run", str(tmp_path / "export"), "--out", str(folder.root), "--budget"]
    assert run_main(build_main, [*argv, "LUT=200000,DSP=400"]) == 0
    out = capfd.readouterr().out  # the search's progress goes to the terminal's own stream
    assert "folding search: first build in" in out and "the built folding fits" in out
    summary = folder.read_summary()
    search = summary["folding_search"]
    assert search["budget"]["LUT"] == 200_000 and search["budget"]["DSP"] == 400
    assert search["confirmed_fits"] and summary["totals"]["DSP"] <= 400
    # the search costs what the build inserts (DWCs, FIFOs): its estimate is the built total
    assert search["confirm_rounds"] == len(search["rounds"]) == 1
    assert search["built_totals"] == {r: summary["totals"][r] for r in search["budget"]}
    assert search["search_totals"] == pytest.approx(search["built_totals"])
    assert search["search_inserted"]["LUT"] == pytest.approx(
        sum(r["LUT"] for r in summary["inserted"])
    )
    assert any(r["op_type"] == "StreamingDataWidthConverter" for r in summary["inserted"])
    assert summary["status"] == "ok" and summary["verification_source"] == "export"
    assert all(r["ok"] for r in summary["verification"].values())
    assert summary["folding_config"] == str(folder.folding_config)
    assert summary["estimated_fps"] > folder.search_base.read_summary()["estimated_fps"]
    record = json.loads(folder.folding_search.read_text())
    assert record["trace"] and record["limited_by"] == search["limited_by"]
    mvau = next(r for r in summary["layers"] if r["op_type"] == "MVAU_rtl")
    counts = {"LUT": 1234, "FF": 2345, "DSP": mvau["DSP"], "BRAM_18K": 0, "URAM": 0}
    folder.synthesis.write_text(json.dumps({mvau["name"]: counts}))
    fresh = refresh_summary(folder)
    row = next(r for r in fresh["layers"] if r["name"] == mvau["name"])
    assert row["LUT"] == 1234 and row["sources"]["LUT"] == "synthesized"
    assert fresh["status"] == "ok" and fresh["verification_source"] == "export"
    assert fresh["folding_search"] == search
    assert fresh["totals"]["LUT"] == pytest.approx(
        summary["totals"]["LUT"] - mvau["LUT"] + 1234, abs=1
    )
