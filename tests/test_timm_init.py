"""``--init`` from a float checkpoint of the matching timm MlpMixer / ResMLP."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from safetensors.torch import save_file
from timm.models.mlp_mixer import Affine, MlpMixer, ResBlock

from qmlp_brevitas.checkpoint import CheckpointError
from qmlp_brevitas.models import create_qmlp
from qmlp_brevitas.timm_init import describe, load_init
from qmlp_brevitas.train import TrainConfig, train

SIZES = dict(img_size=32, in_chans=3, patch_size=8, embed_dim=32)


def _timm_model(family: str, depth: int = 2, **sizes) -> MlpMixer:
    """A small timm MlpMixer/ResMLP with every parameter random (norms and LayerScale too)."""
    torch.manual_seed(0)
    kw = dict(num_classes=10, num_blocks=depth, **{**SIZES, **sizes})
    if family == "resmlp":
        model = MlpMixer(
            **kw, mlp_ratio=4, block_layer=partial(ResBlock, init_values=0.1), norm_layer=Affine
        )
    else:
        model = MlpMixer(**kw)  # timm's Mixer: LayerNorm, GELU, token/channel MLP ratio 0.5/4
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    return model.eval()


def _qmlp_float(family: str, token_groups: int, **recipe):
    """The matching Q-MLP model without quantization, with timm's GELU and norms."""
    settings = dict(preset="naive", token_groups=token_groups, **recipe)
    return create_qmlp(f"qmlp_{family}_32", depth=2, num_classes=10, **SIZES, **settings).eval()


@pytest.mark.parametrize("family", ["resmlp", "mixer"])
@pytest.mark.parametrize("token_groups", [1, 2])
def test_timm_weights_give_the_timm_outputs(tmp_path, family, token_groups):
    timm_model = _timm_model(family)
    path = tmp_path / "timm.pt"
    torch.save(timm_model.state_dict(), path)
    model = _qmlp_float(family, token_groups)
    report = load_init(model, path)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        # One token mixer per channel group, each a copy of timm's: the same function. Float32
        # differences come only from the different order of the same operations.
        torch.testing.assert_close(model(x), timm_model(x), atol=1e-5, rtol=1e-5)
    assert report["format"] == "timm" and report["new"] == [] and report["dropped"] == []
    assert len(report["loaded"]) == len(timm_model.state_dict())
    mixer_params = 2 if family == "resmlp" else 4  # fc / fc1 + fc2, weight and bias
    assert len(report["copied"]) == 2 * (token_groups - 1) * mixer_params
    assert all(".token_mixing.mixers.1." in k for k in report["copied"])
    if token_groups > 1:
        assert "copied from the single token-mixing MLP" in "\n".join(describe(report))
        block0 = model.blocks[0].token_mixing.mixers
        for a, b in zip(block0[0].parameters(), block0[1].parameters(), strict=True):
            assert torch.equal(a, b) and a.data_ptr() != b.data_ptr()


def test_safetensors_file_is_accepted(tmp_path):
    timm_model = _timm_model("mixer")
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in timm_model.state_dict().items()}, str(path))
    model = _qmlp_float("mixer", 1)
    load_init(model, path)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), timm_model(x), atol=1e-5, rtol=1e-5)


def test_norms_the_recipe_replaces_are_reported(tmp_path):
    """ResMLP's Affine norms have no place in a LayerNorm model: dropped; LayerNorms are new."""
    path = tmp_path / "resmlp.pt"
    torch.save(_timm_model("resmlp").state_dict(), path)
    model = _qmlp_float("resmlp", 2, norm="layernorm")
    report = load_init(model, path)
    assert "blocks.0.norm1.alpha (no such parameter in this model)" in report["dropped"]
    assert {"blocks.0.norm1.weight", "blocks.1.norm2.bias", "norm.weight"} <= set(report["new"])
    assert not any("token_mixing" in k or "mlp_channels" in k for k in report["new"])


def test_head_of_another_class_count_is_dropped(tmp_path):
    path = tmp_path / "timm.pt"
    torch.save(_timm_model("mixer").state_dict(), path)
    model = create_qmlp("qmlp_mixer_32", depth=2, num_classes=5, **SIZES, preset="naive")
    report = load_init(model, path)
    assert {"head.weight", "head.bias"} <= set(report["new"])
    assert any(d.startswith("head.weight (shape (10, 32)") for d in report["dropped"])


@pytest.mark.parametrize(
    ("sizes", "message"),
    [(dict(embed_dim=64), "does not fit this model"), (dict(depth=3), "has 3 blocks")],
)
def test_checkpoint_of_another_size_is_refused(tmp_path, sizes, message):
    path = tmp_path / "timm.pt"
    torch.save(_timm_model("mixer", **sizes).state_dict(), path)
    with pytest.raises(CheckpointError, match=message):
        load_init(_qmlp_float("mixer", 1), path)


def test_own_float_checkpoints_are_still_accepted(tmp_path):
    source = create_qmlp("qmlp_mixer_28")
    path = tmp_path / "float.pt"
    torch.save({"model": source.state_dict()}, path)
    model = create_qmlp("qmlp_mixer_28", w_bits=4, a_bits=4)
    report = load_init(model, path)
    assert report["format"] == "qmlp" and report["loaded"]
    torch.testing.assert_close(model.head.weight, source.head.weight)


@pytest.mark.slow
def test_training_starts_from_a_timm_checkpoint(tmp_path, fmnist_dir):
    """--init with a timm Mixer of qmlp_mixer_28's sizes: QAT starts, the report is logged."""
    timm_model = MlpMixer(
        num_classes=10, img_size=28, in_chans=1, patch_size=7, embed_dim=64, num_blocks=4
    )
    path = tmp_path / "mixer.pt"
    torch.save(timm_model.state_dict(), path)
    lines = []
    cfg = TrainConfig(
        model="qmlp_mixer_28",
        data_dir=str(fmnist_dir),
        train_limit=64,
        test_limit=32,
        epochs=1,
        batch_size=32,
        calib_batches=1,
        init=str(path),
        export=False,
        out=str(tmp_path / "run"),
    )
    metrics = train(cfg, log=lines.append)
    log = "\n".join(lines)
    assert "tensors loaded (timm checkpoint)" in log
    assert "16 new tensors copied from the single token-mixing MLP" in log  # 4 blocks x fc1/fc2
    assert metrics["epochs"] == 1
