"""ImageNet-style folders through timm's data pipeline, Mixup/CutMix, and the run presets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from timm.data.auto_augment import RandAugment
from timm.data.random_erasing import RandomErasing
from timm.data.transforms import RandomResizedCropAndInterpolation
from torchvision import transforms

from qmlp_brevitas.cli.train import config_from_args, init_stage, parse_args
from qmlp_brevitas.data import build_dataset
from qmlp_brevitas.presets import PresetError, list_presets, load_preset
from qmlp_brevitas.train import TrainConfig, _mixup, train

CLASSES = ("cat", "dog")


@pytest.fixture
def image_dir(tmp_path):
    """``train/`` and ``val/`` with one folder of small random RGB images per class."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 6), ("val", 2)):
        for cls in CLASSES:
            folder = tmp_path / "imgs" / split / cls
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (36 + i, 44, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.jpg")
    return tmp_path / "imgs"


def _steps(dataset) -> list:
    return list(dataset.transform.transforms)


def test_folder_loads_through_timm_transforms(image_dir):
    train_set = build_dataset(
        "imagenet", image_dir, True, img_size=32, auto_augment="rand-m9-mstd0.5", re_prob=0.25
    )
    val_set = build_dataset("imagenet", image_dir, False, img_size=32, normalization="inception")
    assert train_set.classes == list(CLASSES) and len(train_set) == 12 and len(val_set) == 4
    kinds = [type(t) for t in _steps(train_set)]
    assert RandomResizedCropAndInterpolation in kinds and RandAugment in kinds
    assert RandomErasing in kinds
    x, y = train_set[7]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and y == 1
    # Evaluation is deterministic (resize, centre crop) and uses the asked normalization.
    torch.testing.assert_close(val_set[0][0], val_set[0][0])
    norm = next(t for t in _steps(val_set) if isinstance(t, transforms.Normalize))
    assert tuple(np.round(norm.mean, 3)) == (0.5, 0.5, 0.5)
    assert val_set[0][0].shape == (3, 32, 32)


def test_unknown_normalization_is_refused(image_dir):
    with pytest.raises(ValueError, match="normalization must be one of"):
        build_dataset("imagenet", image_dir, True, img_size=32, normalization="cifar")


def test_mixup_gives_soft_smoothed_targets():
    cfg = TrainConfig(
        model="qmlp_mixer_32", data="imagenet", mixup=0.8, cutmix=1.0, label_smoothing=0.1, out="x"
    )
    mixup = _mixup(cfg, num_classes=2)
    x, y = mixup(torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 0, 1]))
    assert y.shape == (4, 2)
    torch.testing.assert_close(y.sum(1), torch.ones(4))
    assert (y > 0).all()  # label smoothing and mixing leave no hard zero


def test_mixup_outside_image_folders_is_refused():
    with pytest.raises(ValueError, match="ImageNet-style folders"):
        TrainConfig(data="fashion_mnist", mixup=0.8, out="x")


@pytest.mark.slow
def test_qat_on_an_image_folder_with_mixup(image_dir, tmp_path):
    cfg = TrainConfig(
        model="qmlp_mixer_32",
        data="imagenet",
        data_dir=str(image_dir),
        epochs=1,
        batch_size=4,
        calib_batches=1,
        mixup=0.8,
        cutmix=1.0,
        auto_augment="rand-m9-mstd0.5",
        export=False,
        out=str(tmp_path / "run"),
    )
    metrics = train(cfg, log=lambda *_: None)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert metrics["epochs"] == 1 and np.isfinite(history[0]["train_loss"])
    assert 0.0 <= metrics["test_acc"] <= 1.0
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (saved["mixup"], saved["cutmix"]) == (0.8, 1.0)


def test_run_presets_are_package_data():
    import qmlp_brevitas

    names = list_presets()
    expected = {"resmlp24-qmlp-w4a4", "resmlp24-qmlp-w8a8", "mixerb16-qmlp-w4a4"}
    assert expected | {"mixer28-qmlp-w4a4-long"} <= set(names)
    package = Path(qmlp_brevitas.__file__).parent
    assert all((package / "configs" / f"{name}.json").is_file() for name in names)


@pytest.mark.parametrize("name", list_presets())
def test_run_presets_resolve_to_valid_configs(name):
    args = parse_args(["--config", name, "--data-dir", "/imagenet"])
    cfg = config_from_args(args)
    # A float preset is there as the starting run of a QAT preset (--init-config).
    starting_runs = {parse_args(["--config", n]).init_config for n in list_presets()}
    assert cfg.resolved_recipe().quantized or name in starting_runs
    if args.init_config:  # the starting run exists, starts from scratch, same model and data
        stage = init_stage(args)
        assert stage.w_bits is None and (stage.model, stage.data) == (cfg.model, cfg.data)
    if cfg.data == "imagenet":
        assert cfg.model.endswith("_224") and (cfg.mixup, cfg.cutmix) == (0.8, 1.0)
    else:  # a small data set: the model must take its images
        from qmlp_brevitas.train import build_model

        assert build_model(cfg).img_size == 28 and cfg.random_crop == 2 and cfg.hflip


def test_command_line_overrides_the_run_preset():
    args = parse_args(["--config=resmlp24-qmlp-w4a4", "--w", "8", "--a", "8", "--epochs", "2"])
    cfg = config_from_args(args)
    assert (cfg.model, cfg.w_bits, cfg.a_bits, cfg.epochs) == ("qmlp_resmlp_24_224", 8, 8, 2)
    assert cfg.preset == "qmlp" and args.config == "resmlp24-qmlp-w4a4"
    assert config_from_args(parse_args(["--preset", "naive"])).preset == "naive"
    # The technique preset and the run preset are two options that combine.
    both = config_from_args(parse_args(["--config", "resmlp24-qmlp-w4a4", "--preset", "naive"]))
    assert (both.model, both.preset) == ("qmlp_resmlp_24_224", "naive")


def test_run_preset_runs_in_a_folder_of_its_own(tmp_path):
    """The long preset must not write into (or be refused by) the main job's run folder."""
    assert parse_args(["--config", "mixer28-qmlp-w4a4-long"]).out == "runs/mixer28-qmlp-w4a4-long"
    assert parse_args([]).out == ""  # the main job: runs/<model>-<bits>, from TrainConfig
    out = str(tmp_path / "mine")
    assert parse_args(["--config", "mixer28-qmlp-w4a4-long", "--out", out]).out == out


def test_run_preset_is_not_a_technique_preset(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--preset", "resmlp24-qmlp-w4a4"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'resmlp24-qmlp-w4a4'" in capsys.readouterr().err


def test_preset_with_an_unknown_option_is_refused(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"model": "qmlp_mixer_28", "learning_rate": 0.1}))
    with pytest.raises(PresetError, match=r"unknown options \['learning_rate'\]"):
        load_preset(str(bad), {"model", "lr"})
    with pytest.raises(PresetError, match="no run preset 'nope'"):
        load_preset("nope", {"model"})
