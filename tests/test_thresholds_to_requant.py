"""Evenly spaced thresholds become FINN's Requant layer only where equal on every integer."""

from __future__ import annotations

import numpy as np
import pytest
from qonnx.core.onnx_exec import execute_onnx

PART = "xczu7ev-ffvc1156-2-e"


@pytest.fixture(scope="module")
def finn(tmp_path_factory):
    from qmlp_brevitas.finn.settings import setup_finn

    setup_finn(tmp_path_factory.mktemp("finn"))
    from qmlp_brevitas.finn.generic import register_hw_ops

    register_hw_ops()


IDT_BITS = 16  # the RTL Requant needs room for its bias: wide inputs, like accumulators


def _thresholds_model(thresholds, odt="INT8"):
    from qmlp_brevitas.rtlsim.graphs import make_thresholding_model

    channels = thresholds.shape[0]
    model = make_thresholding_model(
        channels=channels, pe=1, vectors=(1, 2**IDT_BITS), idt=f"INT{IDT_BITS}", odt=odt
    )
    model.set_initializer("thresh", thresholds.astype(np.float32))
    return model


def _uniform(channels=4, levels=255, seed=0):
    """ceil of evenly spaced real thresholds with a per-channel step and start."""
    rng = np.random.default_rng(seed)
    step = rng.uniform(95.3, 120.7, size=(channels, 1))
    start = rng.uniform(-15000, -13000, size=(channels, 1))
    return np.ceil(start + step * np.arange(levels)[None, :])


def _every_input(model):
    """The layer's output for every value of its input type, in every channel."""
    values = np.arange(-(2 ** (IDT_BITS - 1)), 2 ** (IDT_BITS - 1), dtype=np.float32)
    channels = model.get_tensor_shape("inp")[-1]
    x = np.repeat(values[:, None], channels, axis=1)[None]
    return execute_onnx(model, {"inp": x})["outp"]


def test_uniform_thresholds_become_an_equal_requant(finn):
    from qmlp_brevitas.finn.transforms import ThresholdsToRequant

    model = _thresholds_model(_uniform())
    expected = _every_input(model)
    new = model.transform(ThresholdsToRequant(8, PART))
    assert [n.op_type for n in new.graph.node] == ["Requant"]
    np.testing.assert_array_equal(_every_input(new), expected)  # all 65,536 INT16 inputs
    assert len(np.unique(expected)) == 256


def test_uneven_or_narrow_thresholds_stay(finn):
    from qmlp_brevitas.finn.transforms import ThresholdsToRequant

    uneven = _uniform()
    uneven[1, 100] += 2  # one boundary two steps off the line
    four_bit = _uniform(levels=15)
    for model in (_thresholds_model(uneven), _thresholds_model(four_bit, odt="INT4")):
        new = model.transform(ThresholdsToRequant(8, PART))
        assert [n.op_type for n in new.graph.node] == ["Thresholding"]


def test_fit_and_check_functions():
    from qonnx.core.datatype import DataType

    from qmlp_brevitas.finn.transforms.thresholds_to_requant import fit_requant, requant_matches

    t = _uniform(channels=3)
    scale, bias = fit_requant(t, -(2**15), 2**15 - 1)
    bias = bias - 128
    i16, i8 = DataType["INT16"], DataType["INT8"]
    assert requant_matches(t, -128, i16, i8, scale, bias, None)
    assert not requant_matches(t, -128, i16, i8, scale, bias + 1, None)
