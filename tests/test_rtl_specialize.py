"""Choosing RTL variants for the layers finn-plus builds with HLS, and FINN's view of them.

No simulator here: which variant ``SpecializeToRTL`` picks, that it keeps the HLS layer's
attributes, that the generic copy executes like FINN's HW op, the cycle and resource estimates,
and that FINN's own analyses see the project's layers under ``run_with_finn_domains``.
"""

from __future__ import annotations

import numpy as np
import pytest
from qonnx.custom_op.registry import getCustomOp

from qmlp_brevitas.finn.generic import generic_hw_copy
from qmlp_brevitas.finn.specialize import (
    FINN_RTL_DOMAIN,
    PROJECT_RTL_DOMAIN,
    SpecializeToRTL,
    run_with_finn_domains,
)
from qmlp_brevitas.rtlsim import graphs
from qmlp_brevitas.rtlsim.node import ensure_finn_settings

HW = "finn.custom_op.fpgadataflow"


@pytest.fixture(autouse=True)
def _finn():
    ensure_finn_settings()


def _execute(model, inputs):
    from finn.core.onnx_exec import execute_onnx

    return execute_onnx(model, inputs, return_full_exec_context=True)


def _finn_hls(model):
    """FINN's own specialisation (the build's step_specialize_layers on a non-Versal part)."""
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

    return model.transform(SpecializeLayers("xczu7ev-ffvc1156-2-e"))


@pytest.mark.parametrize(
    "build,expected",
    [
        (graphs.make_duplicate_streams_model, "DuplicateStreams"),
        (graphs.make_split_model, "StreamingSplit"),
        (graphs.make_concat_model, "StreamingConcat"),
        (graphs.make_global_acc_pool_model, "GlobalAccPool"),
    ],
)
def test_hls_layer_becomes_project_rtl_with_its_attributes(build, expected):
    hls = _finn_hls(build())
    (node,) = hls.graph.node
    assert node.op_type == expected + "_hls"  # what finn-plus picks on an UltraScale+ part
    hls_inst = getCustomOp(node)
    rtl = hls.transform(SpecializeToRTL())
    (new,) = rtl.graph.node
    assert (new.op_type, new.domain) == (expected + "_rtl", PROJECT_RTL_DOMAIN)
    inst = getCustomOp(new)
    for attr in ("PE", "SIMD", "NumChannels", "ChannelsPerStream", "numInputVectors"):
        if attr in inst.get_nodeattr_types():
            assert inst.get_nodeattr(attr) == hls_inst.get_nodeattr(attr), attr
    assert inst.get_instream_width() == hls_inst.get_instream_width()
    assert inst.get_outstream_width() == hls_inst.get_outstream_width()
    # HLS-only attributes are gone
    assert "executable_path" not in {a.name for a in new.attribute}


def test_integer_add_of_one_type_uses_finn_eltwise_core():
    rtl = _finn_hls(graphs.make_eltwise_model(idts=("INT4", "INT4"))).transform(SpecializeToRTL())
    (node,) = rtl.graph.node
    assert (node.op_type, node.domain) == ("ElementwiseAdd_rtl", FINN_RTL_DOMAIN)


def test_add_of_mixed_signedness_stays_hls():
    """finn-plus's eltwise core needs one width and signedness; the project has no other."""
    hls = _finn_hls(graphs.make_eltwise_model(idts=("INT4", "UINT4")))
    (node,) = hls.transform(SpecializeToRTL()).graph.node
    assert node.op_type == "ElementwiseAdd_hls"


def test_preferred_hls_is_kept():
    hw = graphs.make_duplicate_streams_model()
    getCustomOp(hw.graph.node[0]).set_nodeattr("preferred_impl_style", "hls")
    (node,) = hw.transform(SpecializeToRTL()).graph.node
    assert node.domain == HW and node.op_type == "DuplicateStreams"


@pytest.mark.parametrize(
    "build",
    [
        graphs.make_duplicate_streams_model,
        graphs.make_split_model,
        graphs.make_concat_model,
        graphs.make_global_acc_pool_model,
    ],
)
def test_generic_copy_executes_like_finn(build):
    hw = build()
    inputs = graphs.random_inputs(hw, seed=2)
    rtl = graphs.specialize_rtl(hw)
    back = generic_hw_copy(rtl)
    assert [(n.op_type, n.domain) for n in back.graph.node] == [
        (n.op_type, n.domain) for n in hw.graph.node
    ]
    want, got = _execute(hw, inputs), _execute(back, inputs)
    for name in [o.name for o in hw.graph.output]:
        assert np.array_equal(want[name], got[name])


def test_acc_pool_cycles_leave_out_the_hls_write_out():
    hw = graphs.make_global_acc_pool_model(channels=12, pe=3, tokens=(5, 1))
    hls = getCustomOp(_finn_hls(hw).graph.node[0])
    rtl = getCustomOp(graphs.specialize_rtl(hw).graph.node[0])
    assert hls.get_exp_cycles() == 5 * 4 + 4
    assert rtl.get_exp_cycles() == 5 * 4


