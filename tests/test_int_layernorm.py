"""The integer LayerNorm: its arithmetic, its limits, the Brevitas module and its QONNX export."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from brevitas.quant_tensor import IntQuantTensor

from qmlp_brevitas.export import export_model
from qmlp_brevitas.fast_int_layernorm import int_layernorm_forward
from qmlp_brevitas.int_layernorm import IntLayerNorm
from qmlp_brevitas.intnorm import (
    IntLayerNormError,
    IntLayerNormSpec,
    _float32_split,
    eps_to_int,
    int_layernorm,
    int_layernorm_float,
    rsqrt_bit_serial,
    rsqrt_floor,
)
from tests.conftest import calibrated


def _quant_tensor(ints: torch.Tensor, scale: float, bits: int) -> IntQuantTensor:
    return IntQuantTensor(
        ints.float() * scale,
        torch.tensor(scale),
        torch.tensor(0.0),
        torch.tensor(float(bits)),
        signed=True,
        training=False,
    )


@pytest.mark.parametrize("k", [6, 22, 30])
def test_rsqrt_is_the_hardware_loop_and_exact(k):
    rng = np.random.default_rng(k)
    ns = [0, 1, 2, 3, 4, 63, 64, 65, 1000, (1 << 21) - 1, *rng.integers(1, 1 << 40, 200)]
    r = rsqrt_floor(torch.tensor(ns, dtype=torch.int64), k).tolist()
    for n, value in zip(ns, r, strict=True):
        assert value == rsqrt_bit_serial(int(n), k)
        if n:  # the largest r with r**2 * n <= 4**k, i.e. floor(2**k / sqrt(n))
            assert value * value * int(n) <= 1 << (2 * k) < (value + 1) ** 2 * int(n)
    assert r[0] == (1 << (k + 1)) - 1  # N = 0: every bit set


@pytest.mark.parametrize(("channels", "bits"), [(64, 5), (64, 4), (16, 9), (24, 8), (2, 3)])
def test_integers_are_layernorm_rounded_to_the_fractional_bits(channels, bits):
    spec = IntLayerNormSpec(channels, bits)
    rng = np.random.default_rng(channels + bits)
    x = torch.from_numpy(rng.integers(spec.input_min, spec.input_max + 1, (500, channels)))
    y = int_layernorm(x, spec)
    reference = F.layer_norm(x.double(), (channels,), eps=0.0) * 2**spec.frac_bits
    varying = x.max(-1).values != x.min(-1).values
    error = (y.double() - reference)[varying].abs()
    assert error.max() <= 1.0  # truncated 1/sqrt costs less than half a step, rounding half
    assert (error <= 0.5 + 1e-9).float().mean() > 0.95
    assert (y[~varying] == 0).all()


def test_extreme_tokens_stay_within_the_output_width():
    spec = IntLayerNormSpec(64, 5)
    one_hot = torch.zeros(1, 64, dtype=torch.int64)
    one_hot[0, 3] = spec.input_max
    halves = torch.tensor([[spec.input_min] * 32 + [spec.input_max] * 32])
    constant = torch.full((1, 64), spec.input_min)
    y = int_layernorm(torch.cat([one_hot, halves, constant, -one_hot]), spec)
    assert int(y.abs().max()) <= spec.output_max < 1 << (spec.output_bits - 1)
    assert int(y[0, 3]) == spec.output_max  # a one-hot token reaches sqrt(C-1) * 2**F
    assert (y[2] == 0).all()
    assert spec.output_bits == 12 and spec.rsqrt_bits == 22  # the documented widths, C=64 B=5


def test_integer_eps_follows_the_input_scale():
    channels, scale, eps = 16, 0.05, 0.02
    spec = IntLayerNormSpec(channels, 6, eps_int=eps_to_int(eps, scale, channels))
    assert spec.eps_int == round(channels**2 * eps / scale**2) == 2048
    x = torch.from_numpy(np.random.default_rng(0).integers(-3, 4, (300, channels)))
    reference = F.layer_norm(x.double() * scale, (channels,), eps=eps) * 2**spec.frac_bits
    assert (int_layernorm(x, spec).double() - reference).abs().max() <= 1.0
    without = IntLayerNormSpec(channels, 6)  # eps dropped: visibly different on small tokens
    assert (int_layernorm(x, without).double() - reference).abs().max() > 10


def test_configurations_beyond_the_limits_are_refused_with_layer_and_limit():
    with pytest.raises(IntLayerNormError, match=r"blocks.0.norm1: input width \(bits\) is 17"):
        IntLayerNormSpec(64, 17, layer="blocks.0.norm1")
    with pytest.raises(IntLayerNormError, match=r"norm: inverse-square-root precision.*<= 30"):
        IntLayerNormSpec(768, 9, layer="norm")
    spec = IntLayerNormSpec(8, 4, layer="n")
    with pytest.raises(IntLayerNormError, match=r"n: input range is \[-9, 3\], limit \[-8, 7\]"):
        int_layernorm(torch.tensor([[-9, 3, 0, 0, 0, 0, 0, 0]]), spec)
    err = pytest.raises(IntLayerNormError, IntLayerNormSpec, 1, 4, layer="x").value
    assert (err.layer, err.quantity, err.value) == ("x", "channels", 1)


def test_module_computes_the_integers_and_trains_like_layernorm():
    norm = IntLayerNorm(16).eval()
    norm.record_integers = True
    torch.nn.init.normal_(norm.weight)
    torch.nn.init.normal_(norm.bias)
    ints = torch.from_numpy(np.random.default_rng(1).integers(-16, 16, (2, 5, 16)))
    out = norm(_quant_tensor(ints, 0.3, 5))
    spec = IntLayerNormSpec(16, 5)
    exact = int_layernorm(ints, spec).float() * 2**-spec.frac_bits * norm.weight + norm.bias
    torch.testing.assert_close(out, exact)
    assert torch.equal(norm.last_integers, int_layernorm(ints, spec))

    # straight-through: the gradient is float LayerNorm's
    norm.train()
    value = (ints.float() * 0.3).requires_grad_(True)
    qt = IntQuantTensor(value, torch.tensor(0.3), torch.tensor(0.0), torch.tensor(5.0), True, True)
    norm(qt).pow(2).sum().backward()
    reference = value.detach().clone().requires_grad_(True)
    F.layer_norm(reference, (16,), norm.weight, norm.bias, 1e-6).pow(2).sum().backward()
    assert torch.isfinite(value.grad).all()
    # same direction; magnitudes differ by the rounding of the forward value only
    cosine = F.cosine_similarity(value.grad.flatten(), reference.grad.flatten(), dim=0)
    assert cosine > 0.99

    # a plain tensor (float model, calibration) gets float LayerNorm
    x = torch.randn(3, 16)
    torch.testing.assert_close(norm(x), F.layer_norm(x, (16,), norm.weight, norm.bias, norm.eps))


def test_every_norm_of_the_quantized_model_takes_the_integer_path():
    model = calibrated("qmlp_mixer_28", 4, 4, norm="intlayernorm")
    norms = {n: m for n, m in model.named_modules() if isinstance(m, IntLayerNorm)}
    assert len(norms) == 9 and norms["blocks.0.norm1"].layer_name == "blocks.0.norm1"
    for norm in norms.values():
        norm.record_integers = True
    model(torch.randn(2, 1, 28, 28))
    assert all(m.integer_calls == 1 for m in norms.values())
    first, later = norms["blocks.0.norm1"], norms["blocks.0.norm2"]
    assert first.last_integers is not None and later.last_integers is not None
    # the first norm reads the stem's 4-bit output, every other one a 5-bit residual sum
    stem_scale = float(model.stem.out_quant.act_quant.scale())
    assert first.spec(model.stem.out_quant(torch.randn(1, 16, 64)))[1] == stem_scale
    # float LayerNorm models keep plain tensors on the residual stream
    plain = calibrated("qmlp_mixer_28", 4, 4, norm="layernorm")
    assert not isinstance(plain.stem.out_quant(torch.randn(1, 16, 64)), IntQuantTensor)


def test_export_is_the_qonnx_op_with_the_same_integers(tmp_path):
    from qonnx.core.modelwrapper import ModelWrapper

    model = calibrated("qmlp_mixer_28", 4, 4, norm="intlayernorm", depth=1)
    paths = export_model(model, torch.randn(2, 1, 28, 28), tmp_path)
    record = json.loads((tmp_path / "export.json").read_text())
    assert record["agrees"] and record["int_layernorm"] == {
        "layers": 3,
        "modules": 3,
        "values": 3 * 16 * 64,
        "mismatches": 0,
    }
    graph = ModelWrapper(paths["onnx"])
    nodes = [n for n in graph.graph.node if n.op_type == "IntLayerNorm"]
    assert len(nodes) == 3 and {n.domain for n in nodes} == {"qmlp_brevitas.custom_op"}
    assert not any(n.op_type == "LayerNormalization" for n in graph.graph.node)
    attrs = {a.name: a for a in nodes[1].attribute}
    assert attrs["input_bits"].i == 5 and attrs["frac_bits"].i == 8 and attrs["rsqrt_bits"].i == 22


def _extreme_tokens(spec: IntLayerNormSpec, tokens: int, seed: int) -> torch.Tensor:
    """Random integer tokens plus the extremes: all min, all max, one against the rest,
    alternating, constant (N = 0), zero."""
    lo, hi, c = spec.input_min, spec.input_max, spec.channels
    q = torch.randint(lo, hi + 1, (tokens, c), generator=torch.Generator().manual_seed(seed))
    q[0], q[1], q[2], q[3] = lo, hi, hi, lo
    q[2, 0], q[3, 0] = lo, hi
    q[4, ::2], q[4, 1::2] = lo, hi
    q[5], q[6] = 0, 1
    return q


@pytest.mark.parametrize("eps_int", [0, 1, 37, 5000])
@pytest.mark.parametrize(
    ("channels", "bits"), [(64, 4), (64, 5), (64, 8), (64, 9), (16, 5), (197, 3), (2, 2)]
)
def test_float_integers_are_the_int64_integers(channels, bits, eps_int):
    """The fast path's float32 arithmetic gives exactly int_layernorm's integers (and falls
    back to it where float32 cannot hold every intermediate), in any memory layout."""
    spec = IntLayerNormSpec(channels, bits, eps_int=eps_int)
    q = _extreme_tokens(spec, 400, channels * bits + eps_int)
    expected = int_layernorm(q, spec)
    assert torch.equal(int_layernorm_float(q.float(), spec), expected.float())
    strided = q.float().reshape(20, 20, channels).transpose(0, 1).contiguous().transpose(0, 1)
    out = int_layernorm_float(strided, spec)
    assert torch.equal(out, expected.reshape(20, 20, channels).float())
    # The model's widths (64 channels, 4-bit stem output, 5-bit sums) take the float32 path.
    if (channels, bits) in ((64, 4), (64, 5)):
        assert _float32_split(spec) is not None
    if bits >= 8:
        assert _float32_split(spec) is None


def test_float_integers_refuse_inputs_wider_than_the_spec():
    spec = IntLayerNormSpec(64, 5, layer="blocks.0.norm1")
    q = torch.zeros(3, 64)
    q[1, 7] = 16.0
    with pytest.raises(IntLayerNormError, match="blocks.0.norm1: input range"):
        int_layernorm_float(q, spec)


def _norm_inputs(bits: int, eps: float, dtype=torch.float32):
    """A trained-looking norm and a channels-strided IntQuantTensor input (the residual
    stream's layout) with a constant token (the variance clamp) among random ones."""
    torch.manual_seed(bits)
    norm = IntLayerNorm(64, eps=eps).to(dtype)
    with torch.no_grad():
        norm.weight.normal_(1.0, 0.3)
        norm.bias.normal_(0.0, 0.3)
    m = 1 << (bits - 1)
    ints = torch.randint(-m, m, (6, 64, 16)).transpose(1, 2)  # (6, 16, 64), channels strided
    ints[0, 0] = 3
    scale = torch.tensor(0.37, dtype=dtype)
    return norm, (ints.to(dtype) * scale), scale


def _run_norm(norm, value, scale, bits, fast):
    norm.zero_grad(set_to_none=True)
    value = value.detach().clone().requires_grad_()
    scale = scale.detach().clone().requires_grad_()
    x = IntQuantTensor(value, scale, torch.tensor(0.0), torch.tensor(float(bits)), True, True)
    norm.record_integers = True
    out = int_layernorm_forward(norm, x) if fast else norm(x)
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(7)).to(out.dtype)
    (out * grad).sum().backward()
    grads = [g.clone() for g in (value.grad, scale.grad, norm.weight.grad, norm.bias.grad)]
    return out.detach(), norm.last_integers, grads


