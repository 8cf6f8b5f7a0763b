"""Datasets: Fashion-MNIST (default), CIFAR-10 and ImageNet-style folders, all from local disk.

Fashion-MNIST is read through torchvision's dataset class from ``<data-dir>/FashionMNIST/raw``;
when that folder is empty, the IDX files of the Debian package ``dataset-fashion-mnist``
(``/usr/share/datasets/fashion-mnist``) are unpacked into it. Nothing is downloaded unless the
caller asks for it (``download=True``).
"""

from __future__ import annotations

import gzip
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from timm.data import (
    IMAGENET_DEFAULT_MEAN,
    IMAGENET_DEFAULT_STD,
    IMAGENET_INCEPTION_MEAN,
    IMAGENET_INCEPTION_STD,
    create_transform,
)
from torch.utils.data import DataLoader, Dataset, Sampler, Subset
from torchvision import datasets, transforms

from .errors import ConfigError, QMLPError

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
DATASETS = ("fashion_mnist", "cifar10", "imagenet")


class DatasetNotFoundError(QMLPError, FileNotFoundError):
    """A dataset that is not on local disk, with instructions to get it."""


@dataclass(frozen=True)
class DataInfo:
    """What a model needs to know about a dataset."""

    img_size: int
    in_chans: int
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


