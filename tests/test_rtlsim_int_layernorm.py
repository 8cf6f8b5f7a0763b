"""The integer LayerNorm's SystemVerilog (qmlp_brevitas/hdl) in Verilator, bit-exact against its
Python execution on random streams, at full rate and with random bubbles and back-pressure.

Configurations cover several words per token (the iterative square root), one and two words
per token (the square root unrolled), channels that are not a power of two, unsigned input and
a non-zero integer epsilon. A layer built with a wrong shift must fail the comparison.
"""

from __future__ import annotations

import pytest
from qonnx.custom_op.registry import getCustomOp

from qmlp_brevitas.rtlsim import graphs
from qmlp_brevitas.rtlsim.layer import simulate_layer
from qmlp_brevitas.rtlsim.reference import execution_context

pytestmark = pytest.mark.rtl

# (channels, SIMD, tokens, input type, eps_int)
CONFIGS = [
    (24, 3, 5, "INT4", 300),  # 8 words per token, 1 square-root bit per clock
    (16, 8, 7, "UINT4", 5),  # 2 words per token
    (16, 16, 7, "INT8", 0),  # 1 word per token: every square-root bit in one clock
]


@pytest.fixture(scope="module")
def rtl_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("rtlsim_cache")


def _simulate(tmp_path, cache, channels, simd, tokens, idt, eps, seed=3):
    model = graphs.specialize(
        graphs.make_int_layernorm_model(channels, simd, (1, tokens), idt, eps_int=eps)
    )
    node = model.graph.node[0]
    assert node.op_type == "IntLayerNorm_rtl"
    inputs = graphs.random_input(model, seed=seed)
    context = execution_context(model, inputs)
    reference = {node.output[0]: context[node.output[0]]}
    result = simulate_layer(model, node.name, inputs, reference, tmp_path / "work", cache)
    return result, getCustomOp(node)


@pytest.mark.parametrize(("channels", "simd", "tokens", "idt", "eps"), CONFIGS)
def test_matches_python_execution_with_and_without_backpressure(
    tmp_path, rtl_cache, channels, simd, tokens, idt, eps
):
    result, inst = _simulate(tmp_path, rtl_cache, channels, simd, tokens, idt, eps)
    assert result.status == "pass", result.reason or result.modes
    assert [m.mode for m in result.modes] == ["full_rate", "backpressure"]
    words = 2 * tokens * channels // simd  # two frames
    assert all(m.words_checked == words and m.mismatches == 0 for m in result.modes)
    assert not any(m.timed_out for m in result.modes)
    # at full rate a frame takes the modelled T * interval clocks
    assert result.cycles_per_frame == inst.get_exp_cycles() == tokens * inst.timing().interval
    assert result.modes[0].latency_cycles > result.cycles_per_frame  # pipeline latency


def test_a_wrong_shift_is_caught(tmp_path, rtl_cache, monkeypatch):
    from qmlp_brevitas.finn.custom_op.rtl.int_layernorm_rtl import IntLayerNorm_rtl

    values = IntLayerNorm_rtl.template_values
    monkeypatch.setattr(
        IntLayerNorm_rtl,
        "template_values",
        lambda self: {**values(self), "SHIFT": values(self)["SHIFT"] + 1},
    )
    result, _ = _simulate(tmp_path, rtl_cache, 16, 4, 3, "INT5", 0)
    assert result.status == "fail" and result.mismatches > 0
