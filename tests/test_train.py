"""Training runs on a slice of Fashion-MNIST: learning, run folder, resume, CLI errors."""

from __future__ import annotations

import json

import pytest
import torch

from qmlp_brevitas import train as train_module
from qmlp_brevitas.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from qmlp_brevitas.cli.common import run_main
from qmlp_brevitas.cli.export import main as export_main
from qmlp_brevitas.cli.train import config_from_args, parse_args
from qmlp_brevitas.cli.train import main as train_main
from qmlp_brevitas.errors import RunFolderError
from qmlp_brevitas.models import create_qmlp
from qmlp_brevitas.train import TrainConfig, train

METRIC_KEYS = {
    "test_acc",
    "best_test_acc",
    "epochs",
    "w_bits",
    "a_bits",
    "model",
    "model_size_mb",
    "train_seconds",
    "train_cpu_seconds",
}


def _cfg(tmp_path, data_dir, **kw):
    values = dict(
        model="qmlp_mixer_28",
        data_dir=str(data_dir),
        train_limit=256,
        test_limit=128,
        epochs=2,
        batch_size=64,
        calib_batches=2,
        export=False,
        out=str(tmp_path / "run"),
    )
    values.update(kw)
    return TrainConfig(**values)


class Interrupt(Exception):
    pass


@pytest.mark.slow
def test_short_qat_run_learns_and_writes_run_folder(tmp_path, fmnist_dir):
    cfg = _cfg(tmp_path, fmnist_dir, train_limit=2048, test_limit=500, epochs=2, export=True)
    metrics = train(cfg, log=lambda *_: None)
    assert metrics["test_acc"] > 0.4  # chance is 0.1
    assert METRIC_KEYS <= set(metrics) and metrics["epochs"] == 2
    assert (metrics["w_bits"], metrics["a_bits"]) == (4, 4)
    out = tmp_path / "run"
    for name in (
        "config.json",
        "metrics.json",
        "history.json",
        "history.png",
        "checkpoint.pt",
        "model.onnx",
        "input.npy",
        "expected_output.npy",
    ):
        assert (out / name).is_file(), name
    saved = json.loads((out / "config.json").read_text())
    assert saved["resolved_recipe"]["token_groups"] == 2 and saved["w_bits"] == 4
    assert saved["fast"] is True and saved["random_crop"] == 0 and saved["hflip"] is True
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 2


