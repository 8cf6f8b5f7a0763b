"""Every layer costed with a source, and the folding search within a budget, on small graphs."""

from __future__ import annotations

import pytest

from qmlp_brevitas.finn.parts import UnknownPartError, parse_budget, part_capacity

PART = "xczu7ev-ffvc1156-2-e"


@pytest.fixture(scope="module")
def mvau_thresholds(tmp_path_factory):
    from qmlp_brevitas.finn.settings import setup_finn

    setup_finn(tmp_path_factory.mktemp("finn"))
    from qmlp_brevitas.rtlsim.graphs import make_mvau_thresholding_model, specialize

    model = make_mvau_thresholding_model(mw=64, mh=32, simd=1, pe=1, thresholding_pe=1)
    return specialize(model, PART)


def test_part_capacity_and_budget():
    assert part_capacity("xczu7ev-ffvc1156-2-e")["LUT"] == 230_400
    budget = parse_budget("LUT=30000,dsp=100", PART)
    assert budget["LUT"] == 30000 and budget["DSP"] == 100 and budget["BRAM_18K"] == 624
    with pytest.raises(ValueError, match="RESOURCE=NUMBER"):
        parse_budget("LUTS=5", PART)
    with pytest.raises(UnknownPartError, match="--budget"):
        part_capacity("xc9999")


def test_every_layer_has_every_estimate_and_a_source(mvau_thresholds):
    from qonnx.custom_op.registry import getCustomOp

    from qmlp_brevitas.finn.layer_costs import layer_cost, network_costs

    costs = {n.op_type: layer_cost(getCustomOp(n), PART) for n in mvau_thresholds.graph.node}
    mvau, thr = costs["MVAU_rtl"], costs["Thresholding_rtl"]
    # FINN has no LUT estimate for the RTL MVU (returns 0): the project's model fills it in
    assert mvau.sources["LUT"] == "modelled" and mvau.resources["LUT"] > 0
    assert mvau.sources["DSP"] == "finn" and mvau.resources["DSP"] >= 1
    assert thr.sources["LUT"] == "finn" and thr.sources["FF"] == "modelled"
    assert all(c.sources["cycles"] == "finn" and c.cycles > 0 for c in costs.values())
    assert mvau.macs == 4 * 64 * 32
    net = network_costs(mvau_thresholds, PART, 5.0)
    assert net["totals"]["LUT"] == sum(c.resources["LUT"] for c in net["layers"])
    assert net["mac_lanes"] == 1
    assert net["mac_utilisation"] == pytest.approx(4 * 64 * 32 / net["max_cycles"])
    assert 0 < net["part_fraction"]["LUT"] < 1


def test_search_relieves_the_bottleneck_within_budget(mvau_thresholds):
    from qmlp_brevitas.finn.folding_search import legal_values, search_folding
    from qmlp_brevitas.finn.layer_costs import layer_cost

    whole = search_folding(mvau_thresholds, PART, 5.0, parse_budget(None, PART))
    assert whole.max_cycles < 4 * 64 * 32  # started at PE = SIMD = 1
    assert "largest folding" in whole.limited_by
    tight_lut = whole.totals["LUT"] * 0.5
    tight = search_folding(mvau_thresholds, PART, 5.0, parse_budget(f"LUT={tight_lut}", PART))
    assert tight.totals["LUT"] <= tight_lut
    assert tight.estimated_fps < whole.estimated_fps
    assert "would need LUT" in tight.limited_by
    from qonnx.custom_op.registry import getCustomOp

    mvau = getCustomOp(mvau_thresholds.graph.node[0])
    assert legal_values(mvau) == {"SIMD": [1, 2, 4, 8, 16, 32, 64], "PE": [1, 2, 4, 8, 16, 32]}
    assert layer_cost(mvau, PART).folding == {"PE": 1, "SIMD": 1}  # the input is not changed
    with pytest.raises(ValueError, match="smallest folding does not fit"):
        search_folding(mvau_thresholds, PART, 5.0, parse_budget("LUT=10", PART))


def test_bad_budget_is_refused_before_building(tmp_path):
    from qmlp_brevitas.finn.build import BuildRequest, run_budget_build

    export = tmp_path / "export"
    export.mkdir()
    request = BuildRequest(export, tmp_path / "out", target_fps=1000)
    with pytest.raises(ValueError, match="RESOURCE=NUMBER"):
        run_budget_build(request, "LUTS=3")
    assert not (tmp_path / "out").exists()


def test_a_part_of_unknown_capacity_takes_a_budget_that_names_every_resource():
    full = "LUT=50000,FF=100000,BRAM_18K=100,URAM=0,DSP=200"
    budget = parse_budget(full, "xcvu9p-flga2104-2-i")
    assert budget == {"LUT": 50000, "FF": 100000, "BRAM_18K": 100, "URAM": 0, "DSP": 200}
    with pytest.raises(UnknownPartError, match="BRAM_18K=...,URAM=...,DSP=...") as info:
        parse_budget("LUT=50000,DSP=200", "xcvu9p-flga2104-2-i")
    assert info.value.part == "xcvu9p-flga2104-2-i"
    # a known part's capacity fills in, the named resources in the same order as always
    assert list(parse_budget("DSP=5,LUT=7", PART)) == ["LUT", "FF", "BRAM_18K", "URAM", "DSP"]


def test_search_trims_what_the_bottleneck_does_not_need(mvau_thresholds):
    """After relieving the bottleneck, no layer is faster than the result needs: lowering any
    layer by one legal step either slows it past the bottleneck or frees nothing."""
    from qonnx.custom_op.registry import getCustomOp

    from qmlp_brevitas.finn.folding_search import legal_values, search_folding
    from qmlp_brevitas.finn.layer_costs import layer_cost

    budget = parse_budget(None, PART)
    whole = search_folding(mvau_thresholds, PART, 5.0, budget)
    tight = search_folding(mvau_thresholds, PART, 5.0, parse_budget("LUT=1500", PART))
    for result in (whole, tight):
        for node in mvau_thresholds.graph.node:
            inst = getCustomOp(node)
            folding = result.folding.get(node.name, {})
            for attr, value in folding.items():
                inst.set_nodeattr(attr, value)
            base = layer_cost(inst, PART)
            for attr, value in folding.items():
                smaller = [v for v in legal_values(inst)[attr] if v < value]
                if not smaller:
                    continue
                inst.set_nodeattr(attr, smaller[-1])
                lower = layer_cost(inst, PART)
                inst.set_nodeattr(attr, value)
                saved = sum((base.resources[r] - lower.resources[r]) / budget[r] for r in budget)
                assert lower.cycles > result.max_cycles or saved <= 0, (node.name, attr)
            for attr in folding:
                inst.set_nodeattr(attr, 1)
