"""Initialise a Q-MLP model from a float checkpoint of the matching timm model (``--init``).

The paper fine-tunes quantized models from float ImageNet checkpoints. timm's ``MlpMixer``
(``mixer_b16_224``) and ResMLP (``resmlp_24_224``) name their weights

* ``stem.proj``, ``blocks.N.norm1`` / ``norm2`` (LayerNorm ``weight``/``bias`` or ResMLP's
  Affine ``alpha``/``beta`` of shape ``(1, 1, C)``), ``norm``, ``head``;
* token mixing ``blocks.N.mlp_tokens.fc1``/``fc2`` (Mixer) or ``blocks.N.linear_tokens``
  (ResMLP); channel mixing ``blocks.N.mlp_channels.fc1``/``fc2``;
* ResMLP's LayerScale ``blocks.N.ls1`` / ``ls2``.

:func:`map_timm_state` maps them onto :class:`~qmlp_brevitas.models.QMLPNet`. With the multiple
token-mixing MLPs of Q-MLP (``token_groups`` k > 1, paper Sec. 4.4) every group's token mixer
starts as a copy of timm's single token mixer, as the paper's code does; since a token mixer acts
on each channel separately, the float model's output is unchanged by that split. Weights with no
place in the Q-MLP model (for example Affine norms when the recipe uses LayerNorm) are dropped,
and parameters with no source keep their initial values; the report lists both. Checkpoints in
Facebook's original ResMLP naming are first renamed by timm's own ``checkpoint_filter_fn``.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from timm.models.mlp_mixer import checkpoint_filter_fn
from torch import nn

from .checkpoint import (
    CheckpointError,
    is_quantizer_key,
    load_checkpoint,
    load_float_state,
    model_state_of,
)

_TIMM_TOKEN_KEY = re.compile(r"^blocks\.\d+\.(mlp_tokens|linear_tokens)\.")
_FB_KEY = "patch_embed.proj.weight"


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a local checkpoint: ``.safetensors`` or a torch file (``weights_only``)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        if not path.is_file():
            raise CheckpointError(f"checkpoint {path} does not exist; pass the path of a file")
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as err:
            raise CheckpointError(f"{path} is not a readable safetensors file ({err})") from err
    return model_state_of(load_checkpoint(path, expect_format=False))


def is_timm_state(state: dict) -> bool:
    """Whether a state dict uses timm's MlpMixer/ResMLP naming (or Facebook's ResMLP naming)."""
    return _FB_KEY in state or any(_TIMM_TOKEN_KEY.match(k) for k in state)


def _target_names(key: str, groups: int) -> list[str]:
    """The Q-MLP names a timm key maps to (several for a token mixer with k groups)."""
    m = re.match(r"^blocks\.(\d+)\.(.+)$", key)
    if not m:
        return [key]  # stem.*, norm.*, head.*
    block, rest = m.groups()
    prefix = f"blocks.{block}."
    if rest.startswith("mlp_tokens."):
        tail = rest[len("mlp_tokens.") :]
        return [f"{prefix}token_mixing.mixers.{g}.{tail}" for g in range(groups)]
    if rest.startswith("linear_tokens."):
        tail = rest[len("linear_tokens.") :]
        return [f"{prefix}token_mixing.mixers.{g}.fc.{tail}" for g in range(groups)]
    if rest in ("ls1", "ls2"):
        return [f"{prefix}{rest}.gamma"]
    return [key]


def map_timm_state(state: dict[str, torch.Tensor], model: nn.Module) -> tuple[dict, dict]:
    """Map a timm MlpMixer/ResMLP state dict onto ``model``.

    Returns ``(weights, report)``: ``weights`` to load into ``model`` and ``report`` with the
    lists ``loaded`` (model names filled from the checkpoint), ``copied`` (the extra token-mixing
    MLPs, filled with a copy of the single one), ``new`` (model parameters left at their initial
    values), ``dropped`` (checkpoint names with no place in the model, with the reason).
    Raises :class:`CheckpointError` when the checkpoint is of another size (depth, width,
    tokens): fine-tuning needs the matching model.
    """
    if _FB_KEY in state:
        state = checkpoint_filter_fn(state, None)
    own = model.state_dict()
    groups = getattr(getattr(model, "recipe", None), "token_groups", 1)
    weights: dict[str, torch.Tensor] = {}
    loaded, copied, dropped, shape_errors = [], [], [], []
    for key, value in state.items():
        targets = _target_names(key, groups)
        if targets[0] not in own:
            dropped.append(f"{key} (no such parameter in this model)")
            continue
        for i, target in enumerate(targets):
            want = own[target].shape
            if value.shape != want and value.numel() == own[target].numel() and value.ndim == 3:
                value = value.reshape(want)  # Affine alpha/beta: (1, 1, C) -> (C,)
            if value.shape != want:
                if key.startswith("head."):
                    dropped.append(f"{key} (shape {tuple(value.shape)}, model {tuple(want)})")
                    break
                shape_errors.append(f"{key}: checkpoint {tuple(value.shape)}, model {tuple(want)}")
                break
            weights[target] = value.clone() if i else value
            (copied if i else loaded).append(target)
    if shape_errors:
        raise CheckpointError(
            "the timm checkpoint does not fit this model (other embed_dim, depth, patch or image "
            "size?): " + "; ".join(shape_errors[:5]) + "; pass the --model that matches it "
            "(qmlp_resmlp_24_224 for resmlp_24_224, qmlp_mixer_b16_224 for mixer_b16_224)"
        )
    deeper = sorted({int(k.split(".")[1]) for k in state if k.startswith("blocks.")})
    model_depth = len(getattr(model, "blocks", []))
    if deeper and deeper[-1] + 1 != model_depth:
        raise CheckpointError(
            f"the timm checkpoint has {deeper[-1] + 1} blocks, the model {model_depth}; pass the "
            "--model of the same depth"
        )
    new = sorted(
        k
        for k in own
        if k not in weights and not is_quantizer_key(k) and not k.endswith("num_batches_tracked")
    )
    report = {
        "format": "timm",
        "loaded": sorted(loaded),
        "copied": sorted(copied),
        "new": new,
        "dropped": sorted(dropped),
    }
    return weights, report


def load_init(model: nn.Module, path: str | Path) -> dict:
    """Initialise ``model`` from the float checkpoint ``path`` (timm's or this project's).

    A timm MlpMixer/ResMLP checkpoint goes through :func:`map_timm_state`; any other is taken as
    a float checkpoint of this project's model (same names, see
    :func:`~qmlp_brevitas.checkpoint.load_float_weights`).
    """
    state = read_state_dict(path)
    if not is_timm_state(state):
        report = load_float_state(model, state, path)
        return {"format": "qmlp", "copied": [], "new": [], "dropped": report["unexpected"]} | report
    weights, report = map_timm_state(state, model)
    model.load_state_dict(weights, strict=False)
    return report


def describe(report: dict, limit: int = 6) -> list[str]:
    """Readable lines of a :func:`load_init` report."""

    def names(items: list[str]) -> str:
        more = f" ... (+{len(items) - limit})" if len(items) > limit else ""
        return ", ".join(items[:limit]) + more

    lines = [f"{len(report['loaded'])} tensors loaded ({report['format']} checkpoint)"]
    if report["copied"]:
        lines.append(
            f"{len(report['copied'])} new tensors copied from the single token-mixing MLP: "
            + names(report["copied"])
        )
    if report["new"]:
        lines.append(f"{len(report['new'])} new tensors at initial values: {names(report['new'])}")
    if report["dropped"]:
        lines.append(
            f"{len(report['dropped'])} checkpoint tensors dropped: " + names(report["dropped"])
        )
    return lines
