"""The command-line tools: one module each, one error policy, thin wrapper scripts."""

from __future__ import annotations

import ast
import importlib
import tomllib
from pathlib import Path

import pytest

from qmlp_brevitas.cli.common import run_main
from qmlp_brevitas.errors import CheckFailedError, ConfigError, QMLPError
from qmlp_brevitas.finn.errors import BuildError

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ("train", "export", "ablation", "ranges", "build", "rtlsim", "bench")
WRAPPERS = {
    "scripts/train_brevitas.py": "train",
    "scripts/export_qonnx.py": "export",
    "scripts/ablation.py": "ablation",
    "scripts/analyze_ranges.py": "ranges",
    "scripts/bench_step.py": "bench",
    "fpga/build.py": "build",
    "fpga/rtlsim.py": "rtlsim",
}


def _raises(error):
    def main(argv):
        raise error

    return main


def test_own_errors_are_one_line_with_their_exit_code(capsys):
    assert run_main(_raises(ConfigError("--lr must be positive, got -1"))) == 2
    assert capsys.readouterr().err == "error: --lr must be positive, got -1\n"
    assert run_main(_raises(CheckFailedError("nothing to check"))) == 1
    assert run_main(_raises(BuildError("step_x", "why"))) == 1
    assert "FINN build failed in step_x: why" in capsys.readouterr().err
    assert run_main(_raises(KeyboardInterrupt())) == 130


@pytest.mark.parametrize("error", [ValueError("deep inside torch"), FileNotFoundError("x")])
def test_other_errors_are_bugs_and_keep_their_traceback(error):
    with pytest.raises(type(error), match=str(error)):
        run_main(_raises(error))


def test_project_errors_are_still_the_builtin_kinds_callers_catch():
    from qmlp_brevitas.checkpoint import CheckpointError
    from qmlp_brevitas.data import DatasetNotFoundError
    from qmlp_brevitas.export import OnnxFileError
    from qmlp_brevitas.quant import BitWidthError

    for cls, builtin in (
        (CheckpointError, ValueError),
        (DatasetNotFoundError, FileNotFoundError),
        (OnnxFileError, ValueError),
        (BitWidthError, ValueError),
        (BuildError, RuntimeError),
    ):
        assert issubclass(cls, QMLPError) and issubclass(cls, builtin)


def test_console_scripts_name_the_tools():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {f"qmlp-{tool}": f"qmlp_brevitas.cli.entry_points:{tool}" for tool in TOOLS}
    for tool in TOOLS:  # the tool's module imported first, as in a session that used it
        assert callable(importlib.import_module(f"qmlp_brevitas.cli.{tool}").main)
        entry_points = importlib.import_module("qmlp_brevitas.cli.entry_points")
        assert callable(getattr(entry_points, tool))


@pytest.mark.parametrize("tool", TOOLS)
def test_entry_points_run_their_tool(tool, capsys):
    entry_points = importlib.import_module("qmlp_brevitas.cli.entry_points")
    with pytest.raises(SystemExit) as info, pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.argv", [f"qmlp-{tool}", "--help"])
        getattr(entry_points, tool)()
    assert info.value.code == 0
    assert "usage: qmlp-" + tool in capsys.readouterr().out


@pytest.mark.parametrize("tool", TOOLS)
def test_every_tool_has_help(tool, capsys):
    main = importlib.import_module(f"qmlp_brevitas.cli.{tool}").main
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "usage:" in capsys.readouterr().out


@pytest.mark.parametrize(("path", "tool"), sorted(WRAPPERS.items()))
def test_scripts_are_thin_wrappers_of_the_tools(path, tool):
    source = (ROOT / path).read_text()
    tree = ast.parse(source)
    assert "sys.path" not in source
    imports = [n for n in tree.body if isinstance(n, ast.ImportFrom)]
    assert [(n.module, [a.name for a in n.names]) for n in imports] == [
        ("qmlp_brevitas.cli.entry_points", [tool])
    ]
    main_block = tree.body[-1]
    assert (
        isinstance(main_block, ast.If) and ast.unparse(main_block.test) == "__name__ == '__main__'"
    )
    assert ast.unparse(main_block.body[0]) == f"{tool}()"


@pytest.mark.parametrize(
    ("tool", "argv"),
    [
        ("train", []),
        ("export", ["--checkpoint", "none.pt"]),
        ("ablation", []),
        ("ranges", ["--model", "qmlp_mixer_28"]),
        ("build", ["--onnx", "none.onnx"]),
    ],
)
def test_out_under_a_file_is_one_line_for_every_tool(tool, argv, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    main = importlib.import_module(f"qmlp_brevitas.cli.{tool}").main
    assert run_main(main, [*argv, "--out", str(tmp_path / "file" / "out")]) == 2
    err = capsys.readouterr().err
    out, file = tmp_path / "file" / "out", tmp_path / "file"
    assert err == f"error: --out {out} cannot be a folder: {file} is a file; choose another --out\n"