@pytest.mark.parametrize("bits", [5, 9], ids=["W4A4-sum", "W8A8-sum"])
@pytest.mark.parametrize("large_eps", [False, True], ids=["eps-below-grid", "eps-on-grid"])
def test_fast_norm_is_the_module_forward_with_its_gradients(bits, large_eps):
    """IntLayerNormSte against the module's autograd graph: identical output, integers and
    output layout; the same gradients of the input, its scale, weight and bias."""
    # The model's eps is below the integer grid (E = 0); a large one (E about 30% of the
    # typical C**2 * variance) makes the scale's gradient through the norm non-zero.
    eps = 0.1 * (1 << (bits - 1)) ** 2 * 0.37**2 if large_eps else 1e-6
    norm, value, scale = _norm_inputs(bits, eps)
    spec, _ = norm.spec(_quant_tensor(torch.zeros(1, 64), 0.37, bits))
    assert (spec.eps_int > 0) == large_eps
    eager_out, eager_ints, eager_grads = _run_norm(norm, value, scale, bits, fast=False)
    calls = norm.integer_calls
    fast_out, fast_ints, fast_grads = _run_norm(norm, value, scale, bits, fast=True)
    assert norm.integer_calls == calls + 1
    assert torch.equal(fast_out, eager_out) and fast_out.stride() == eager_out.stride()
    assert torch.equal(fast_ints, eager_ints)
    # The reference: the module's graph in float64 (the same integers, no float32 rounding).
    reference = copy.deepcopy(norm).double()
    _, ref_ints, ref_grads = _run_norm(reference, value.double(), scale.double(), bits, False)
    assert torch.equal(ref_ints, eager_ints)
    names = ("input", "scale", "weight", "bias")
    for name, fast, eager, ref in zip(names, fast_grads, eager_grads, ref_grads, strict=True):
        torch.testing.assert_close(fast, eager, rtol=2e-3, atol=1e-3, msg=name)
        # The scale's gradient is a sum of terms of both signs over the whole input: compare
        # it, with float32 rounding of that sum as tolerance, to the float64 graph.
        bound = 1e-6 * float((ref_grads[0] * value.double()).abs().sum() / scale)
        tol = dict(rtol=1e-4, atol=bound if name == "scale" else 1e-4)
        torch.testing.assert_close(fast.double(), ref, **tol, msg=name)
        torch.testing.assert_close(eager.double(), ref, **tol, msg=name)
    assert float(ref_grads[1].abs()) > (100 * bound if large_eps else 0.0)


def test_fast_norm_under_bf16_autocast_gives_the_module_output():
    norm, value, scale = _norm_inputs(5, 1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = value.to(torch.bfloat16)
        eager = _run_norm(norm, value, scale, 5, fast=False)
        fast = _run_norm(norm, value, scale, 5, fast=True)
    assert torch.equal(fast[0], eager[0]) and fast[0].dtype == eager[0].dtype
    assert torch.equal(fast[1], eager[1])
