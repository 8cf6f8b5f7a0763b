"""The project's RTL layers in Verilator, bit-exact against FINN's Python execution of the layer.

Each layer kind that finn-plus has only as HLS (and the integer elementwise add, whose finn-plus
RTL core finn-plus itself uses only on Versal) is built as a small FINN HW node, turned into its
RTL variant by the project's ``SpecializeToRTL``, and streamed with random inputs at full rate
and with random TVALID gaps and TREADY back-pressure on every input and output. Every output word
is compared with FINN's execution of the generic HW node, and the full-rate cycles per frame
with the layer's ``get_exp_cycles``.
"""

from __future__ import annotations

import numpy as np
import pytest

from qmlp_brevitas.rtlsim import graphs
from qmlp_brevitas.rtlsim.layer import BACKPRESSURE, FULL_RATE, prepare_layer, run_layer
from qmlp_brevitas.rtlsim.reference import execution_context

pytestmark = pytest.mark.rtl

PROJECT_RTL = "qmlp_brevitas.finn.custom_op.rtl"
FINN_RTL = "finn.custom_op.fpgadataflow.rtl"

# (graph builder, its keyword arguments, expected RTL op type and domain)
LAYERS = {
    "duplicate_3_outputs": (
        graphs.make_duplicate_streams_model,
        dict(channels=12, pe=3, vectors=(1, 5), idt="INT5", outputs=3),
        ("DuplicateStreams_rtl", PROJECT_RTL),
    ),
    "split_uneven": (
        graphs.make_split_model,
        dict(channels=(8, 4, 12), simd=4, vectors=(1, 3), idt="UINT4"),
        ("StreamingSplit_rtl", PROJECT_RTL),
    ),
    "concat_mixed_types": (
        graphs.make_concat_model,
        dict(channels=(8, 4, 12), simd=4, vectors=(1, 3), idts=("INT4", "UINT3", "INT6")),
        ("StreamingConcat_rtl", PROJECT_RTL),
    ),
    "acc_pool_signed": (
        graphs.make_global_acc_pool_model,
        dict(channels=12, pe=3, tokens=(5, 1), idt="INT4"),
        ("GlobalAccPool_rtl", PROJECT_RTL),
    ),
    "acc_pool_unsigned_pe1": (
        graphs.make_global_acc_pool_model,
        dict(channels=4, pe=1, tokens=(3, 2), idt="UINT4"),
        ("GlobalAccPool_rtl", PROJECT_RTL),
    ),
    "add_finn_eltwise": (
        graphs.make_eltwise_model,
        dict(op="ElementwiseAdd", channels=12, pe=3, vectors=(1, 5), idts=("INT4", "INT4")),
        ("ElementwiseAdd_rtl", FINN_RTL),
    ),
    "mul_finn_eltwise": (
        graphs.make_eltwise_model,
        dict(op="ElementwiseMul", channels=8, pe=2, vectors=(1, 3), idts=("INT4", "INT4")),
        ("ElementwiseMul_rtl", FINN_RTL),
    ),
}


@pytest.fixture(scope="session")
def rtl_cache(tmp_path_factory):
    """Compiled simulators shared by all tests of the session."""
    path = tmp_path_factory.getbasetemp() / "rtlsim_cache"
    path.mkdir(exist_ok=True)
    return path


def _layer(key: str, seed: int = 0):
    build, kwargs, expected = LAYERS[key]
    hw = build(**kwargs)
    inputs = graphs.random_inputs(hw, seed=seed)
    context = execution_context(hw, inputs)
    model = graphs.specialize_rtl(hw)
    (node,) = model.graph.node
    assert (node.op_type, node.domain) == expected
    return model, node, context


@pytest.mark.parametrize("key", list(LAYERS))
def test_rtl_layer_matches_finn_with_and_without_backpressure(key, rtl_cache, tmp_path):
    model, node, context = _layer(key)
    prepared = prepare_layer(model, node.name, tmp_path)
    assert not prepared.result.reason, prepared.result.reason
    inputs = {t: context[t] for t in node.input}
    reference = {t: context[t] for t in node.output}
    res = run_layer(prepared, inputs, reference, rtl_cache, (FULL_RATE, BACKPRESSURE), frames=2)
    assert res.status == "pass", res.modes
    full, bp = res.modes
    inst = prepared.inst
    words = sum(int(np.prod(inst.get_folded_output_shape(i)[:-1])) for i in range(len(node.output)))
    assert full.words_checked == bp.words_checked == 2 * words
    assert not full.timed_out and not bp.timed_out
    # one word per cycle at full rate, as the layer's cycle estimate says
    assert full.cycles_per_frame == res.exp_cycles
    # the random gaps and back-pressure really slowed the streams
    assert bp.cycles > full.cycles


def test_concat_with_wrong_folds_fails(rtl_cache, tmp_path):
    """The check sees a core configured with the wrong channel split (words of one input
    handed out as another's)."""
    model, node, context = _layer("concat_mixed_types")
    prepared = prepare_layer(model, node.name, tmp_path)
    top = next(p for p in prepared.sources if p.suffix == ".v")
    text = top.read_text()
    good = ".FOLDS({32'd3, 32'd1, 32'd2})"
    assert good in text
    top.write_text(text.replace(good, ".FOLDS({32'd3, 32'd2, 32'd1})"))
    inputs = {t: context[t] for t in node.input}
    reference = {t: context[t] for t in node.output}
    res = run_layer(prepared, inputs, reference, rtl_cache, (FULL_RATE,), frames=1)
    assert res.status == "fail"
    assert res.mismatches > 0
