"""The Q-MLP ablation: row plan, aggregation, resume, reports, and the --quick pipeline."""

from __future__ import annotations

import csv
import json
import math
import statistics
from dataclasses import replace
from pathlib import Path

import pytest

from qmlp_brevitas import ablation
from qmlp_brevitas.ablation import (
    AblationConfig,
    AblationRow,
    RowResult,
    ablation_rows,
    delta_note,
    effective_settings,
    estimate_seconds,
    run_ablation,
    run_one,
    time_training,
)
from qmlp_brevitas.cli.ablation import main as ablation_main
from qmlp_brevitas.quant import BitWidthError
from qmlp_brevitas.recipe import PRESETS, make_recipe


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("data"))


def test_rows_add_one_technique_at_a_time():
    rows = ablation_rows()
    assert [r.key for r in rows] == [
        "float",
        "naive",
        "layernorm",
        "bounded",
        "percentile",
        "token_groups",
        "asymmetric",
        "int_layernorm",
    ]
    assert not rows[0].quantized and all(r.quantized for r in rows[1:])
    recipes = [make_recipe("naive", **r.overrides).to_dict() for r in rows[1:]]
    assert recipes[0] == make_recipe("naive").to_dict()
    for before, after in zip(recipes, recipes[1:], strict=False):
        changed = [k for k in after if after[k] != before[k]]
        assert len(changed) == 1, changed
        expected = "layernorm" if after is recipes[1] else PRESETS["qmlp"][changed[0]]
        assert after[changed[0]] == expected  # the paper's float LayerNorm first
    assert make_recipe("naive", **rows[-1].overrides) == make_recipe("qmlp")


def test_layernorm_row_is_the_naive_model_for_mixer_but_not_resmlp():
    rows = {r.key: r for r in ablation_rows()}
    for model, same in (("qmlp_mixer_28", True), ("qmlp_resmlp_28", False)):
        cfg = AblationConfig(model=model)
        naive = effective_settings(cfg, rows["naive"], 4)
        with_ln = effective_settings(cfg, rows["layernorm"], 4)
        assert (naive == with_ln) is same
        assert effective_settings(cfg, rows["bounded"], 4) != with_ln


def test_config_rejects_bad_input():
    with pytest.raises(BitWidthError, match="from 2 to 8"):
        AblationConfig(bits=(4, 9))
    with pytest.raises(ValueError, match="distinct"):
        AblationConfig(seeds=(0, 0))
    with pytest.raises(ValueError, match="unknown model"):
        AblationConfig(model="mixer_tiny")
    with pytest.raises(ValueError, match="at least one bit width"):
        AblationConfig(bits=())
    # The shared training recipe is refused before any run, by TrainConfig's checks.
    with pytest.raises(ValueError, match="random_crop must be >= 0"):
        AblationConfig(random_crop=-1)
    with pytest.raises(ValueError, match="learning rate"):
        AblationConfig(lr=0)


def _result(key: str, accs: list[float], same_as: str | None = None) -> RowResult:
    row = AblationRow(key, key)
    metrics = [{"model_size_mb": 0.1, "train_seconds": 1.0} for _ in accs]
    return RowResult(row, 4, list(range(len(accs))), accs, metrics, [], same_as)


def test_mean_spread_and_delta_flags():
    a = _result("a", [0.80, 0.82, 0.84])
    assert a.mean == pytest.approx(statistics.fmean(a.accs))
    assert a.std == pytest.approx(statistics.stdev(a.accs))
    assert math.isnan(_result("b", [0.8]).std)
    close = _result("c", [0.81, 0.83, 0.85])  # +1 point, spread 2 points
    far = _result("d", [0.90, 0.91, 0.92])  # +9 points, far outside the spread
    assert "within seed spread" in delta_note(a, close)
    assert delta_note(a, far) == f"{100 * (far.mean - a.mean):+.2f}"
    assert delta_note(far, a).startswith("-")
    assert delta_note(a, _result("e", a.accs, same_as="a")) == "same model as previous row"


def test_headline_reports_loss_and_recovery():
    float_row = replace(_result("float", [0.90, 0.90]), bits=None)
    naive, qmlp = _result("naive", [0.70, 0.72]), _result("qmlp", [0.84, 0.86])
    (line,) = ablation.headline([float_row, naive, qmlp])
    assert line.startswith("W4A4: naive quantization 71.00% vs float 90.00% (-19.00 points)")
    assert line.endswith(f"recovers +14.00 points ({100 * 14 / 19:.0f}% of the loss).")
    better = _result("qmlp", [0.95])
    assert "reaches or passes float" in ablation.headline([float_row, naive, better])[0]


def test_table_header_names_the_budget_and_the_augmentation():
    float_row = replace(_result("float", [0.90, 0.90]), bits=None)
    results = [float_row, _result("naive", [0.70, 0.72]), _result("qmlp", [0.84, 0.86])]
    table = ablation.markdown_table(AblationConfig(seeds=(0, 1)), results)
    assert "1 epoch(s), batch 128" in table
    assert "augmentation: random crop with 2-pixel padding and horizontal flip;" in table


def test_finished_run_with_other_budget_is_an_error(tmp_path):
    cfg = AblationConfig(out=str(tmp_path), epochs=2)
    tcfg = cfg.train_config(ablation_rows()[1], 4, 0)
    run = Path(tcfg.out)
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({**tcfg.to_dict(), "epochs": 1}))
    (run / "metrics.json").write_text(json.dumps({"test_acc": 0.5}))
    with pytest.raises(ValueError, match=r"other settings \(epochs: 1 -> 2\)"):
        run_one(tcfg)
    (run / "config.json").write_text(json.dumps(tcfg.to_dict()))
    assert run_one(tcfg) == ({"test_acc": 0.5}, False)


