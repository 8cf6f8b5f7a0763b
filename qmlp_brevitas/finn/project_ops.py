"""The project's FINN hardware layers in FINN's build: specialisation, folding, FINN's view.

The project's HW ops live in their own domains (:mod:`qmlp_brevitas.finn.custom_op`), as
FINN's do in ``finn.custom_op.fpgadataflow[.rtl|.hls]``. finn-plus 1.6.1 recognises hardware
layers by those domain strings: ``SpecializeLayers`` rewrites only nodes of exactly
``finn.custom_op.fpgadataflow`` into ``<op>_<style>`` of ``...<style>``, choosing the style from
its own ``rtl``/``hls`` registries and ``preferred_impl_style``; ``SetFolding``,
``AnnotateCycles``, the estimate analyses and ``dataflow_performance`` visit only
``is_hls_node``/``is_rtl_node`` (exact FINN domains); ``step_create_dataflow_partition`` refuses
any other node between FINN's layers. So:

* :class:`SpecializeProjectLayers` does for the project's ops what ``SpecializeLayers`` does for
  FINN's (same rules: ``preferred_impl_style``, else RTL when the op has an RTL variant);
* :class:`SetProjectFolding` folds them toward FINN's cycle target with FINN's own search
  (``SetFolding.optimize_attribute_val`` over the divisors of the op's folding limit);
* :func:`in_finn_view` runs a FINN step with the project's nodes presented in FINN's domains
  (their classes registered there with qonnx's ``add_op_to_domain``) and puts them back after,
  so that partitioning, estimates and reports treat them as hardware layers like FINN's own.

Nothing here imports FINN at module import (the op classes are imported when first needed).

An op takes part in folding by naming ``folding_attribute`` (e.g. ``"SIMD"``) and defining
``folding_limit()`` (the attribute's largest value; candidates are its divisors).
"""

from __future__ import annotations

from collections.abc import Callable

from onnx import NodeProto, helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import add_op_to_domain, getCustomOp
from qonnx.transformation.base import Transformation

FINN_HW_DOMAIN = "finn.custom_op.fpgadataflow"
DOMAIN = "qmlp_brevitas.finn.custom_op"  # the project's HW-abstraction ops
RTL_DOMAIN = DOMAIN + ".rtl"  # their RTL specialisations
HLS_DOMAIN = DOMAIN + ".hls"  # their HLS specialisations (none yet)
PROJECT_DOMAINS = (DOMAIN, RTL_DOMAIN, HLS_DOMAIN)
FINN_VIEW = {
    DOMAIN: FINN_HW_DOMAIN,
    RTL_DOMAIN: FINN_HW_DOMAIN + ".rtl",
    HLS_DOMAIN: FINN_HW_DOMAIN + ".hls",
}


def _registries() -> dict[str, dict]:
    """op_type -> class, per project domain."""
    from . import custom_op
    from .custom_op import rtl

    hls = {}
    try:
        from .custom_op import hls as hls_module

        hls = hls_module.custom_op
    except ImportError:
        pass
    return {DOMAIN: custom_op.custom_op, RTL_DOMAIN: rtl.custom_op, HLS_DOMAIN: hls}


def is_project_hw_node(node: NodeProto) -> bool:
    """A node of one of the project's HW domains."""
    return node.domain in PROJECT_DOMAINS


def is_hw_node(node: NodeProto) -> bool:
    """A FINN hardware layer: FINN's own or the project's."""
    return node.domain.startswith(FINN_HW_DOMAIN) or is_project_hw_node(node)


def register_in_finn_domains() -> None:
    """Register every project op class also under its FINN domain (for :func:`to_finn_view`)."""
    for domain, ops in _registries().items():
        for cls in ops.values():
            add_op_to_domain(FINN_VIEW[domain], cls)


def to_finn_view(model: ModelWrapper) -> int:
    """Move the project's nodes into FINN's domains, in place; returns how many moved."""
    register_in_finn_domains()
    moved = 0
    for node in model.graph.node:
        if node.domain in FINN_VIEW:
            node.domain = FINN_VIEW[node.domain]
            moved += 1
    return moved


def to_project_view(model: ModelWrapper) -> int:
    """Move the project's nodes back from FINN's domains, in place; returns how many moved."""
    back = {
        (FINN_VIEW[domain], op_type): domain
        for domain, ops in _registries().items()
        for op_type in ops
    }
    moved = 0
    for node in model.graph.node:
        domain = back.get((node.domain, node.op_type))
        if domain is not None:
            node.domain = domain
            moved += 1
    return moved


def in_finn_view(step: Callable) -> Callable:
    """``step(model, cfg)`` run with the project's nodes in FINN's domains, then put back."""

    def run(model: ModelWrapper, cfg) -> ModelWrapper:
        to_finn_view(model)
        try:
            result = step(model, cfg)
        finally:
            to_project_view(model)
        to_project_view(result)
        return result

    run.__name__ = step.__name__
    run.__doc__ = step.__doc__
    return run


class SpecializeProjectLayers(Transformation):
    """The project's HW ops to their ``_rtl``/``_hls`` variants, by FINN's rules.

    ``preferred_impl_style`` ("rtl", "hls" or "") decides; "" or an unavailable style takes the
    RTL variant when there is one, else the HLS one. An op with neither is an error.
    """

    def __init__(self, fpgapart: str | None = None):
        super().__init__()
        self.fpgapart = fpgapart

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        registries = _registries()
        changed = False
        for index, node in enumerate(list(model.graph.node)):
            if node.domain != DOMAIN:
                continue
            style = self.impl_style(node, registries)
            new = helper.make_node(
                f"{node.op_type}_{style}",
                list(node.input),
                list(node.output),
                name=node.name,
                domain=f"{DOMAIN}.{style}",
            )
            new.attribute.extend(a for a in node.attribute if a.name != "preferred_impl_style")
            model.graph.node.remove(node)
            model.graph.node.insert(index, new)
            changed = True
        return model, changed

    @staticmethod
    def impl_style(node: NodeProto, registries: dict[str, dict]) -> str:
        available = [
            style
            for style, domain in (("rtl", RTL_DOMAIN), ("hls", HLS_DOMAIN))
            if f"{node.op_type}_{style}" in registries[domain]
        ]
        if not available:
            raise ValueError(
                f"node {node.name} ({node.op_type}) has no RTL or HLS variant in "
                f"{RTL_DOMAIN} / {HLS_DOMAIN}"
            )
        preferred = getCustomOp(node).get_nodeattr("preferred_impl_style")
        return preferred if preferred in available else available[0]


class SetProjectFolding(Transformation):
    """Fold the project's specialised layers to ``target_cycles_per_frame`` (FINN's search)."""

    def __init__(self, target_cycles_per_frame: int):
        super().__init__()
        self.target_cycles_per_frame = target_cycles_per_frame

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        from finn.transformation.fpgadataflow.set_folding import SetFolding

        search = SetFolding(self.target_cycles_per_frame)
        for node in model.graph.node:
            if node.domain not in (RTL_DOMAIN, HLS_DOMAIN):
                continue
            inst = getCustomOp(node)
            attribute = getattr(inst, "folding_attribute", None)
            if attribute is None:
                continue
            search.optimize_attribute_val(inst, int(inst.folding_limit()), attribute)
        return model, False
