"""Batch augmentation of training images: random crop with padding, horizontal flip."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from qmlp_brevitas.augment import BatchAugment
from qmlp_brevitas.train import TrainConfig


def _windows(x: torch.Tensor, padding: int, fill: float) -> list[torch.Tensor]:
    """Every crop window of one padded image and its mirror image."""
    h, w = x.shape[-2:]
    padded = F.pad(x, (padding,) * 4, value=fill)
    out = []
    for dy in range(2 * padding + 1):
        for dx in range(2 * padding + 1):
            win = padded[..., dy : dy + h, dx : dx + w]
            out += [win, win.flip(-1)]
    return out


def test_each_image_is_a_padded_crop_or_its_mirror():
    torch.manual_seed(0)
    x = torch.randn(16, 2, 9, 7)
    aug = BatchAugment(2, True, fill=(-0.5,), seed=3)
    aug.set_epoch(0)
    y = aug(x)
    assert y.shape == x.shape
    moved = 0
    for img, out in zip(x, y, strict=True):
        assert any(torch.equal(out, w) for w in _windows(img, 2, -0.5))
        moved += not torch.equal(out, img)
    assert moved >= 12  # 1 in 50 chance each to stay in place


def test_padding_uses_the_fill_value_per_channel():
    x = torch.zeros(64, 2, 4, 4)
    aug = BatchAugment(3, False, fill=(1.0, -2.0))
    y = aug(x)
    assert set(y[:, 0].unique().tolist()) <= {0.0, 1.0} and (y[:, 0] == 1.0).any()
    assert set(y[:, 1].unique().tolist()) <= {0.0, -2.0} and (y[:, 1] == -2.0).any()


def test_flip_only_mirrors_about_half_the_batch():
    x = torch.randn(200, 1, 5, 5)
    y = BatchAugment(0, True, fill=(0.0,))(x)
    mirrored = [torch.equal(b, a.flip(-1)) for a, b in zip(x, y, strict=True)]
    kept = [torch.equal(b, a) for a, b in zip(x, y, strict=True)]
    assert all(m or k for m, k in zip(mirrored, kept, strict=True))
    assert 60 < sum(mirrored) < 140


def test_draws_repeat_per_epoch_and_differ_between_epochs():
    x = torch.randn(32, 1, 8, 8)
    a, b = BatchAugment(2, True, (0.0,), seed=1), BatchAugment(2, True, (0.0,), seed=1)
    a.set_epoch(4)
    b.set_epoch(4)
    first = a(x)
    assert torch.equal(first, b(x))
    a.set_epoch(5)
    assert not torch.equal(first, a(x))
    assert torch.equal(BatchAugment(0, False, (0.0,))(x), x)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="padding must be an integer >= 0"):
        BatchAugment(-1, False, (0.0,))
    with pytest.raises(ValueError, match="random_crop must be >= 0"):
        TrainConfig(random_crop=-2, out="x")
    with pytest.raises(ValueError, match="cifar10 has its own augmentation"):
        TrainConfig(data="cifar10", model="qmlp_mixer_32", hflip=True, out="x")
