"""The QAT fast path against Brevitas' eager forward: same outputs, same gradients."""

from __future__ import annotations

import copy

import pytest
import torch
from brevitas.core.zero_point import ParameterFromRuntimeZeroPoint
from brevitas.inject.enum import FloatToIntImplType
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear
from brevitas.quant_tensor import IntQuantTensor

from qmlp_brevitas import fast_qat
from qmlp_brevitas.fast_qat import fast_quant, plan_fast_quant
from qmlp_brevitas.int_layernorm import IntLayerNorm
from qmlp_brevitas.models import create_qmlp
from qmlp_brevitas.quant import act_quantizer
from qmlp_brevitas.train import calibrate

# Gradients are sums over whole activations whose float32 rounding differs between the two paths
# (and Brevitas' own differ from a float64 computation by the same order).
GRAD_TOL = dict(rtol=2e-3, atol=1e-7)


def _model(bits: int, name: str = "qmlp_mixer_28", **recipe):
    torch.manual_seed(0)
    model = create_qmlp(name, w_bits=bits, a_bits=bits, depth=2, **recipe)
    x = torch.randn(48, 1, 28, 28)
    calibrate(model, [(x[:24], None), (x[24:], None)], batches=2)
    return model


def _outputs_and_grads(model, x, y):
    model.zero_grad(set_to_none=True)
    out = model(x)
    torch.nn.functional.cross_entropy(out, y).backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return out.detach(), grads


RECIPES = [
    pytest.param(4, dict(), id="W4A4-percentile-asym-intlayernorm"),
    pytest.param(8, dict(), id="W8A8-percentile-asym-intlayernorm"),
    pytest.param(4, dict(norm="layernorm"), id="W4A4-percentile-asym"),
    pytest.param(4, dict(calibration="minmax", asymmetric=False), id="W4A4-minmax-sym"),
    pytest.param(2, dict(calibration="minmax"), id="W2A2-minmax-asym"),
    pytest.param(2, dict(asymmetric=False), id="W2A2-percentile-sym"),
    pytest.param(4, dict(per_channel_weights=False), id="W4A4-per-tensor-weights"),
    pytest.param(8, dict(act="gelu", norm="affine", token_groups=1), id="W8A8-naive-like"),
    pytest.param(4, dict(name="qmlp_resmlp_28"), id="W4A4-resmlp"),
]


@pytest.mark.parametrize(("bits", "recipe"), RECIPES)
def test_fast_path_gives_brevitas_outputs_and_gradients(bits, recipe):
    model = _model(bits, **recipe).train()
    torch.manual_seed(1)
    x, y = torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,))
    eager_out, eager_grads = _outputs_and_grads(model, x, y)
    with fast_quant(model) as report:
        fast_out, fast_grads = _outputs_and_grads(model, x, y)
    acts = [n for n, m in model.named_modules() if isinstance(m, QuantIdentity)]
    layers = [n for n, m in model.named_modules() if isinstance(m, QuantLinear | QuantConv2d)]
    zero_points = [m for m in model.modules() if isinstance(m, ParameterFromRuntimeZeroPoint)]
    # With the integer LayerNorm (the preset's norm) the residual stream's quantizers hand their
    # scale to the norms as a QuantTensor; they, and the norms, take the fast path too.
    residual = [n for n, m in model.named_modules() if getattr(m, "return_quant_tensor", False)]
    norms = [n for n, m in model.named_modules() if isinstance(m, IntLayerNorm)]
    assert bool(residual) == bool(norms) == (model.recipe.norm == "intlayernorm")
    assert report.eager == {}
    assert sorted(report.fast) == sorted(acts + layers + norms)
    assert torch.equal(fast_out, eager_out)
    assert fast_grads.keys() == eager_grads.keys()
    for name, grad in eager_grads.items():
        torch.testing.assert_close(fast_grads[name], grad, **GRAD_TOL, msg=name)
    # Every learned scale and zero point, and every weight, got its gradient.
    names = list(eager_grads)
    assert sum(n.endswith("scaling_impl.value") for n in names) == len(acts)
    assert sum(n.endswith("zero_point_impl.value") for n in names) == len(zero_points)
    assert sum(n.endswith(".weight") and "quant" not in n for n in names) >= len(layers)
    assert len(zero_points) == (0 if recipe.get("asymmetric") is False else len(zero_points))


