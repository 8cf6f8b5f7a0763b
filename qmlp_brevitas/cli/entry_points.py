"""The console scripts' entry points (``[project.scripts]``), one per tool of this package.

Each hides library start-up noise, which must happen before torch and Brevitas load (hence the
late import of the tool's module), and runs the tool's ``main`` under the shared error policy
(:func:`qmlp_brevitas.cli.common.run_main`). They live here, not in the package's
``__init__``: importing ``qmlp_brevitas.cli.train`` sets the package's attribute ``train`` to
that module.
"""

from __future__ import annotations

import importlib
import sys
from typing import NoReturn


def _launch(tool: str) -> NoReturn:
    from .common import quiet_libraries, run_main

    quiet_libraries()
    sys.exit(run_main(importlib.import_module(f".{tool}", __package__).main))


def train() -> NoReturn:
    _launch("train")


def export() -> NoReturn:
    _launch("export")


def ablation() -> NoReturn:
    _launch("ablation")


def ranges() -> NoReturn:
    _launch("ranges")


def build() -> NoReturn:
    _launch("build")


def rtlsim() -> NoReturn:
    _launch("rtlsim")


def bench() -> NoReturn:
    _launch("bench")


def design_space() -> NoReturn:
    _launch("design_space")


def bench_build() -> NoReturn:
    _launch("bench_build")


def rtl_resources() -> NoReturn:
    _launch("rtl_resources")
