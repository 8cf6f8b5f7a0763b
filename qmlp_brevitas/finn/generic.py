"""Specialised FINN layers back as their generic HW ops, for Python execution.

A model after ``SpecializeLayers`` holds ``X_hls``/``X_rtl`` nodes, which execute only through
C++ or RTL simulation (Vitis HLS, Vivado XSI). The generic FINN layer ``X`` they specialise
executes in Python with the same folded attributes; the build's folded-stage verification and
the RTL check's reference execution both run such a copy. The project's own ``X_rtl`` layers
(:mod:`qmlp_brevitas.finn.custom_op.rtl`) go back to their HW op: FINN's ``X``, or the
project's where ``X`` is one of the project's HW ops. No FINN import at module level.
"""

from __future__ import annotations

from copy import deepcopy
from pathlib import Path

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper

from ..errors import QMLPError
from .domains import HLS_DOMAIN, HW_DOMAIN, QMLP_HW_DOMAIN, QMLP_RTL_DOMAIN, RTL_DOMAIN

SPECIALISED_SUFFIX = {HLS_DOMAIN: "_hls", RTL_DOMAIN: "_rtl", QMLP_RTL_DOMAIN: "_rtl"}
PROJECT_DOMAIN = QMLP_HW_DOMAIN
PROJECT_RTL_DOMAIN = QMLP_RTL_DOMAIN


def generic_hw_copy(model: ModelWrapper) -> ModelWrapper:
    """A copy of ``model`` with every specialised ``X_hls``/``X_rtl`` node as its generic ``X``."""
    from .custom_op import custom_op as project_hw_ops

    copy = ModelWrapper(deepcopy(model.model))
    for node in copy.graph.node:
        suffix = SPECIALISED_SUFFIX.get(node.domain)
        if suffix and node.op_type.endswith(suffix):
            node.op_type = node.op_type[: -len(suffix)]
            project_op = node.domain == QMLP_RTL_DOMAIN and node.op_type in project_hw_ops
            node.domain = QMLP_HW_DOMAIN if project_op else HW_DOMAIN
    return copy


class PartitionError(QMLPError, ValueError):
    """A dataflow parent model without exactly one partition."""


def execute_in_parent(
    parent: ModelWrapper, child: ModelWrapper, inputs: dict[str, np.ndarray], child_path: Path
) -> dict[str, np.ndarray]:
    """FINN's execution of a dataflow parent model with its partition being ``child``.

    As FINN's own verification of the stages after ``step_create_dataflow_partition`` does, the
    parent's ``StreamingDataflowPartition`` node points at a Python-executable copy of
    ``child`` (saved to ``child_path``); the nodes outside the partition (host side) run as
    they are. Every generic HW op is registered first (:func:`register_hw_ops`), so that this
    also runs in a process that has not built the model. Returns the parent's full execution
    context.
    """
    from finn.core.onnx_exec import execute_onnx
    from qonnx.custom_op.registry import getCustomOp

    register_hw_ops()
    parent = ModelWrapper(deepcopy(parent.model))
    sdp = [n for n in parent.graph.node if n.op_type == "StreamingDataflowPartition"]
    if len(sdp) != 1:
        raise PartitionError(f"the dataflow parent has {len(sdp)} partitions, expected 1")
    Path(child_path).parent.mkdir(parents=True, exist_ok=True)
    generic_hw_copy(child).save(str(child_path))
    getCustomOp(sdp[0]).set_nodeattr("model", str(child_path))
    return execute_onnx(parent, inputs, return_full_exec_context=True)


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
    importlib.import_module(PROJECT_DOMAIN)
