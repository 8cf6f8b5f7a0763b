"""Checkpoints: atomic writes, safe loading, clear errors, float initialisation."""

from __future__ import annotations

import pytest
import torch

from qmlp_brevitas.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_float_weights,
    save_checkpoint,
)
from qmlp_brevitas.models import create_qmlp


class Payload:
    """Not a tensor or plain value: must not be unpickled from a checkpoint."""


def test_round_trip_and_no_temporary_left(tmp_path):
    path = tmp_path / "ck.pt"
    save_checkpoint(path, {"epoch": 3, "w": torch.arange(4.0)})
    state = load_checkpoint(path)
    assert state["epoch"] == 3 and torch.equal(state["w"], torch.arange(4.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.pt"]


@pytest.mark.parametrize(
    "error",
    [
        # torch's zip writer on a full disk (measured: torch.save to /dev/full)
        RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598"),
        OSError(28, "No space left on device"),
    ],
    ids=["torch-writer", "oserror"],
)
def test_full_disk_keeps_previous_checkpoint(tmp_path, monkeypatch, error):
    path = tmp_path / "ck.pt"
    save_checkpoint(path, {"epoch": 1, "w": torch.arange(4.0)})

    def full_disk(obj, f, *args, **kwargs):
        with open(f, "wb") as fh:
            fh.write(b"PK\x03\x04 partial")
        raise error

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(CheckpointError) as info:
        save_checkpoint(path, {"epoch": 2, "w": torch.arange(4.0)})
    message = str(info.value)
    assert "\n" not in message and f"the previous checkpoint {path} is intact" in message
    assert "rerun with --resume" in message and "MB free" in message
    monkeypatch.undo()
    state = load_checkpoint(path)
    assert state["epoch"] == 1 and torch.equal(state["w"], torch.arange(4.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.pt"]


def test_full_disk_on_the_first_checkpoint_says_nothing_was_written(tmp_path, monkeypatch):
    def full_disk(obj, f, *args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(CheckpointError, match="no earlier checkpoint existed and none was written"):
        save_checkpoint(tmp_path / "ck.pt", {"epoch": 1})
    assert list(tmp_path.iterdir()) == []


def test_missing_checkpoint_says_what_to_do(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist; train a model first"):
        load_checkpoint(tmp_path / "none.pt")


@pytest.mark.parametrize("content", [b"", b"garbage" * 100])
def test_corrupt_checkpoint_is_refused(tmp_path, content):
    path = tmp_path / "ck.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)


def test_truncated_checkpoint_is_refused(tmp_path):
    path = tmp_path / "ck.pt"
    save_checkpoint(path, {"w": torch.randn(1000)})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)


def test_arbitrary_objects_are_not_unpickled(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "qmlp-brevitas-checkpoint", "payload": Payload()}, path)
    with pytest.raises(CheckpointError, match="objects other than tensors"):
        load_checkpoint(path)


def test_foreign_file_is_not_taken_for_a_run_checkpoint(tmp_path):
    path = tmp_path / "sd.pt"
    torch.save({"weight": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="use --init"):
        load_checkpoint(path)


def test_float_weights_initialise_the_quantized_model(tmp_path):
    torch.manual_seed(0)
    fp = create_qmlp("qmlp_mixer_28", depth=1).eval()
    torch.save(fp.state_dict(), tmp_path / "float.pt")
    q = create_qmlp("qmlp_mixer_28", depth=1, w_bits=8, a_bits=8)
    report = load_float_weights(q, tmp_path / "float.pt")
    assert set(report["loaded"]) == set(fp.state_dict())
    assert report["missing"] and all("_quant." in k for k in report["missing"])
    for key, value in fp.state_dict().items():
        assert torch.equal(q.state_dict()[key], value)


def test_float_weights_of_another_model_are_refused(tmp_path):
    torch.save(create_qmlp("qmlp_mixer_32", depth=1).state_dict(), tmp_path / "float.pt")
    with pytest.raises(CheckpointError, match="does not fit this model"):
        load_float_weights(create_qmlp("qmlp_mixer_28", depth=1), tmp_path / "float.pt")
    torch.save(create_qmlp("qmlp_mixer_28", depth=1).state_dict(), tmp_path / "d1.pt")
    with pytest.raises(CheckpointError, match="lacks model weights"):
        load_float_weights(create_qmlp("qmlp_mixer_28", depth=2), tmp_path / "d1.pt")