def test_resource_estimates_of_the_project_layers():
    rtl = graphs.specialize_rtl(graphs.make_concat_model())
    est = getCustomOp(rtl.graph.node[0]).node_res_estimation("xczu7ev-ffvc1156-2-e")
    assert est["LUT"] > 0 and est["FF"] > 0
    assert est["BRAM_18K"] == est["URAM"] == est["DSP"] == 0
    # the concat's multiplexer grows with the word width
    wide = graphs.specialize_rtl(graphs.make_concat_model(simd=4, idts=("INT8",) * 3))
    assert getCustomOp(wide.graph.node[0]).lut_estimation() > est["LUT"]


def test_finn_analyses_see_project_layers_only_in_finn_domains():
    from finn.analysis.fpgadataflow.exp_cycles_per_layer import exp_cycles_per_layer

    model = graphs.specialize_rtl(graphs.make_split_model())
    (node,) = model.graph.node
    assert model.analysis(exp_cycles_per_layer) == {}  # FINN keys RTL layers on its domain

    seen = {}

    def step(m, cfg):
        seen.update(m.analysis(exp_cycles_per_layer))
        return m

    out = run_with_finn_domains(step, model, None)
    assert seen == {node.name: getCustomOp(node).get_exp_cycles()}
    assert out.graph.node[0].domain == PROJECT_RTL_DOMAIN
    assert model.graph.node[0].domain == PROJECT_RTL_DOMAIN


def test_every_core_is_package_data():
    """A non-editable install carries the cores: each is matched by pyproject's package-data."""
    import fnmatch
    import tomllib
    from pathlib import Path

    from qmlp_brevitas.finn.custom_op.rtl import custom_op

    root = Path(__file__).resolve().parents[1]
    globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["qmlp_brevitas.hdl"]
    cores = [cls for cls in custom_op.values() if hasattr(cls, "core_name")]
    assert len(cores) >= 4
    for cls in cores:
        name = f"{cls.core_name}.sv"
        assert (root / "qmlp_brevitas" / "hdl" / name).is_file(), cls.__name__
        assert any(fnmatch.fnmatch(name, g) for g in globs), (cls.__name__, globs)


def _cfg(tmp_path, **kwargs):
    from finn.builder.build_dataflow_config import DataflowBuildConfig, DataflowOutputType

    return DataflowBuildConfig(
        output_dir=str(tmp_path),
        synth_clk_period_ns=5.0,
        fpga_part="xczu7ev-ffvc1156-2-e",
        generate_outputs=[DataflowOutputType.ESTIMATE_REPORTS],
        **kwargs,
    )


@pytest.mark.parametrize("how", ["none", "attribute", "config_file"])
def test_build_steps_keep_a_layer_preferred_as_hls(tmp_path, how):
    """FINN's specialisation drops ``preferred_impl_style``; the build's steps keep it, so a
    layer preferred as HLS stays HLS and the others become RTL."""
    import json

    from qmlp_brevitas.finn.settings import setup_finn

    setup_finn(tmp_path / "finn_tmp")
    from qmlp_brevitas.finn.steps import step_qmlp_specialize_layers, step_qmlp_specialize_rtl

    model = graphs.make_duplicate_streams_model()
    config = None
    if how == "attribute":
        getCustomOp(model.graph.node[0]).set_nodeattr("preferred_impl_style", "hls")
    elif how == "config_file":
        config = tmp_path / "specialize.json"
        config.write_text(json.dumps({"DuplicateStreams_0": {"preferred_impl_style": "hls"}}))
    cfg = _cfg(tmp_path, specialize_layers_config_file=str(config) if config else None)
    model = step_qmlp_specialize_layers(model, cfg)
    assert model.graph.node[0].op_type == "DuplicateStreams_hls"
    model = step_qmlp_specialize_rtl(model, cfg)
    want = "DuplicateStreams_rtl" if how == "none" else "DuplicateStreams_hls"
    assert model.graph.node[0].op_type == want


def test_summary_counts_hls_layers():
    from qmlp_brevitas.finn.report import hls_layers

    rows = [
        {"name": "LayerNorm_hls_0", "op_type": "LayerNorm_hls"},
        {"name": "DuplicateStreams_rtl_0", "op_type": "DuplicateStreams_rtl"},
        {"name": "LayerNorm_hls_1", "op_type": "LayerNorm_hls"},
    ]
    assert hls_layers(rows) == {
        "count": 2,
        "layers": ["LayerNorm_hls_0", "LayerNorm_hls_1"],
        "op_types": {"LayerNorm_hls": 2},
    }
    assert hls_layers(rows[1:2])["count"] == 0
