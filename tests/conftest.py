"""Shared fixtures: a Fashion-MNIST folder for the tests, and small calibrated models."""

from __future__ import annotations

import pytest
import torch

from qmlp_brevitas.data import DEBIAN_FASHION_MNIST, prepare_fashion_mnist
from qmlp_brevitas.models import create_qmlp
from qmlp_brevitas.train import calibrate

BIT_PAIRS = [(2, 2), (4, 4), (8, 8)]


@pytest.fixture(scope="session")
def fmnist_dir(tmp_path_factory):
    """A data folder with Fashion-MNIST unpacked from the Debian package."""
    if not (DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file():
        pytest.fail(
            "Fashion-MNIST is missing: install the Debian package dataset-fashion-mnist "
            "(scripts/setup.sh does)"
        )
    root = tmp_path_factory.mktemp("data")
    prepare_fashion_mnist(root)
    return root


def calibrated(name: str, w: int | None, a: int | None, seed: int = 0, **kwargs):
    """A variant with its activation quantizers calibrated on random data, in eval mode."""
    torch.manual_seed(seed)
    model = create_qmlp(name, w_bits=w, a_bits=a, **kwargs)
    x = torch.randn(32, model.in_chans, model.img_size, model.img_size)
    calibrate(model, [(x[:16], None), (x[16:], None)], batches=2)
    return model.eval()
