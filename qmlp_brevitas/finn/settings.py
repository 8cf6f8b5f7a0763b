"""finn-plus used as a library: settings, and operation on a machine without Vivado.

finn-plus expects to be started through its ``finn`` command, which initialises global
settings and builds the XSI simulator bindings from Vivado. Used as a library, it needs
:func:`finn.util.settings.initialize_dummy_settings`, and on a machine without Vivado the
XSI names that some FINN modules import at load time must not try to build the bindings.
:func:`setup_finn` does both, once, before any FINN module is used; importing this package
changes nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import QMLPError

_XSI_NAMES = (
    "SimEngine",
    "locate_glbl",
    "compile_sim_obj",
    "get_simkernel_so",
    "load_sim_obj",
    "reset_rtlsim",
    "close_rtlsim",
    "rtlsim_multi_io",
)
# Only for the builder's final metadata step, which records the Vivado folder name.
NO_VIVADO_PLACEHOLDER = "vivado-not-installed"


class VivadoRequiredError(QMLPError, RuntimeError):
    """A step that needs Vivado/Vitis (XSI simulation, IP generation, synthesis) was reached."""


def vivado_available() -> bool:
    """Whether ``XILINX_VIVADO`` points to a Vivado installation."""
    root = os.environ.get("XILINX_VIVADO", "")
    return bool(root) and root != NO_VIVADO_PLACEHOLDER and Path(root).is_dir()


def _unavailable(name: str):
    def fail(*_args, **_kwargs):
        raise VivadoRequiredError(
            f"finn.xsi.{name} needs Vivado's XSI simulator; set XILINX_VIVADO to a Vivado "
            "installation (RTL simulation with Verilator is in qmlp_brevitas.rtlsim)"
        )

    fail.__name__ = name
    return fail


def _stub_xsi() -> None:
    """Bind the lazily built XSI names of ``finn.xsi`` to functions that raise a clear error.

    ``finn.xsi`` builds its bindings from Vivado when one of these names is first looked up;
    ``finn.builder.build_dataflow_steps`` imports ``SimEngine`` at load time.
    """
    import finn.xsi

    for name in _XSI_NAMES:
        if name not in vars(finn.xsi):
            setattr(finn.xsi, name, _unavailable(name))


def setup_finn(build_dir: str | Path) -> Path:
    """Prepare finn-plus for use as a library; call before FINN is used.

    ``build_dir`` receives FINN's temporary files (``FINN_BUILD_DIR``) unless that variable is
    already set. Without Vivado, the XSI names are stubbed and ``XILINX_VIVADO`` gets a
    placeholder that only the builder's metadata report reads. Returns the FINN build folder.
    """
    from finn.util import settings as finn_settings

    build_dir = Path(os.environ.get("FINN_BUILD_DIR") or build_dir).absolute()
    build_dir.mkdir(parents=True, exist_ok=True)
    os.environ["FINN_BUILD_DIR"] = str(build_dir)
    finn_settings.initialize_dummy_settings()
    if not vivado_available():
        os.environ.setdefault("XILINX_VIVADO", NO_VIVADO_PLACEHOLDER)
        if os.environ["XILINX_VIVADO"] != NO_VIVADO_PLACEHOLDER:
            # Set but not a folder: a broken setup, named rather than half used.
            raise VivadoRequiredError(
                f"XILINX_VIVADO={os.environ['XILINX_VIVADO']} is not a folder; source Vivado's "
                "settings64.sh or unset XILINX_VIVADO for an estimate-only build"
            )
        _stub_xsi()
    return build_dir
