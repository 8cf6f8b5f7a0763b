"""Run presets: the whole recipe of a paper-size run in one JSON file (``--config NAME``).

A preset is ``qmlp_brevitas/configs/<name>.json`` (package data, so an installed package has
them) or any JSON file given by path. Its keys are the option names of ``qmlp-train`` with ``-``
written ``_`` (``model``, ``w``, ``a``, ``preset`` for the Q-MLP technique preset
``qmlp``/``naive``, ``batch_size``, ``mixup`` ...); a ``description`` key documents it.
Options given on the command line override the preset's values.
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"  # package data


class PresetError(ConfigError):
    """A run preset that is missing or malformed."""


def list_presets(config_dir: Path = CONFIG_DIR) -> list[str]:
    """Names of the run presets in ``config_dir``."""
    return sorted(p.stem for p in config_dir.glob("*.json")) if config_dir.is_dir() else []


def preset_path(name: str, config_dir: Path = CONFIG_DIR) -> Path:
    """The file of preset ``name`` (a name in ``config_dir`` or a path to a JSON file)."""
    path = Path(name)
    if path.suffix == ".json" and path.is_file():
        return path
    path = config_dir / f"{name}.json"
    if not path.is_file():
        raise PresetError(
            f"no run preset {name!r}: expected {path}; known presets: "
            f"{', '.join(list_presets(config_dir)) or 'none'}"
        )
    return path


def load_preset(name: str, known: set[str], config_dir: Path = CONFIG_DIR) -> dict:
    """The option values of preset ``name``; keys not in ``known`` are an error."""
    path = preset_path(name, config_dir)
    try:
        values = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise PresetError(f"run preset {path} is not valid JSON ({err})") from err
    if not isinstance(values, dict):
        raise PresetError(f"run preset {path} must hold a JSON object of option values")
    values.pop("description", None)
    unknown = sorted(set(values) - known)
    if unknown:
        raise PresetError(
            f"run preset {path} sets unknown options {unknown}; known: {sorted(known)}"
        )
    return values
