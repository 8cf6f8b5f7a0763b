"""RTL variants for the FINN layers that finn-plus builds with HLS, and FINN's view of them.

finn-plus's ``SpecializeLayers`` turns each HW layer ``X`` into ``X_hls`` or ``X_rtl``
(``finn.custom_op.fpgadataflow.hls``/``.rtl``): RTL where finn-plus has an RTL variant that fits
the layer (``preferred_impl_style`` "" or "rtl"), HLS otherwise. For the integer layers that
finn-plus has only as HLS -- or whose finn-plus RTL variant it allows only on Versal -- the
project adds RTL variants. :class:`SpecializeToRTL` swaps them in:

* FINN's own ``X_rtl`` where finn-plus has an integer RTL core for the layer's configuration
  (``ElementwiseAdd``/``Mul``: two streamed integer operands of one width and signedness, the
  output exactly one bit wider for an add, twice as wide for a mul -- finn-plus's ``eltwise``
  core, which ``SpecializeLayers`` uses only on Versal and for float operands);
* otherwise the project's ``X_rtl`` (:mod:`qmlp_brevitas.finn.custom_op.rtl`) for
  ``DuplicateStreams``, ``StreamingSplit``, ``StreamingConcat`` and ``GlobalAccPool``;
* a layer whose ``preferred_impl_style`` is "hls" stays HLS.

The swap keeps every attribute of the HLS layer (folding, data types, shapes), so the RTL layer
drops in where the HLS layer was. It runs after FINN's folding steps: FINN's ``SetFolding``
chooses the folding of these layers by their HLS op types, and the RTL layer takes it over.

FINN's analyses (cycle and resource estimates, critical path) and code generation recognise
RTL layers by FINN's rtl domain. :func:`run_with_finn_domains` runs a FINN step with the
project's RTL layers presented in that domain (their classes registered there with qonnx's
``add_op_to_domain``) and puts them back afterwards.
"""

from __future__ import annotations

from collections.abc import Callable

from onnx import NodeProto
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.transformation.general import GiveUniqueNodeNames
from qonnx.util.basic import get_by_name

from .domains import HLS_DOMAIN as FINN_HLS_DOMAIN
from .domains import HW_DOMAIN as FINN_HW_DOMAIN
from .domains import QMLP_RTL_DOMAIN as PROJECT_RTL_DOMAIN
from .domains import RTL_DOMAIN as FINN_RTL_DOMAIN

PROJECT_KINDS = ("DuplicateStreams", "StreamingSplit", "StreamingConcat", "GlobalAccPool")
FINN_ELTWISE_KINDS = ("ElementwiseAdd", "ElementwiseMul")


def hw_kind(node: NodeProto) -> str | None:
    """``X`` for a generic FINN HW layer ``X`` or its HLS variant ``X_hls``, else None."""
    if node.domain == FINN_HW_DOMAIN:
        return node.op_type
    if node.domain == FINN_HLS_DOMAIN and node.op_type.endswith("_hls"):
        return node.op_type[: -len("_hls")]
    return None


def preferred_style(node: NodeProto) -> str:
    """The node's ``preferred_impl_style`` ("" when not set)."""
    attr = get_by_name(node.attribute, "preferred_impl_style")
    return attr.s.decode() if attr is not None else ""


def finn_eltwise_rtl_possible(inst) -> bool:
    """Whether finn-plus's ``eltwise`` RTL core computes this integer elementwise layer.

    Its integer path (``binopi``) takes two streamed operands of one width and signedness and
    gives a result of width + 1 (add) or 2 * width (mul); ``ElementwiseBinary_rtl`` refuses
    anything else.
    """
    lhs, rhs, out = inst.lhs_dtype, inst.rhs_dtype, inst.out_dtype
    if not (lhs.is_integer() and rhs.is_integer() and out.is_integer()):
        return False
    if inst.lhs_style != "input" or inst.rhs_style != "input":
        return False
    if list(inst.lhs_shape) != list(inst.rhs_shape):
        return False
    if lhs.bitwidth() != rhs.bitwidth() or lhs.signed() != rhs.signed():
        return False
    width = lhs.bitwidth()
    want = 2 * width if inst.onnx_node.op_type.startswith("ElementwiseMul") else width + 1
    return out.bitwidth() == want


