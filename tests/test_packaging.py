"""Packaging: pyproject.toml and environment.yml pin the same versions; README and CI agree."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pins(requirements) -> dict[str, str]:
    pins = {}
    for req in requirements:
        if req.startswith("-e"):
            continue
        name, _, version = req.partition("==")
        assert version, f"{req!r} is not pinned with =="
        pins[name.strip().lower()] = version.strip()
    return pins


def test_environment_yml_pins_match_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        deps += extra
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert _pins(pip_section) == _pins(deps)


def test_ci_runs_the_readme_test_command():
    ci_lines = [
        line.strip()
        for line in (ROOT / ".ci/run").read_text().splitlines()
        if line.strip() and not line.startswith("#") and not line.startswith(("set ", "cd "))
    ]
    assert len(ci_lines) == 1
    assert ci_lines[0] in (ROOT / "README.md").read_text()


def test_hdl_sources_are_package_data():
    """A non-editable install carries the project's SystemVerilog (qmlp_brevitas/hdl)."""
    from fnmatch import fnmatch

    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = setuptools["package-data"]["qmlp_brevitas.hdl"]
    sources = [
        p.name for p in (ROOT / "qmlp_brevitas" / "hdl").iterdir() if p.suffix in (".sv", ".v")
    ]
    assert sources and all(any(fnmatch(name, pat) for pat in patterns) for name in sources)
