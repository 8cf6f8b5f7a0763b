"""Specialised FINN layers back as their generic HW ops, for Python execution.

A model after ``SpecializeLayers`` holds ``X_hls``/``X_rtl`` nodes, which execute only through
C++ or RTL simulation (Vitis HLS, Vivado XSI). The generic FINN layer ``X`` they specialise
executes in Python with the same folded attributes; the build's folded-stage verification and
the RTL check's reference execution both run such a copy. The project's own layers
(``qmlp_brevitas.finn.custom_op[.rtl|.hls]``) are treated the same way. No FINN import at module
level.
"""

from __future__ import annotations

from copy import deepcopy

from qonnx.core.modelwrapper import ModelWrapper

from .project_ops import DOMAIN as PROJECT_HW_DOMAIN

HW_DOMAIN = "finn.custom_op.fpgadataflow"
# specialised domain -> (suffix of the op type, generic domain)
SPECIALISED = {
    f"{base}.{style}": (f"_{style}", base)
    for base in (HW_DOMAIN, PROJECT_HW_DOMAIN)
    for style in ("hls", "rtl")
}


def generic_hw_copy(model: ModelWrapper) -> ModelWrapper:
    """A copy of ``model`` with every specialised ``X_hls``/``X_rtl`` node as its generic ``X``."""
    copy = ModelWrapper(deepcopy(model.model))
    for node in copy.graph.node:
        suffix, generic = SPECIALISED.get(node.domain, (None, None))
        if suffix and node.op_type.endswith(suffix):
            node.op_type = node.op_type[: -len(suffix)]
            node.domain = generic
    return copy


def register_hw_ops() -> None:
    """Import every module of FINN's HW-abstraction ops so that each op is registered.

    FINN registers an op when its module is imported; some (``Reshape``, for one) are imported
    only by the transformation that creates them, which a fresh process has not run.
    """
    import importlib
    import pkgutil

    import finn.custom_op.fpgadataflow as package

    for info in pkgutil.iter_modules(package.__path__):
        if not info.ispkg:
            importlib.import_module(f"{package.__name__}.{info.name}")
    importlib.import_module(PROJECT_HW_DOMAIN)