def test_calibrated_activations_take_the_one_node_path():
    model = _model(4, norm="layernorm").train()
    plans, _ = plan_fast_quant(model)
    acts = [n for n, m in model.named_modules() if isinstance(m, QuantIdentity)]
    act_plans = [p for p in plans.values() if p.learned is not None]
    assert len(act_plans) == len(acts) and all(p.learned.active() for p in act_plans)
    with fast_quant(model):
        out = model(torch.randn(4, 1, 28, 28))
    names = set()
    node, todo = out.grad_fn, [out.grad_fn]
    while todo:
        node = todo.pop()
        names.add(type(node).__name__)
        todo.extend(n for n, _ in node.next_functions if n is not None)
    assert {"LearnedActQuantBackward", "FakeQuantBackward", "ClampMinDivBackward"} <= names
    # No trace of Brevitas' per-op graph (RoundSte, the clamp's where) is left.
    assert not any("RoundSte" in n or n == "WhereBackward0" for n in names)


def test_eval_and_statistics_phase_match_brevitas():
    # Evaluation takes Brevitas' scale path (its evaluation order differs from training's).
    model = _model(4).eval()
    x = torch.randn(16, 1, 28, 28)
    with torch.no_grad():
        eager = model(x)
        with fast_quant(model):
            fast = model(x)
    assert torch.equal(fast, eager)
    # Without calibration the quantizers collect statistics during the first training steps:
    # the fast path uses Brevitas' scale modules then (their state advances the same way).
    torch.manual_seed(0)
    a = create_qmlp("qmlp_mixer_28", w_bits=4, a_bits=4, depth=1).train()
    b = copy.deepcopy(a)
    with fast_quant(b):
        outs_b = [b(x) for _ in range(2)]
    outs_a = [a(x) for _ in range(2)]
    for oa, ob in zip(outs_a, outs_b, strict=True):
        assert torch.equal(oa, ob)