DATA_INFO = {
    "fashion_mnist": DataInfo(28, 1, 10, (0.2860,), (0.3530,)),
    "cifar10": DataInfo(32, 3, 10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "imagenet": DataInfo(224, 3, 1000, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


def prepare_fashion_mnist(root: Path, source: Path | None = None) -> None:
    """Unpack the Debian package's Fashion-MNIST files into ``root/FashionMNIST/raw`` if needed."""
    source = Path(source or DEBIAN_FASHION_MNIST)
    raw = Path(root) / "FashionMNIST" / "raw"
    missing = [f for f in FASHION_MNIST_FILES if not (raw / f).is_file()]
    if not missing:
        return
    if not all((source / f"{f}.gz").is_file() for f in missing):
        return
    raw.mkdir(parents=True, exist_ok=True)
    for name in missing:
        tmp = raw / f"{name}.tmp"
        with gzip.open(source / f"{name}.gz", "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst)
        tmp.replace(raw / name)


def _normalize(info: DataInfo) -> transforms.Normalize:
    return transforms.Normalize(info.mean, info.std)


def fashion_mnist(root: Path, train: bool, download: bool = False) -> Dataset:
    prepare_fashion_mnist(root)
    tf = transforms.Compose([transforms.ToTensor(), _normalize(DATA_INFO["fashion_mnist"])])
    try:
        return datasets.FashionMNIST(str(root), train=train, transform=tf, download=download)
    except RuntimeError as err:
        raise DatasetNotFoundError(
            f"Fashion-MNIST not found under {Path(root) / 'FashionMNIST' / 'raw'}. Install it with "
            "'apt-get install dataset-fashion-mnist' (Debian), pass --data-dir to a folder that "
            "holds FashionMNIST/raw/*-ubyte, or add --download to fetch it"
        ) from err


class LocalCIFAR10(datasets.CIFAR10):
    """torchvision's CIFAR-10 reader for a local copy: checks that files exist, not checksums."""

    train_list = [[name, None] for name, _ in datasets.CIFAR10.train_list]
    test_list = [[name, None] for name, _ in datasets.CIFAR10.test_list]
    meta = {**datasets.CIFAR10.meta, "md5": None}


def cifar10(root: Path, train: bool, download: bool = False) -> Dataset:
    info = DATA_INFO["cifar10"]
    aug = [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip()] if train else []
    tf = transforms.Compose([*aug, transforms.ToTensor(), _normalize(info)])
    cls = datasets.CIFAR10 if download else LocalCIFAR10
    try:
        return cls(str(root), train=train, transform=tf, download=download)
    except RuntimeError as err:
        raise DatasetNotFoundError(
            f"CIFAR-10 not found under {Path(root) / 'cifar-10-batches-py'}. Unpack the python "
            "version (cifar-10-python.tar.gz) there, pass --data-dir, or add --download"
        ) from err


NORMALIZATIONS = {
    # timm's constants: ResMLP weights use the ImageNet statistics, Mixer-B/16 weights 0.5/0.5.
    "imagenet": (IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD),
    "inception": (IMAGENET_INCEPTION_MEAN, IMAGENET_INCEPTION_STD),
}


def image_folder(
    root: Path,
    train: bool,
    img_size: int = 224,
    auto_augment: str | None = None,
    re_prob: float = 0.0,
    interpolation: str = "bicubic",
    normalization: str = "imagenet",
) -> Dataset:
    """An ImageNet-style folder: ``root/train/<class>/*.jpg`` and ``root/val/<class>/*.jpg``.

    Images pass timm's pipeline (``timm.data.create_transform``): random-resized crop, flip,
    colour jitter or ``auto_augment`` (e.g. ``"rand-m9-mstd0.5-inc1"``) and random erasing with
    probability ``re_prob`` for training; resize and centre crop (crop fraction 0.875) for
    evaluation. Mixup/CutMix act on batches and live in the training loop.
    """
    split = Path(root) / ("train" if train else "val")
    if not split.is_dir():
        raise DatasetNotFoundError(
            f"image folder {split} does not exist: --data-dir must hold train/ and val/, each with "
            "one sub-folder of images per class"
        )
    if normalization not in NORMALIZATIONS:
        raise ConfigError(
            f"normalization must be one of {sorted(NORMALIZATIONS)}, got {normalization!r}"
        )
    mean, std = NORMALIZATIONS[normalization]
    tf = create_transform(
        img_size,
        is_training=train,
        auto_augment=auto_augment if train else None,
        re_prob=re_prob if train else 0.0,
        interpolation=interpolation,
        mean=mean,
        std=std,
        crop_pct=0.875,
    )
    return datasets.ImageFolder(str(split), transform=tf)


def build_dataset(
    name: str,
    root: str | Path,
    train: bool,
    download: bool = False,
    img_size: int | None = None,
    **pipeline,
) -> Dataset:
    """The train or test split of dataset ``name`` under ``root``.

    ``pipeline`` (``auto_augment``, ``re_prob``, ``interpolation``, ``normalization``) configures
    the timm pipeline of ImageNet-style folders; the small datasets have fixed transforms.
    """
    root = Path(root)
    if name == "fashion_mnist":
        return fashion_mnist(root, train, download)
    if name == "cifar10":
        return cifar10(root, train, download)
    if name == "imagenet":
        return image_folder(root, train, img_size or DATA_INFO["imagenet"].img_size, **pipeline)
    raise ConfigError(f"unknown dataset {name!r}; choose from {DATASETS}")


def num_classes_of(dataset: Dataset) -> int:
    base = dataset.dataset if isinstance(dataset, Subset) else dataset
    return len(base.classes)


def subset(dataset: Dataset, limit: int | None, seed: int = 0) -> Dataset:
    """A fixed random subset of ``limit`` samples (the whole set when ``limit`` is None)."""
    if limit is None or limit >= len(dataset):
        return dataset
    gen = torch.Generator().manual_seed(seed)
    return Subset(dataset, torch.randperm(len(dataset), generator=gen)[:limit].tolist())


def make_loader(
    dataset: Dataset,
    batch_size: int,
    train: bool,
    seed: int = 0,
    workers: int = 0,
    sampler: Sampler | None = None,
    drop_last: bool = False,
) -> DataLoader:
    """A loader over ``dataset``; shuffled by a generator seeded with ``seed`` when ``train``.

    With a ``sampler`` (e.g. a ``DistributedSampler``) the sampler decides the order instead.
    """
    if sampler is not None:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            drop_last=drop_last,
            num_workers=workers,
            persistent_workers=False,
        )
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=train,
        drop_last=drop_last,
        generator=gen,
        num_workers=workers,
    )
