"""The project's ``_rtl`` specialisations of its FINN HW ops (domain
``qmlp_brevitas.finn.custom_op.rtl``), as FINN's ``finn.custom_op.fpgadataflow.rtl``."""

from .int_layernorm_rtl import IntLayerNorm_rtl

custom_op = {"IntLayerNorm_rtl": IntLayerNorm_rtl}

__all__ = ["IntLayerNorm_rtl", "custom_op"]