def test_estimate_counts_reused_rows_once():
    wall = {
        "float": {"train_s_per_image": 1e-4, "eval_s_per_image": 1e-5},
        "quantized": {"train_s_per_image": 3e-4, "eval_s_per_image": 2e-5},
    }
    # CPU times three times the wall-clock ones: the CPU estimate must follow them.
    timings = {
        k: {**t, **{n.replace("_s_", "_cpu_s_"): 3 * v for n, v in t.items()}}
        for k, t in wall.items()
    }
    kw = dict(bits=(8, 4), seeds=(0, 1), epochs=2)
    mixer = estimate_seconds(AblationConfig(model="qmlp_mixer_28", **kw), timings)
    resmlp = estimate_seconds(AblationConfig(model="qmlp_resmlp_28", **kw), timings)
    quant_run = 2 * (60000 * 3e-4 + 10000 * 2e-5)
    float_run = 2 * (60000 * 1e-4 + 10000 * 1e-5)
    # ResMLP trains its LayerNorm row; MLP-Mixer's is its naive model, reused.
    assert resmlp - mixer == pytest.approx(2 * 2 * quant_run)
    assert resmlp == pytest.approx(2 * (float_run + 2 * 7 * quant_run))
    cfg = AblationConfig(model="qmlp_resmlp_28", **kw)
    assert estimate_seconds(cfg, timings, cpu=True) == pytest.approx(3 * resmlp)
    limited = AblationConfig(model="qmlp_resmlp_28", train_limit=6000, test_limit=1000, **kw)
    assert estimate_seconds(limited, timings) == pytest.approx(resmlp / 10)


def test_time_estimate_runs_the_training_loops_own_step(fmnist_dir, monkeypatch):
    from qmlp_brevitas import train as train_module

    steps = []

    class CountingStep(train_module._Step):
        def __call__(self, x, y):
            # The fast path replaces the quantized layers' forward while it is on.
            fast = any("forward" in vars(m) for m in self.net.modules())
            steps.append((x.shape[0], fast, self.augment is not None))
            return super().__call__(x, y)

    monkeypatch.setattr(train_module, "_Step", CountingStep)
    cfg = AblationConfig.quick(data_dir=str(fmnist_dir), batch_size=16)
    timing = time_training(cfg.train_config(ablation_rows()[-1], 4, 0), steps=2)
    assert steps == [(16, True, True), (16, True, True)]  # the training's fast path, augmented
    assert all(value > 0 for value in timing.values()), timing


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_quick_pipeline_end_to_end_and_resume(tmp_path, data_dir, monkeypatch, capsys):
    out = tmp_path / "abl"
    argv = ["--quick", "--data-dir", data_dir, "--out", str(out)]
    assert ablation_main(argv) == 0
    folder = out / "qmlp_mixer_28"
    table = (folder / "ablation.md").read_text()
    for row in ablation_rows():
        assert f"| {row.label} |" in table
    assert "### W8A8" in table and "### W4A4" in table
    rows = _read_csv(folder / "ablation.csv")
    assert {(r["row"], r["bits"]) for r in rows} == {("float", "float")} | {
        (row.key, b) for row in ablation_rows()[1:] for b in ("W8A8", "W4A4")
    }
    for r in rows:
        assert 0.0 <= float(r["mean_acc"]) <= 1.0
        assert r["n"] == "1"
        if r["bits"] != "float":
            assert float(r["size (MB)"]) > 0
    # Runs actually trained: better than the 10% of chance on at least the float row.
    assert float(next(r for r in rows if r["row"] == "float")["mean_acc"]) > 0.15
    assert next(r for r in rows if r["row"] == "layernorm")["same_as"] == "naive"
    png = (folder / "ablation.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000

    calls = []
    real_train = ablation.plan.train

    def spy(cfg, resume=False, log=print):
        calls.append((cfg.out, resume))
        return real_train(cfg, resume=resume, log=log)

    monkeypatch.setattr(ablation.plan, "train", spy)
    assert ablation_main(argv) == 0
    assert calls == []  # every run finished: nothing trained again
    assert (folder / "ablation.md").read_text() == table

    # An interrupted run (checkpoint, no metrics.json) resumes from its checkpoint.
    run = folder / "w4a4" / "percentile" / "seed0"
    (run / "metrics.json").unlink()
    assert ablation_main(argv) == 0
    assert calls == [(str(run), True)]
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 1
    assert (folder / "ablation.md").read_text() == table
    capsys.readouterr()


@pytest.mark.slow
def test_resmlp_trains_its_layernorm_row_and_column_hooks_run(tmp_path, data_dir):
    rows = {r.key: r for r in ablation_rows()}
    cfg = AblationConfig.quick(
        model="qmlp_resmlp_28",
        bits=(4,),
        seeds=(0, 1),
        train_limit=64,
        test_limit=64,
        data_dir=data_dir,
        out=str(tmp_path),
    )
    seen = []

    def cost(result: RowResult) -> dict:
        seen.append(result.row.key)
        assert all((d / "checkpoint.pt").is_file() for d in result.run_dirs)
        return {"hook runs": len(result.run_dirs)}

    results = run_ablation(cfg, [rows["float"], rows["naive"], rows["layernorm"]], [cost])
    assert seen == ["naive", "layernorm"]  # quantized rows only
    assert [r.same_as for r in results] == [None, None, None]
    assert all(len(r.accs) == 2 and not math.isnan(r.std) for r in results)
    assert results[1].extra == {"hook runs": 2} and results[0].extra == {}
    paths = ablation.write_reports(cfg, results)
    assert "| hook runs |" in paths["table"].read_text()
    assert _read_csv(paths["csv"])[1]["hook runs"] == "2"
