"""QONNX custom ops of the project (domain ``qmlp_brevitas.custom_op``), one module per op.

qonnx's ``getCustomOp`` resolves a node of this domain by importing this package and looking
the op type up in ``custom_op``; ``execute_onnx`` then runs the op's Python execution.

* :class:`~.int_layernorm.IntLayerNorm` -- the integer LayerNorm exported by
  :class:`qmlp_brevitas.int_layernorm.IntLayerNorm`.
"""

from ..finn.domains import QMLP_QONNX_DOMAIN as DOMAIN
from .int_layernorm import IntLayerNorm

custom_op = {"IntLayerNorm": IntLayerNorm}

__all__ = ["DOMAIN", "IntLayerNorm", "custom_op"]
