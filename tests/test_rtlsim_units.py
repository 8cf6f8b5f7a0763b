"""Parts of the RTL check that need no simulator: patches, coverage, build-folder lookup."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qmlp_brevitas.layout import BuildFolder, BuildFolderError
from qmlp_brevitas.rtlsim import graphs
from qmlp_brevitas.rtlsim.check import HLS_REASON, build_settings, layer_coverage
from qmlp_brevitas.rtlsim.layer import LayerResult
from qmlp_brevitas.rtlsim.patches import PatchError, apply_patches, load_patches
from qmlp_brevitas.rtlsim.toolchain import config_key


def _finn_add_multi():
    from finn.util.settings import get_settings, initialize_dummy_settings

    initialize_dummy_settings()
    return Path(get_settings().finn_rtllib) / "mvu" / "add_multi.sv"


def test_add_multi_patch_moves_function_to_module_scope(tmp_path):
    original = _finn_add_multi().read_text()
    copy = tmp_path / "add_multi.sv"
    copy.write_text(original)
    applied = apply_patches([copy], load_patches())
    assert applied == ["add_multi_verilator.patch -> add_multi.sv"]
    patched = copy.read_text()
    assert patched != original
    head, tree = patched.split("else begin : genTree")
    assert "function leaf_load_t init_leaf_loads();" in head
    assert "function" not in tree and "init_leaf_loads()" in tree
    # the installed package is untouched
    assert _finn_add_multi().read_text() == original


def test_patch_refuses_a_changed_file(tmp_path):
    copy = tmp_path / "add_multi.sv"
    copy.write_text("module add_multi; endmodule\n")
    with pytest.raises(PatchError, match="does not apply"):
        apply_patches([copy], load_patches())


def test_missing_patch_folder_is_named(tmp_path):
    with pytest.raises(PatchError, match="does not exist"):
        load_patches(tmp_path / "none")


def test_cache_key_follows_source_text(tmp_path):
    src = tmp_path / "a.sv"
    src.write_text("module a; endmodule\n")
    key = config_key([src], "a", ("--no-timing",))
    assert key == config_key([src], "a", ("--no-timing",))
    src.write_text("module a; wire x; endmodule\n")
    assert key != config_key([src], "a", ("--no-timing",))


def test_coverage_names_unsimulated_layers_and_mac_share():
    model = graphs.specialize(graphs.make_mvau_thresholding_model())
    mvau, thr = model.graph.node
    thr.op_type, thr.domain = "Thresholding_hls", "finn.custom_op.fpgadataflow.hls"
    results = {
        mvau.name: LayerResult(mvau.name, mvau.op_type, {}, "pass", macs=512),
    }
    cov = layer_coverage(model, results)
    assert cov["simulated"] == [mvau.name]
    assert cov["not_simulated"] == [
        {"layer": thr.name, "op": "Thresholding_hls", "macs": 0, "reason": HLS_REASON}
    ]
    assert cov["macs_total"] == 512 and cov["mac_share_checked"] == 1.0


def test_final_model_and_settings_come_from_the_build_layout(tmp_path):
    folder = BuildFolder(tmp_path)
    folder.intermediate_models.mkdir()
    with pytest.raises(BuildFolderError, match="no finished FINN build"):
        folder.final_model_path()
    assert build_settings(folder) == ("xczu7ev-ffvc1156-2-e", 5.0)  # no summary: defaults
    graphs.specialize(graphs.make_mvau_thresholding_model()).save(str(folder.final_model))
    # A model named like a final one elsewhere in the folder is not taken for it.
    graphs.make_mvau_model().save(str(folder.step_model("step_final_other")))
    folder.summary.write_text(
        json.dumps({"status": "ok", "fpga_part": "xc7z020clg400-1", "clock_ns": 10.0})
    )
    assert folder.final_model_path() == folder.final_model
    assert build_settings(folder) == ("xc7z020clg400-1", 10.0)
    folder.summary.write_text(json.dumps({"status": "running"}))
    with pytest.raises(BuildFolderError, match="is running; build it again"):
        folder.final_model_path()


@pytest.mark.parametrize("patch", load_patches(), ids=lambda p: p.path.name)
def test_every_patch_applies_to_the_installed_finn_rtllib(patch, tmp_path):
    """Each Verilator patch matches every file of finn-rtllib with its name exactly once
    (FINN ships some files, skid.sv, in several folders)."""
    rtllib = _finn_add_multi().parents[1]
    sources = sorted(rtllib.rglob(patch.target))
    assert sources, f"finn-rtllib has no {patch.target}"
    for i, source in enumerate(sources):
        copy = tmp_path / str(i) / patch.target
        copy.parent.mkdir()
        copy.write_text(source.read_text())
        assert apply_patches([copy], [patch]) == [f"{patch.path.name} -> {patch.target}"]
        assert copy.read_text() != source.read_text()
