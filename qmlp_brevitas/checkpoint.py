"""Checkpoints written atomically and loaded without unpickling arbitrary objects."""

from __future__ import annotations

import os
import pickle
import shutil
import zipfile
from pathlib import Path

import torch
from torch import nn

from .errors import QMLPError

FORMAT = "qmlp-brevitas-checkpoint"
VERSION = 1


class CheckpointError(QMLPError, ValueError):
    """A checkpoint that is missing, corrupt, or does not fit the model."""


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Write ``state`` to ``path`` atomically: a temporary file in the same folder, then rename.

    An interrupted or failed write leaves the previous checkpoint intact. A write that fails
    (a full disk: torch's writer raises ``RuntimeError: ... unexpected pos``; or an ``OSError``)
    is a :class:`CheckpointError` that says so.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save({"format": FORMAT, "version": VERSION, **state}, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        tmp.replace(path)
    except (OSError, RuntimeError) as err:
        kept = (
            f"the previous checkpoint {path} is intact"
            if path.is_file()
            else "no earlier checkpoint existed and none was written"
        )
        free_mb = shutil.disk_usage(path.parent).free / 2**20
        raise CheckpointError(
            f"could not write the checkpoint {path} ({type(err).__name__}: {_first_line(err)}; "
            f"{free_mb:.0f} MB free on that disk); {kept}. Free some space and rerun with --resume"
        ) from err
    finally:
        tmp.unlink(missing_ok=True)


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else ""


def load_model_state(model: nn.Module, state: dict, path: str | Path) -> None:
    """Load a run checkpoint's weights (``state["model"]``) into the model its config describes.

    Weights that do not fit (another architecture or technique setting than the config says) are
    a :class:`CheckpointError` naming the first mismatch; the checkpoint file is not touched.
    """
    weights = state.get("model")
    if not isinstance(weights, dict):
        raise CheckpointError(f"{path} holds no model weights ('model' entry); it is not a run")
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        # torch lists the problems one per line after a header line
        problems = [line.strip() for line in str(err).splitlines()[1:] if line.strip()]
        detail = problems[0] if problems else _first_line(err)
        if len(detail) > 160:
            detail = detail[:157] + "..."
        raise CheckpointError(
            f"the weights in {path} do not fit the model its config describes ({detail}"
            f"{f'; {len(problems) - 1} more' if len(problems) > 1 else ''}); the checkpoint is "
            "unchanged. Was its config.json or 'config' entry edited? Use a checkpoint whose "
            "config matches its weights"
        ) from err


def load_checkpoint(path: str | Path, expect_format: bool = True) -> dict:
    """Load a checkpoint with ``weights_only=True``; a clear error if it is missing or corrupt.

    ``expect_format=False`` also accepts a plain state dict or a dict holding ``state_dict`` /
    ``model`` (a float checkpoint saved by another tool).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {path} does not exist; train a model first (scripts/train_brevitas.py) "
            "or pass the path of an existing checkpoint.pt"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError) as err:
        raise CheckpointError(
            f"checkpoint {path} is corrupt or holds objects other than tensors and plain values "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
            "delete it and train again, or pass another checkpoint"
        ) from err
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, not a dict")
    if expect_format and state.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a {FORMAT} (no 'format' entry); use --init for float weights saved by "
            "another tool"
        )
    return state


def model_state_of(state: dict) -> dict:
    """The model state dict inside a checkpoint of any of the accepted layouts."""
    for key in ("model", "state_dict", "model_state_dict"):
        if key in state and isinstance(state[key], dict):
            return state[key]
    if all(isinstance(v, torch.Tensor) for v in state.values()):
        return state
    raise CheckpointError("no model state dict found in the checkpoint (keys: model/state_dict)")


def is_quantizer_key(key: str) -> bool:
    """Whether a state-dict key belongs to a Brevitas quantizer (scale, zero point, ...)."""
    return ".act_quant." in key or ".weight_quant." in key


def load_float_weights(model: nn.Module, path: str | Path) -> dict:
    """Initialise ``model`` from a float checkpoint of the same architecture.

    Returns ``{"loaded": [...], "missing": [...], "unexpected": [...]}``; only quantizer state may
    be missing (it is calibrated afterwards); any other mismatch is an error that names the keys.
    """
    return load_float_state(model, model_state_of(load_checkpoint(path, expect_format=False)), path)


def load_float_state(model: nn.Module, weights: dict, path: str | Path) -> dict:
    """:func:`load_float_weights` for a state dict already read from ``path``."""
    own = model.state_dict()
    shape_errors = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in weights.items()
        if k in own and own[k].shape != v.shape
    ]
    if shape_errors:
        raise CheckpointError(
            f"{path} does not fit this model (same --model as the float run?): "
            + "; ".join(shape_errors[:5])
        )
    result = model.load_state_dict(weights, strict=False)
    missing = [k for k in result.missing_keys if not is_quantizer_key(k)]
    if missing:
        raise CheckpointError(
            f"{path} lacks model weights {missing[:8]}{' ...' if len(missing) > 8 else ''}; "
            "was it trained with the same --model and technique settings?"
        )
    return {
        "loaded": sorted(set(weights) & set(own)),
        "missing": sorted(result.missing_keys),
        "unexpected": sorted(result.unexpected_keys),
    }