def test_calibration_inside_the_fast_path_is_brevitas_calibration():
    torch.manual_seed(0)
    a = create_qmlp("qmlp_mixer_28", w_bits=4, a_bits=4, depth=1)
    b = copy.deepcopy(a)
    x = torch.randn(16, 1, 28, 28)
    calibrate(a, [(x, None)], batches=1)
    with fast_quant(b):
        calibrate(b, [(x, None)], batches=1)
    for (na, pa), (nb, pb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert na == nb and torch.equal(pa, pb), na


def test_leaving_the_context_restores_brevitas_forward_even_after_an_error():
    model = _model(4)
    with pytest.raises(RuntimeError, match="boom"), fast_quant(model):
        assert "forward" in vars(model.head)
        raise RuntimeError("boom")
    assert not any("forward" in vars(m) for m in model.modules())
    with fast_quant(model, enabled=False) as report:
        assert not report.fast and not any("forward" in vars(m) for m in model.modules())


def test_unsupported_quantizers_stay_on_brevitas_path_with_a_reason():
    floor = act_quantizer(4).let(float_to_int_impl_type=FloatToIntImplType.FLOOR)
    layer = torch.nn.Sequential(
        QuantIdentity(act_quant=floor, return_quant_tensor=False),
        QuantIdentity(act_quant=act_quantizer(4), return_quant_tensor=False),
    )
    calibrate(layer, [(torch.randn(8, 16), None)], batches=1)
    layer.train()
    x = torch.randn(8, 16)
    eager = layer(x)
    with fast_quant(layer) as report:
        fast = layer(x)
    assert report.fast == ["1"] and report.eager == {"0": "rounding FloorSte is not RoundSte"}
    assert torch.equal(fast, eager)


@pytest.mark.parametrize("asymmetric", [False, True], ids=["symmetric", "asymmetric"])
@pytest.mark.parametrize("calibrated", [True, False], ids=["calibrated", "statistics-phase"])
def test_quant_tensor_outputs_are_brevitas_with_their_gradients(asymmetric, calibrated):
    """A quantizer returning a QuantTensor (the residual stream's, for the integer LayerNorm):
    same value, scale, zero point, bit width and sign as Brevitas, and the gradients that flow
    through the returned scale and zero point (a residual add and a loss that uses them)."""
    torch.manual_seed(0)
    quant = QuantIdentity(
        act_quant=act_quantizer(4, asymmetric=asymmetric), return_quant_tensor=True
    )
    if calibrated:
        calibrate(quant, [(torch.randn(8, 16, 32), None)], batches=1)
    quant.train()
    x0, y0 = torch.randn(8, 16, 32), torch.randn(8, 16, 32)
    weights = torch.randn(8, 16, 32)

    def run():
        quant.zero_grad(set_to_none=True)
        x, y = x0.clone().requires_grad_(), y0.clone().requires_grad_()
        first = quant(x)
        total = quant(first) + quant(y)  # a QuantTensor input, then Brevitas' QuantTensor add
        loss = (total.value * weights).sum() + 7 * total.scale.sum() + 3 * first.zero_point.sum()
        loss.backward()
        grads = [x.grad, y.grad] + [p.grad for p in quant.parameters() if p.grad is not None]
        return first, total, grads

    eager_first, eager_total, eager_grads = run()
    with fast_quant(quant) as report:
        fast_first, fast_total, fast_grads = run()
    assert report.fast == [""] and not report.eager
    for fast, eager in ((fast_first, eager_first), (fast_total, eager_total)):
        assert type(fast) is type(eager) is IntQuantTensor
        for field in ("value", "scale", "zero_point", "bit_width"):
            assert torch.equal(getattr(fast, field), getattr(eager, field)), field
        assert fast.signed == eager.signed and fast.training == eager.training
    assert len(fast_grads) == len(eager_grads) == 3 + asymmetric
    for fast, eager in zip(fast_grads, eager_grads, strict=True):
        torch.testing.assert_close(fast, eager, **GRAD_TOL)


def test_in_range_gradient_includes_both_ends_of_the_integer_range():
    r = torch.tensor([-9.0, -8.0, 0.0, 7.0, 8.0])
    grad = fast_qat._in_range_grad(torch.ones(5), r, -8.0, 7.0)
    assert grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]


def test_dot_follows_the_memory_layout():
    a = torch.randn(4, 6, 5).transpose(1, 2)  # dense, not contiguous
    b = torch.randn(4, 6, 5).transpose(1, 2)
    c = torch.randn(4, 5, 6)  # another layout
    torch.testing.assert_close(fast_qat._dot(a, b), (a * b).sum())
    torch.testing.assert_close(fast_qat._dot(a, c), (a * c).sum())
    assert fast_qat.is_dense(a) and not fast_qat.is_dense(torch.randn(4, 6)[:, :3])


def test_bf16_autocast_gives_brevitas_outputs():
    """Under autocast (CUDA training uses bf16) activations are 16-bit; the forward stays exact.

    The learned scales' gradients are sums over the activation: the fast path accumulates them
    in float32, Brevitas in bf16, so only the weights' gradients are compared.
    """
    model = _model(4).train()
    x, y = torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,))

    def run():
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
            loss = torch.nn.functional.cross_entropy(out, y)
        loss.backward()
        return out.detach(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}

    eager_out, eager_grads = run()
    with fast_quant(model):
        fast_out, fast_grads = run()
    assert fast_out.dtype == torch.bfloat16 and torch.equal(fast_out, eager_out)
    assert fast_grads.keys() == eager_grads.keys()
    for name, grad in eager_grads.items():
        assert torch.isfinite(fast_grads[name]).all(), name
        if "quant" not in name:
            tol = 5e-2 * float(grad.abs().max()) + 1e-6
            torch.testing.assert_close(fast_grads[name], grad, rtol=0, atol=tol, msg=name)
