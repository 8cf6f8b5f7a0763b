"""The project's FINN hardware layers, one module per op, for qonnx's ``getCustomOp``.

Domains, as FINN's ``finn.custom_op.fpgadataflow[.rtl|.hls]``: the project's HW-abstraction ops
are in :data:`DOMAIN` (``custom_op`` below), their ``_rtl`` specialisations and the RTL variants
of FINN HW ops that finn-plus has only as HLS in :data:`RTL_DOMAIN` (:mod:`.rtl`), and ``_hls``
ones, if any, in :data:`HLS_DOMAIN`. How FINN's build steps see them is
:mod:`qmlp_brevitas.finn.project_ops`. FINN must be set up
(:func:`qmlp_brevitas.finn.settings.setup_finn`) before these modules are used in a build.

* :class:`~.int_layernorm.IntLayerNorm` -- integer LayerNorm (``IntLayerNorm_rtl``).
"""

from ..project_ops import DOMAIN, HLS_DOMAIN, RTL_DOMAIN
from .int_layernorm import IntLayerNorm

custom_op = {"IntLayerNorm": IntLayerNorm}

__all__ = ["DOMAIN", "HLS_DOMAIN", "RTL_DOMAIN", "IntLayerNorm", "custom_op"]