@pytest.mark.slow
def test_interrupted_run_resumes_to_the_same_result(tmp_path, fmnist_dir):
    # With random crops and flips: their random draws are seeded per epoch too.
    full = train(_cfg(tmp_path / "a", fmnist_dir, random_crop=2), log=lambda *_: None)

    def stop_after_first_epoch(msg):
        if msg.startswith("epoch 1/2"):
            raise Interrupt

    cfg = _cfg(tmp_path / "b", fmnist_dir, random_crop=2)
    with pytest.raises(Interrupt):
        train(cfg, log=stop_after_first_epoch)
    assert load_checkpoint(tmp_path / "b" / "run" / "checkpoint.pt")["epoch"] == 1
    with pytest.raises(RunFolderError, match="pass --resume"):
        train(cfg, log=lambda *_: None)
    resumed = train(cfg, resume=True, log=lambda *_: None)
    assert resumed["epochs"] == full["epochs"] == 2
    assert resumed["test_acc"] == full["test_acc"]
    a = load_checkpoint(tmp_path / "a" / "run" / "checkpoint.pt")["model"]
    b = load_checkpoint(tmp_path / "b" / "run" / "checkpoint.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_resume_with_other_settings_is_refused(tmp_path, fmnist_dir):
    train(_cfg(tmp_path, fmnist_dir, epochs=1), log=lambda *_: None)
    with pytest.raises(CheckpointError, match=r"lr: 0.003 -> 0.1"):
        train(_cfg(tmp_path, fmnist_dir, epochs=2, lr=0.1), resume=True, log=lambda *_: None)


def test_cli_fast_path_and_augmentation_options():
    from qmlp_brevitas.cli.train import config_from_args, parse_args

    cfg = config_from_args(parse_args(["--out", "x"]))
    assert cfg.fast and (cfg.random_crop, cfg.hflip) == (0, True)  # Fashion-MNIST defaults
    assert (cfg.epochs, cfg.batch_size, cfg.lr) == (30, 256, 3e-3)  # the main job's recipe
    argv = ["--no-fast", "--random-crop", "0", "--no-hflip", "--out", "x"]
    cfg = config_from_args(parse_args(argv))
    assert not cfg.fast and (cfg.random_crop, cfg.hflip) == (0, False)
    cfg = config_from_args(parse_args(["--data", "cifar10", "--model", "qmlp_mixer_32"]))
    assert (cfg.random_crop, cfg.hflip) == (0, False)  # CIFAR-10 augments per image


def test_model_that_does_not_fit_the_data_is_refused(tmp_path, fmnist_dir):
    with pytest.raises(ValueError, match="takes 3x32x32 images"):
        train(_cfg(tmp_path, fmnist_dir, model="qmlp_mixer_32"))


@pytest.fixture
def no_data_loading(monkeypatch):
    """Fails a test that reads a data set: bad settings must be refused before that."""

    def refuse(*_args, **_kwargs):
        raise AssertionError("a data set was read before the settings were checked")

    monkeypatch.setattr(train_module, "build_dataset", refuse)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--w", "9"], "weight bit width (--w) must be an integer from 2 to 8, got 9"),
        (["--a", "1"], "activation bit width (--a) must be an integer from 2 to 8, got 1"),
        (["--token-groups", "3"], "not divisible by token_groups 3"),
        (["--threads", "0"], "--threads must be at least 1, got 0"),
        (["--lr", "-1"], "the learning rate (--lr) must be positive, got -1.0"),
        (["--epochs", "0"], "epochs must be positive, got 0"),
        (
            ["--data", "imagenet"],
            "model qmlp_mixer_28 takes 1x28x28 images, but imagenet has 3-channel images; "
            "choose a model made for it (qmlp_mixer_32,",
        ),
        (["--resume"], "there is no checkpoint to resume in"),
    ],
)
def test_cli_bad_input_is_one_clear_line_before_any_work(
    argv, message, tmp_path, no_data_loading, capsys
):
    argv = [*argv, "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "r")]
    assert run_main(train_main, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert err.count("\n") == 1
    assert not (tmp_path / "r").exists()  # no run folder made


def test_out_under_a_file_is_refused_before_any_work(tmp_path, no_data_loading, capsys):
    (tmp_path / "taken").write_text("a file")
    argv = ["--data-dir", str(tmp_path), "--out", str(tmp_path / "taken" / "run")]
    assert run_main(train_main, argv) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'taken'} is a file" in err and "Traceback" not in err
    assert (tmp_path / "taken").read_text() == "a file"


def _checkpoint_with_wrong_weights(tmp_path, fmnist_dir) -> tuple:
    """A run checkpoint whose config says two token groups and whose weights have one."""
    run = tmp_path / "r"
    argv = ["--data-dir", str(fmnist_dir), "--out", str(run), "--epochs", "2"]
    cfg = config_from_args(parse_args(argv))
    weights = create_qmlp("qmlp_mixer_28", w_bits=4, a_bits=4, token_groups=1).state_dict()
    state = {"epoch": 1, "model": weights, "config": cfg.to_dict(), "history": []}
    save_checkpoint(run / "checkpoint.pt", state)
    return run / "checkpoint.pt", argv


def test_checkpoint_whose_config_does_not_fit_its_weights(tmp_path, fmnist_dir, capsys):
    checkpoint, argv = _checkpoint_with_wrong_weights(tmp_path, fmnist_dir)
    before = checkpoint.read_bytes()
    for main, args in ((export_main, ["--checkpoint", str(checkpoint)]), (train_main, argv)):
        args = [*args, "--resume"] if main is train_main else args
        assert run_main(main, args) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, err
        assert "do not fit the model its config describes" in err
        assert "the checkpoint is unchanged" in err
    assert checkpoint.read_bytes() == before
    assert sorted(p.name for p in checkpoint.parent.iterdir()) == ["checkpoint.pt"]


@pytest.mark.slow
def test_full_disk_during_training_keeps_the_last_checkpoint(tmp_path, fmnist_dir, capsys):
    real_save = torch.save
    calls = []

    def disk_fills_up(obj, f, *args, **kwargs):
        calls.append(f)
        if len(calls) == 1:
            return real_save(obj, f, *args, **kwargs)
        with open(f, "wb") as partial:
            partial.write(b"PK\x03\x04 part of a zip archive")
        # What torch's zip writer raises when the disk is full (measured on /dev/full).
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")

    run = tmp_path / "r"
    argv = ["--data-dir", str(fmnist_dir), "--out", str(run), "--no-export"]
    argv += ["--epochs", "2", "--train-limit", "128", "--test-limit", "64", "--batch-size", "64"]
    argv += ["--calib-batches", "1"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch, "save", disk_fills_up)
        assert run_main(train_main, argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "unexpected pos 704 vs 598" in err
    assert f"the previous checkpoint {run / 'checkpoint.pt'} is intact" in err
    assert load_checkpoint(run / "checkpoint.pt")["epoch"] == 1
    assert not [p.name for p in run.iterdir() if ".tmp" in p.name]
    # The run goes on from there once there is space again.
    assert run_main(train_main, [*argv, "--resume"]) == 0
    assert load_checkpoint(run / "checkpoint.pt")["epoch"] == 2


def test_cli_missing_dataset(tmp_path, capsys, monkeypatch):
    from qmlp_brevitas import data

    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", tmp_path / "nowhere")
    argv = ["--data-dir", str(tmp_path / "d"), "--out", str(tmp_path / "r")]
    assert run_main(train_main, argv) == 2
    assert "apt-get install dataset-fashion-mnist" in capsys.readouterr().err


def test_cli_corrupt_or_missing_checkpoint(tmp_path, fmnist_dir, capsys):
    assert run_main(export_main, ["--checkpoint", str(tmp_path / "none.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err
    run = tmp_path / "r"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"not a checkpoint")
    argv = ["--data-dir", str(fmnist_dir), "--out", str(run), "--resume"]
    assert run_main(train_main, argv) == 2
    assert "corrupt" in capsys.readouterr().err


def test_optimizer_updates_the_calibrated_quantizer_parameters():
    """Calibration may replace quantizer parameters: the optimizer must hold the live ones."""
    from conftest import calibrated

    from qmlp_brevitas.train import make_optimizer

    model = calibrated("qmlp_mixer_28", 4, 4, depth=1)
    optimizer, _ = make_optimizer(model, TrainConfig(), steps_per_epoch=10)
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    missing = [n for n, p in model.named_parameters() if id(p) not in held]
    assert not missing, f"parameters the optimizer does not update: {missing}"
    scale = model.blocks[0].channel_quant.act_quant.fused_activation_quant_proxy.tensor_quant
    value = scale.scaling_impl.value
    before = value.detach().clone()
    model.train()
    model(torch.randn(8, 1, 28, 28)).sum().backward()
    optimizer.step()
    assert not torch.equal(before, value.detach())


def _float_preset(tmp_path, data_dir, **kw) -> str:
    """A run preset (JSON file) of a short float run: the starting run of ``--init-config``."""
    values = dict(
        model="qmlp_mixer_28",
        float=True,
        data_dir=str(data_dir),
        train_limit=256,
        test_limit=128,
        epochs=2,
        batch_size=64,
        out=str(tmp_path / "float"),
    )
    values.update(kw)
    path = tmp_path / "float-preset.json"
    path.write_text(json.dumps(values))
    return str(path)


def _qat_argv(tmp_path, data_dir, preset, out="qat"):
    return [
        "--init-config", preset, "--data-dir", str(data_dir), "--train-limit", "256",
        "--test-limit", "128", "--epochs", "1", "--batch-size", "64", "--calib-batches", "1",
        "--no-export", "--out", str(tmp_path / out),
    ]  # fmt: skip


@pytest.mark.slow
def test_init_config_trains_the_starting_run_first_then_fine_tunes(tmp_path, fmnist_dir, capsys):
    preset = _float_preset(tmp_path, fmnist_dir)
    assert run_main(train_main, _qat_argv(tmp_path, fmnist_dir, preset)) == 0
    out = capsys.readouterr().out
    start = tmp_path / "float" / "checkpoint.pt"
    assert f"training the starting run {tmp_path / 'float'} first" in out
    assert json.loads((tmp_path / "float" / "metrics.json").read_text())["w_bits"] is None
    assert f"initialised from {start}" in out and "tensors loaded (qmlp checkpoint)" in out
    saved = json.loads((tmp_path / "qat" / "config.json").read_text())
    assert saved["init"] == str(start) and saved["w_bits"] == 4
    assert (tmp_path / "qat" / "metrics.json").is_file()

    # A second run from the same starting run does not train it again.
    before = start.stat().st_mtime_ns
    assert run_main(train_main, _qat_argv(tmp_path, fmnist_dir, preset, out="qat2")) == 0
    out = capsys.readouterr().out
    assert f"starting from {start}, of the finished run" in out and "training the" not in out
    assert start.stat().st_mtime_ns == before


@pytest.mark.slow
def test_init_config_resumes_an_interrupted_starting_run(tmp_path, fmnist_dir, capsys):
    preset = _float_preset(tmp_path, fmnist_dir)
    stage = config_from_args(parse_args(["--config", preset]))

    def stop_after_first_epoch(msg):
        if msg.startswith("epoch 1/2"):
            raise Interrupt

    with pytest.raises(Interrupt):
        train(stage, log=stop_after_first_epoch)
    argv = _qat_argv(tmp_path, fmnist_dir, preset)
    assert run_main(train_main, argv) == 2
    assert "pass --resume to continue that run" in capsys.readouterr().err
    assert not (tmp_path / "qat").exists()
    assert run_main(train_main, [*argv, "--resume"]) == 0
    assert f"resuming the starting run {tmp_path / 'float'} first" in capsys.readouterr().out
    assert json.loads((tmp_path / "float" / "metrics.json").read_text())["epochs"] == 2
    assert (tmp_path / "qat" / "metrics.json").is_file()


@pytest.mark.parametrize(
    ("change", "extra", "message"),
    [
        ({}, ["--init", "x.pt"], "--init and --init-config both name a starting point"),
        ({"model": "qmlp_mixer_28_p4"}, [], "trains qmlp_mixer_28_p4 on fashion_mnist, but this"),
        ({"init": "x.pt"}, [], "starts from another run itself"),
        ({"out": "SAME"}, [], "writes to"),
    ],
)
def test_init_config_bad_input_is_refused_before_any_work(
    change, extra, message, tmp_path, no_data_loading, capsys
):
    if change.get("out") == "SAME":
        change = {"out": str(tmp_path / "qat")}
    preset = _float_preset(tmp_path, tmp_path / "data", **change)
    assert run_main(train_main, [*_qat_argv(tmp_path, tmp_path / "data", preset), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "qat").exists() and not (tmp_path / "float").exists()
