"""The folding search counts what the build inserts for its folding (width converters, bypass
FIFOs), and a build over budget is searched again within a tighter budget until it fits."""

from __future__ import annotations

import copy

import pytest

from qmlp_brevitas.finn.parts import parse_budget

PART = "xczu7ev-ffvc1156-2-e"


@pytest.fixture(scope="module")
def fork_join(tmp_path_factory):
    """``DuplicateStreams`` into both inputs of an ``ElementwiseAdd``: a residual's fork and
    join, whose PE the search raises one at a time (a DWC on each input while they differ)
    and whose bypass FIFO follows the join's folding."""
    from qmlp_brevitas.finn.settings import setup_finn

    setup_finn(tmp_path_factory.mktemp("finn"))
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers
    from qonnx.transformation.general import GiveUniqueNodeNames

    from qmlp_brevitas.rtlsim.graphs import make_fork_join_model

    model = make_fork_join_model(channels=64, pe=1, vectors=(1, 16), idt="INT4")
    return model.transform(SpecializeLayers(PART)).transform(GiveUniqueNodeNames())


def _folded(model, folding):
    from qonnx.custom_op.registry import getCustomOp

    model = copy.deepcopy(model)
    for node in model.graph.node:
        for attr, value in folding.get(node.name, {}).items():
            getCustomOp(node).set_nodeattr(attr, value)
    return model


def _costed_build(model, unmodelled_lut):
    """A stand-in for the confirming build: the network's costs of the searched folding (what
    the build's summary reports) plus ``unmodelled_lut(round)`` LUTs the search cannot see."""
    from qmlp_brevitas.finn.layer_costs import network_costs

    calls = []

    def build(result):
        calls.append(result)
        net = network_costs(_folded(model, result.folding), PART, 5.0)
        totals = dict(net["totals"])
        totals["LUT"] += unmodelled_lut(len(calls))
        return {"totals": totals, "estimated_fps": net["estimated_fps"]}

    return build, calls


def test_search_totals_are_the_built_foldings_totals_with_converters_and_fifos(fork_join):
    from qmlp_brevitas.finn.folding_search import search_folding
    from qmlp_brevitas.finn.layer_costs import network_costs

    for text in (None, "LUT=250", "LUT=160"):
        found = search_folding(fork_join, PART, 5.0, parse_budget(text, PART))
        net = network_costs(_folded(fork_join, found.folding), PART, 5.0)
        assert found.totals == pytest.approx(net["totals"]), text
        assert found.inserted["LUT"] == pytest.approx(
            sum(c.resources["LUT"] for c in net["inserted"])
        )
        assert found.max_cycles == net["max_cycles"]
        assert found.totals["LUT"] <= parse_budget(text, PART)["LUT"]
    # The fork at PE 16 feeding the join at PE 8 needs a DWC on each of the join's inputs ...
    mixed = network_costs(_folded(fork_join, {"DuplicateStreams_hls_0": {"PE": 16}}), PART, 5.0)
    mixed_kinds = sorted(c.op_type for c in mixed["inserted"])
    assert mixed_kinds == ["StreamingDataWidthConverter"] * 2 + ["StreamingFIFO"]
    # ... which the greedy relief within 250 LUT reaches (fork raised to 16, the join then
    # stuck at 8); the trim lowers the fork back to the join's 128 cycles, converters gone
    within = search_folding(fork_join, PART, 5.0, parse_budget("LUT=250", PART))
    assert within.trimmed == 1 and within.max_cycles == 128
    assert within.folding == {
        "DuplicateStreams_hls_0": {"PE": 8},
        "ElementwiseAdd_hls_0": {"PE": 8},
    }
    net = network_costs(_folded(fork_join, within.folding), PART, 5.0)
    assert sorted(c.op_type for c in net["inserted"]) == ["StreamingFIFO"]
    # the bypass FIFO's cost follows the join's folding (not the first build's)
    whole = search_folding(fork_join, PART, 5.0, parse_budget(None, PART))
    assert whole.inserted["LUT"] != within.inserted["LUT"]


def test_a_build_over_budget_is_searched_again_within_a_tighter_budget(fork_join):
    from qmlp_brevitas.finn.folding_search import search_and_confirm, search_folding

    budget = parse_budget("LUT=250", PART)
    build, calls = _costed_build(fork_join, lambda _: 100.0)
    messages = []
    result, summary, rounds = search_and_confirm(
        lambda b: search_folding(fork_join, PART, 5.0, b), build, budget, log=messages.append
    )
    assert len(rounds) == len(calls) == 2
    first, second = rounds
    assert not first["fits"] and first["built_totals"]["LUT"] > 250
    assert first["built_totals"]["LUT"] == pytest.approx(first["search_totals"]["LUT"] + 100)
    # the second search's budget lost what the first build cost beyond its estimate
    assert second["search_budget"]["LUT"] == pytest.approx(250 - 100)
    assert second["fits"] and summary["totals"]["LUT"] <= 250
    assert result is calls[-1] and result.totals["LUT"] <= 150
    assert second["search_estimated_fps"] <= first["search_estimated_fps"]
    assert "searching again within LUT 150" in messages[0]


def test_a_build_that_stays_over_budget_fails_after_the_last_round(fork_join):
    from qmlp_brevitas.finn.folding_search import (
        BudgetNotMetError,
        search_and_confirm,
        search_folding,
    )

    budget = parse_budget("LUT=250", PART)
    build, calls = _costed_build(fork_join, lambda n: 90.0 * n)  # worse each build
    with pytest.raises(BudgetNotMetError, match="exceeds the budget after 2 searches: LUT") as info:
        search_and_confirm(lambda b: search_folding(fork_join, PART, 5.0, b), build, budget, 2)
    assert len(info.value.rounds) == len(calls) == 2
    assert not any(r["fits"] for r in info.value.rounds)
    assert info.value.over == ["LUT"] and info.value.summary["totals"]["LUT"] > 250
    budgets = [r["search_budget"]["LUT"] for r in info.value.rounds]
    assert budgets[1] < budgets[0] == 250
