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

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper

from qmlp_brevitas.finn.generic import generic_hw_copy, register_hw_ops
from qmlp_brevitas.rtlsim.node import ensure_finn_settings


def execution_context(model: ModelWrapper, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """FINN's full execution context of ``model`` on ``inputs`` (HW ops run in Python)."""
    from finn.core.onnx_exec import execute_onnx

    ensure_finn_settings()
    register_hw_ops()
    return execute_onnx(generic_hw_copy(model), inputs, return_full_exec_context=True)
