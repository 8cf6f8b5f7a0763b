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
TOOLS = (
    "train",
    "export",
    "ablation",
    "ranges",
    "build",
    "rtlsim",
    "bench",
    "design_space",
    "bench_build",
    "rtl_resources",
)
WRAPPERS = {
    "scripts/train_brevitas.py": "train",
    "scripts/export_qonnx.py": "export",
    "scripts/ablation.py": "ablation",
    "scripts/analyze_ranges.py": "ranges",
    "scripts/bench_step.py": "bench",
    "fpga/build.py": "build",
    "fpga/rtlsim.py": "rtlsim",
    "scripts/design_space.py": "design_space",
    "scripts/bench_build.py": "bench_build",
    "scripts/rtl_resources.py": "rtl_resources",
}


def _script(tool: str) -> str:
    """The console script of ``tool`` (``design_space`` -> ``qmlp-design-space``)."""
    return "qmlp-" + tool.replace("_", "-")


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
    assert scripts == {_script(tool): f"qmlp_brevitas.cli.entry_points:{tool}" for tool in TOOLS}
    for tool in TOOLS:  # the tool's module imported first, as in a session that used it
        assert callable(importlib.import_module(f"qmlp_brevitas.cli.{tool}").main)
        entry_points = importlib.import_module("qmlp_brevitas.cli.entry_points")
        assert callable(getattr(entry_points, tool))


@pytest.mark.parametrize("tool", TOOLS)
def test_entry_points_run_their_tool(tool, capsys):
    entry_points = importlib.import_module("qmlp_brevitas.cli.entry_points")
    with pytest.raises(SystemExit) as info, pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.argv", [_script(tool), "--help"])
        getattr(entry_points, tool)()
    assert info.value.code == 0
    assert "usage: " + _script(tool) in capsys.readouterr().out


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
        ("design_space", []),
        ("bench_build", ["--run", "none"]),
    ],
)
def test_out_under_a_file_is_one_line_for_every_tool(tool, argv, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    main = importlib.import_module(f"qmlp_brevitas.cli.{tool}").main
    assert run_main(main, [*argv, "--out", str(tmp_path / "file" / "out")]) == 2
    err = capsys.readouterr().err
    out, file = tmp_path / "file" / "out", tmp_path / "file"
    assert err == f"error: --out {out} cannot be a folder: {file} is a file; choose another --out\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--budget", "LUTS=3"], "error: --budget item 'LUTS=3': unknown resource 'LUTS'"),
        (["--budget", "LUT=many"], "error: --budget item 'LUT=many': 'many' is not a number"),
        (["--budget", "DSP=-1"], "error: --budget item 'DSP=-1': must be 0 or more"),
        (["--budget", "--part", "xcvu9p-flga2104-2-i"], "error: no resource capacity known"),
        (["--requant-bits", "1"], "error: --requant-bits must be 2 to 32, got 1"),
    ],
)
def test_build_refuses_a_bad_budget_or_requant_width_before_reading_the_model(
    argv, message, tmp_path, capsys
):
    """The model does not exist: the setting is refused first, and nothing is made."""
    from qmlp_brevitas.cli import build

    out = tmp_path / "out"
    code = run_main(build.main, ["--onnx", str(tmp_path / "none.onnx"), "--out", str(out), *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(message) and err.count("\n") == 1
    assert not out.exists()


def test_design_space_refuses_a_negative_budget_before_any_work(tmp_path, capsys):
    from qmlp_brevitas.cli import design_space

    argv = ["--ablation-out", str(tmp_path / "ablation"), "--out", str(tmp_path / "out")]
    assert run_main(design_space.main, [*argv, "--lut-budget", "30000", "-5"]) == 2
    assert capsys.readouterr().err.startswith("error: --budget item 'LUT=-5': must be 0 or more")
    assert not (tmp_path / "out").exists()
    assert run_main(design_space.main, argv) == 2  # nothing exported there
    assert "no exported run in" in capsys.readouterr().err
