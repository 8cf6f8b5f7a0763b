"""Yosys (YoWASP, slang front end) synthesises FINN's own RTL MVU, and the counts make sense."""

from __future__ import annotations

import pytest

from qmlp_brevitas.finn.synth import count_resources, primitive_declarations


def test_resource_counting():
    cells = {"LUT2": 3, "LUT6": 2, "LUT6_2": 1, "RAM32M16": 1, "FDRE": 5, "FDSE": 1}
    cells.update({"DSP48E2": 2, "RAMB36E2": 1, "RAMB18E2": 1, "CARRY8": 4})
    assert count_resources(cells) == {"LUT": 14, "FF": 6, "DSP": 2, "BRAM_18K": 3, "URAM": 0}
    text = primitive_declarations()
    assert "module DSP48E2" in text and "module LUT6_2" in text and "specify" not in text


@pytest.mark.slow
@pytest.mark.rtl
def test_mvau_rtl_synthesises(tmp_path):
    from qmlp_brevitas.finn.settings import setup_finn

    setup_finn(tmp_path / "finn")
    from qmlp_brevitas.finn.synth import synthesize_node
    from qmlp_brevitas.rtlsim.graphs import make_mvau_model, specialize

    model = specialize(make_mvau_model(mw=16, mh=8, simd=4, pe=4, vectors=(1, 2)))
    result = synthesize_node(model, model.graph.node[0], tmp_path / "syn", "xczu7ev", 5.0)
    # FINN's DSP estimate for DSP48E2: ceil(PE / 4) * SIMD
    assert result.DSP == 4
    assert result.LUT > 20 and result.FF > 20


def test_mvau_model_matches_recorded_synthesis():
    """The fitted MVAU_rtl model against the Yosys counts it was fitted to."""
    import json
    from pathlib import Path
    from types import SimpleNamespace

    from qonnx.core.datatype import DataType

    from qmlp_brevitas.finn.cost_models import mvau_rtl

    path = Path(__file__).resolve().parents[1] / "docs" / "results" / "synthesis.json"
    records = {k: v for k, v in json.loads(path.read_text()).items() if k.startswith("MVAU")}
    assert len(records) >= 5
    for label, rec in records.items():
        attrs = rec["attributes"]
        inst = SimpleNamespace(
            get_nodeattr=attrs.__getitem__,
            get_output_datatype=lambda a=attrs: DataType[a["accDataType"]],
        )
        model = mvau_rtl(inst)
        assert abs(model["LUT"] - rec["LUT"]) <= 0.31 * rec["LUT"], label
        assert abs(model["FF"] - rec["FF"]) <= 0.2 * rec["FF"], label
