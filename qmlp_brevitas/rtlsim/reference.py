"""FINN's reference execution of a specialised dataflow model, node by node.

A model after ``SpecializeLayers`` holds ``*_hls`` and ``*_rtl`` nodes, whose own execution
needs C++ compilation (HLS) or a simulator. Their HW-abstraction ops (``MVAU``,
``Thresholding``, ``ElementwiseAdd``, ...) execute in Python with FINN's reference semantics, and
the specialised variants' Python path (``exec_mode="cppsim"`` of an RTL layer) calls exactly
these. So the reference is FINN's ``execute_onnx`` on a copy of the model in which every
specialised node is turned back into its HW-abstraction op, returning the full execution context:
every layer's real input and FINN's output of that layer.
"""

from __future__ import annotations

import copy

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper

from qmlp_brevitas.rtlsim.node import ensure_finn_settings

SPECIALISED = {
    "finn.custom_op.fpgadataflow.hls": "_hls",
    "finn.custom_op.fpgadataflow.rtl": "_rtl",
}
HW_DOMAIN = "finn.custom_op.fpgadataflow"


def generalised(model: ModelWrapper) -> ModelWrapper:
    """A copy of ``model`` with ``X_hls``/``X_rtl`` nodes turned back into HW op ``X``."""
    model = copy.deepcopy(model)
    for node in model.graph.node:
        suffix = SPECIALISED.get(node.domain)
        if suffix and node.op_type.endswith(suffix):
            node.op_type = node.op_type[: -len(suffix)]
            node.domain = HW_DOMAIN
    return model


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


def execution_context(model: ModelWrapper, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """FINN's full execution context of ``model`` on ``inputs`` (HW ops run in Python)."""
    from finn.core.onnx_exec import execute_onnx

    ensure_finn_settings()
    register_hw_ops()
    return execute_onnx(generalised(model), inputs, return_full_exec_context=True)