def rtl_variant(node: NodeProto) -> tuple[str, str] | None:
    """``(op_type, domain)`` of the RTL variant :class:`SpecializeToRTL` picks, or None."""
    from qonnx.custom_op.registry import getCustomOp

    kind = hw_kind(node)
    if kind is None or preferred_style(node) == "hls":
        return None
    if kind in PROJECT_KINDS:
        return kind + "_rtl", PROJECT_RTL_DOMAIN
    if kind in FINN_ELTWISE_KINDS and finn_eltwise_rtl_possible(getCustomOp(node)):
        return kind + "_rtl", FINN_RTL_DOMAIN
    return None


def _declared_attributes(op_type: str, domain: str, node: NodeProto) -> set[str]:
    from qonnx.custom_op.registry import getCustomOp

    probe = NodeProto()
    probe.CopyFrom(node)
    probe.op_type, probe.domain = op_type, domain
    return set(getCustomOp(probe).get_nodeattr_types())


def built_variant(inst):
    """The op instance the build makes of a layer: for a layer that :class:`SpecializeToRTL`
    swaps (an ``X_hls`` before ``step_qmlp_specialize_rtl``), its RTL variant on a copy of the
    node with the same attributes; any other layer as it is."""
    from qonnx.custom_op.registry import getCustomOp

    target = rtl_variant(inst.onnx_node)
    if target is None:
        return inst
    probe = NodeProto()
    probe.CopyFrom(inst.onnx_node)
    probe.op_type, probe.domain = target
    return getCustomOp(probe)


class SpecializeToRTL(Transformation):
    """Turn FINN HW/HLS layers that have an RTL variant into it (see the module docstring)."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        changed = False
        for node in model.graph.node:
            target = rtl_variant(node)
            if target is None:
                continue
            op_type, domain = target
            keep = _declared_attributes(op_type, domain, node)
            attributes = [a for a in node.attribute if a.name in keep]
            del node.attribute[:]
            node.attribute.extend(attributes)
            node.op_type, node.domain = op_type, domain
            changed = True
        if changed:
            model = model.transform(GiveUniqueNodeNames())
        return model, False


def register_in_finn_rtl_domain() -> None:
    """Register the project's RTL classes under FINN's rtl domain as well (qonnx registry)."""
    from qonnx.custom_op.registry import add_op_to_domain

    from .custom_op.rtl import custom_op

    for cls in custom_op.values():
        add_op_to_domain(FINN_RTL_DOMAIN, cls)


def _set_domain(model: ModelWrapper, outputs: set[str], domain: str) -> None:
    for node in model.graph.node:
        if node.output and node.output[0] in outputs:
            node.domain = domain


def run_with_finn_domains(
    step: Callable[[ModelWrapper, object], ModelWrapper], model: ModelWrapper, cfg
) -> ModelWrapper:
    """Run the FINN build step ``step`` with the project's RTL layers in FINN's rtl domain.

    The layers are identified by their first output tensor (FINN steps rename nodes, not
    tensors) and return to the project's domain afterwards, also when the step fails.
    """
    register_in_finn_rtl_domain()
    moved = {n.output[0] for n in model.graph.node if n.domain == PROJECT_RTL_DOMAIN}
    _set_domain(model, moved, FINN_RTL_DOMAIN)
    try:
        result = step(model, cfg)
    finally:
        _set_domain(model, moved, PROJECT_RTL_DOMAIN)
    _set_domain(result, moved, PROJECT_RTL_DOMAIN)
    return result
