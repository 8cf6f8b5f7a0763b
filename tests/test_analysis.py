"""Activation-range analysis: quantization points, recorded statistics, LayerNorm's effect."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from qmlp_brevitas import analysis
from qmlp_brevitas.analysis import (
    POST_NORM_KINDS,
    _RangeRecorder,
    float_variants,
    load_run,
    quant_points,
    record_ranges,
    widest,
)
from qmlp_brevitas.cli.ranges import main as ranges_main
from qmlp_brevitas.data import build_dataset, make_loader, subset
from qmlp_brevitas.errors import RunFolderError
from qmlp_brevitas.models import create_qmlp
from qmlp_brevitas.train import TrainConfig, train

TINY = dict(embed_dim=16, depth=2)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("data"))


@pytest.mark.parametrize("name", ["qmlp_mixer_28", "qmlp_resmlp_28"])
def test_float_and_quantized_models_have_the_same_points(name):
    float_points = quant_points(create_qmlp(name, **TINY))
    quant = quant_points(create_qmlp(name, w_bits=4, a_bits=4, **TINY))
    assert list(float_points) == list(quant)
    assert all(isinstance(m, nn.Identity) for m in float_points.values())
    assert "other" not in {analysis.kind_of(n) for n in float_points}
    assert not any(n.endswith(("ls1", "ls2")) or "norm" in n for n in float_points)
    groups = 2  # the qmlp preset's token-mixing MLPs: one quantizer each
    assert sum(".token_mixing.quants." in n for n in float_points) == groups * TINY["depth"]


def test_quant_points_of_a_foreign_model_is_an_error():
    with pytest.raises(ValueError, match="no quantization points"):
        quant_points(nn.Sequential(nn.Linear(2, 2)))


def test_recorder_percentiles_match_numpy():
    torch.manual_seed(0)
    rec = _RangeRecorder(99.0)
    xs = [torch.randn(20_000) * 2 + 0.5 for _ in range(3)]
    for x in xs:
        rec(None, (x,))
    r = rec.result("p")
    arrays = [x.numpy() for x in xs]
    assert r.min == pytest.approx(min(a.min() for a in arrays))
    assert r.max == pytest.approx(max(a.max() for a in arrays))
    expect_abs = np.mean([np.percentile(np.abs(a), 99.0) for a in arrays])
    expect_low = np.mean([np.percentile(a, 1.0) for a in arrays])
    assert r.abs_pct == pytest.approx(expect_abs, rel=1e-3)
    assert r.low_pct == pytest.approx(expect_low, rel=1e-3)
    assert r.calls == 3 and r.numel == 60_000


def test_ranges_are_finite_and_ordered_per_layer():
    torch.manual_seed(0)
    model = create_qmlp("qmlp_mixer_28", preset="naive", **TINY)
    batches = [torch.randn(8, 1, 28, 28) for _ in range(2)]
    ranges = record_ranges(model, batches)
    assert list(ranges) == list(quant_points(model))
    for r in ranges.values():
        assert r.finite
        assert r.min <= r.low_pct <= r.high_pct <= r.max
        assert 0 < r.abs_pct <= r.abs_max
    # Both operands of a residual add pass its one shared quantizer.
    assert ranges["blocks.0.add1.quant"].calls == 2 * ranges["stem.out_quant"].calls == 4
    with pytest.raises(ValueError, match="no batches"):
        record_ranges(model, [])


def _train_float(tmp_path, data_dir, norm: str) -> str:
    out = tmp_path / f"float-{norm}"
    cfg = TrainConfig(
        data_dir=data_dir,
        w_bits=None,
        a_bits=None,
        preset="naive",
        recipe={"norm": norm},
        epochs=1,
        batch_size=64,
        train_limit=640,
        test_limit=128,
        seed=0,
        out=str(out),
    )
    train(cfg, log=lambda _: None)
    return str(out)


@pytest.mark.slow
def test_layernorm_narrows_the_ranges_of_a_trained_model(tmp_path, data_dir):
    runs = {norm: _train_float(tmp_path, data_dir, norm) for norm in ("affine", "layernorm")}
    test = subset(build_dataset("fashion_mnist", data_dir, train=False), 256)
    batches = [x for x, _ in make_loader(test, 128, train=False)]
    ranges = {norm: record_ranges(load_run(run)[1], batches) for norm, run in runs.items()}
    for r in ranges.values():
        assert all(x.finite for x in r.values())
    # Same seed, data and budget; only the norm differs. The inputs of the token and channel
    # MLPs and of the head (the outputs of the norms) are narrower with LayerNorm.
    assert widest(ranges["layernorm"]) < widest(ranges["affine"])
    for kind in POST_NORM_KINDS:
        pct = {n: max(x.abs_pct for x in r.values() if x.kind == kind) for n, r in ranges.items()}
        assert pct["layernorm"] < pct["affine"], kind

    out = tmp_path / "report"
    argv = ["--run", runs["affine"], "--run", runs["layernorm"], "--batches", "1"]
    assert ranges_main([*argv, "--out", str(out)]) == 0
    table = (out / "ranges.md").read_text()
    assert "float-affine: affine + gelu (float)" in table
    assert "float-layernorm: layernorm + gelu (float)" in table
    assert (out / "ranges.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_on_untrained_variants_writes_plot_table_and_json(tmp_path, data_dir):
    out = tmp_path / "ranges"
    argv = ["--model", "qmlp_resmlp_28", "--batches", "1", "--batch-size", "16"]
    argv += ["--data-dir", data_dir, "--out", str(out)]
    assert ranges_main(argv) == 0
    table = (out / "ranges.md").read_text()
    labels = ["affine + gelu", "affine + relu6", "layernorm + gelu", "layernorm + relu6"]
    assert all(label in table for label in labels)
    assert "| residual stream |" in table
    data = json.loads((out / "ranges.json").read_text())
    assert sorted(data) == sorted(labels)
    assert all(math.isfinite(r["abs_max"]) for rs in data.values() for r in rs)
    assert (out / "ranges.png").read_bytes()[:4] == b"\x89PNG"


def test_run_names_are_short_and_distinct():
    names = analysis.run_names(["/r/w4a4/naive/seed0", "/r/w8a8/naive/seed0", "/r/float/x"])
    assert names == ["w4a4/naive/seed0", "w8a8/naive/seed0", "r/float/x"]
    with pytest.raises(ValueError, match="twice"):
        analysis.run_names(["/r/a", "/r/a/"])


def test_points_of_models_with_more_token_groups_are_merged_in_order():
    torch.manual_seed(0)
    batches = [torch.randn(4, 1, 28, 28)]
    one = record_ranges(create_qmlp("qmlp_mixer_28", token_groups=1, **TINY), batches)
    two = record_ranges(create_qmlp("qmlp_mixer_28", token_groups=2, **TINY), batches)
    merged = analysis.merged_names({"one": one, "two": two})
    assert set(merged) == set(one) | set(two) and len(merged) == len(two)
    assert merged == list(two)  # network order of the model that has every point


def test_checkpoint_needs_one_variant():
    with pytest.raises(ValueError, match="exactly one"):
        float_variants("qmlp_mixer_28", checkpoint="x.pt")
    with pytest.raises(RunFolderError, match="must be a training run folder"):
        load_run("/nonexistent/run")
