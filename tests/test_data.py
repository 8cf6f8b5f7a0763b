"""Datasets from local disk: Fashion-MNIST, CIFAR-10 and ImageNet-style folders."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from qmlp_brevitas import data
from qmlp_brevitas.data import DatasetNotFoundError, build_dataset, subset


def test_fashion_mnist_from_debian_files(fmnist_dir):
    train = build_dataset("fashion_mnist", fmnist_dir, train=True)
    test = build_dataset("fashion_mnist", fmnist_dir, train=False)
    assert (len(train), len(test)) == (60000, 10000)
    x, y = test[0]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32 and 0 <= y < 10
    assert abs(float(x.mean())) < 2  # normalized


def test_missing_fashion_mnist_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", tmp_path / "nowhere")
    with pytest.raises(DatasetNotFoundError, match="apt-get install dataset-fashion-mnist"):
        build_dataset("fashion_mnist", tmp_path / "empty", train=True)


def test_subset_is_fixed_by_seed(fmnist_dir):
    test = build_dataset("fashion_mnist", fmnist_dir, train=False)
    a, b = subset(test, 50, seed=3), subset(test, 50, seed=3)
    assert len(a) == 50 and a.indices == b.indices
    assert subset(test, None) is test


def _write_cifar(root, n=20):
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        batch = {
            "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            "labels": rng.integers(0, 10, n).tolist(),
        }
        with open(base / name, "wb") as f:
            pickle.dump(batch, f)
    with open(base / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, f)


def test_cifar10_from_local_folder(tmp_path):
    _write_cifar(tmp_path)
    train = build_dataset("cifar10", tmp_path, train=True)
    test = build_dataset("cifar10", tmp_path, train=False)
    assert (len(train), len(test)) == (100, 20)
    x, y = train[0]
    assert x.shape == (3, 32, 32) and 0 <= y < 10


def test_missing_cifar10_is_explained(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="cifar-10-batches-py"):
        build_dataset("cifar10", tmp_path, train=True)


def test_image_folder(tmp_path):
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for cls in ("cat", "dog"):
            folder = tmp_path / split / cls
            folder.mkdir(parents=True)
            for i in range(3):
                pixels = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    train = build_dataset("imagenet", tmp_path, train=True, img_size=32)
    val = build_dataset("imagenet", tmp_path, train=False, img_size=32)
    assert len(train) == len(val) == 6 and train.classes == ["cat", "dog"]
    x, y = val[4]
    assert x.shape == (3, 32, 32) and y == 1


def test_missing_image_folder_is_explained(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="must hold train/ and val/"):
        build_dataset("imagenet", tmp_path, train=True)


def test_fashion_mnist_in_memory_equals_torchvision_transforms(fmnist_dir):
    from torchvision import datasets, transforms

    from qmlp_brevitas.data import DATA_INFO, InMemoryImages, make_loader

    info = DATA_INFO["fashion_mnist"]
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize(info.mean, info.std)])
    reference = datasets.FashionMNIST(str(fmnist_dir), train=False, transform=tf)
    test = build_dataset("fashion_mnist", fmnist_dir, train=False)
    assert isinstance(test, InMemoryImages) and test.classes == reference.classes
    for i in (0, 1, 4321, 9999):
        x, y = test[i]
        assert torch.equal(x, reference[i][0]) and y == reference[i][1]
    part = subset(test, 300, seed=1)
    x, y = next(iter(make_loader(part, 64, train=False)))  # batches through __getitems__
    assert x.shape == (64, 1, 28, 28) and y.dtype == torch.long
    assert (
        torch.equal(x[5], reference[part.indices[5]][0])
        and y[5] == reference.targets[part.indices[5]]
    )
