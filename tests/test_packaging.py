"""Packaging: pyproject.toml and environment.yml pin the same versions; README and CI agree."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
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


def _wheel(tmp_path) -> Path:
    """A wheel of the project, built from a copy of its sources in ``tmp_path``."""
    import shutil
    import subprocess
    import sys

    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "qmlp_brevitas",
        source / "qmlp_brevitas",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
        + ["-w", str(tmp_path / "dist"), str(source)],
        check=True,
    )
    (wheel,) = (tmp_path / "dist").glob("qmlp_brevitas-*.whl")
    return wheel


@pytest.mark.slow
def test_plain_install_has_the_console_scripts_and_presets(tmp_path):
    """``pip install .`` (not editable) into a fresh venv: the console scripts start, the run
    presets and the Verilator patches are there. The pinned packages come from this
    interpreter's site-packages (on PYTHONPATH: its .pth files, this project's editable
    install among them, are not read from there)."""
    import os
    import subprocess
    import sys
    import sysconfig
    import zipfile

    wheel = _wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    assert {n for n in names if n.startswith("qmlp_brevitas/configs/")} == {
        f"qmlp_brevitas/configs/{p.name}"
        for p in (ROOT / "qmlp_brevitas" / "configs").glob("*.json")
    }
    assert any(n.endswith("verilator_patches/skid_verilator.patch") for n in names)
    hdl = [p for p in (ROOT / "qmlp_brevitas" / "hdl").iterdir() if p.suffix in (".sv", ".v")]
    assert hdl and all(f"qmlp_brevitas/hdl/{p.name}" in names for p in hdl)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # Without this session's PYTHONPATH: pip would take a checkout's egg-info for an install.
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index"]
    subprocess.run([*pip, str(wheel)], check=True, env=clean)
    env = {**clean, "PYTHONPATH": sysconfig.get_paths()["purelib"]}

    def run(*argv):
        done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout

    where = run(
        str(venv / "bin" / "python"), "-c", "import qmlp_brevitas; print(qmlp_brevitas.__file__)"
    )
    assert where.startswith(str(venv))
    help_text = run(str(venv / "bin" / "qmlp-train"), "--help")
    assert "--config" in help_text and "resmlp24-qmlp-w4a4" in help_text
    tools = ("export", "ablation", "ranges", "build", "rtlsim", "bench")
    for tool in (*tools, "design-space", "bench-build"):
        assert "usage:" in run(str(venv / "bin" / f"qmlp-{tool}"), "--help")
    code = "from qmlp_brevitas.rtlsim.patches import load_patches; print(len(load_patches()))"
    assert int(run(str(venv / "bin" / "python"), "-c", code)) == 4
