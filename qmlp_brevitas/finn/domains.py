"""The ONNX domains of QONNX's and FINN's custom ops and of this project's own, named once.

QONNX's ``Quant``/``BipolarQuant``/``Trunc`` live in :data:`QONNX_DOMAIN` (FINN's older name of
it: :data:`FINN_GENERAL_DOMAIN`). FINN registers its HW-abstraction layers (``MVAU``,
``Thresholding``, ...) under :data:`HW_DOMAIN` and their specialisations under
:data:`HLS_DOMAIN` and :data:`RTL_DOMAIN`; the project's own HW layers follow the same scheme
under :data:`QMLP_HW_DOMAIN`. The project's QONNX ops (the exported integer LayerNorm) are in
:data:`QMLP_QONNX_DOMAIN`.
"""

from __future__ import annotations

QONNX_DOMAIN = "qonnx.custom_op.general"
FINN_GENERAL_DOMAIN = "finn.custom_op.general"
HW_DOMAIN = "finn.custom_op.fpgadataflow"
HLS_DOMAIN = HW_DOMAIN + ".hls"
RTL_DOMAIN = HW_DOMAIN + ".rtl"
QMLP_QONNX_DOMAIN = "qmlp_brevitas.custom_op"  # the project's QONNX ops (IntLayerNorm)
QMLP_HW_DOMAIN = "qmlp_brevitas.finn.custom_op"
QMLP_RTL_DOMAIN = QMLP_HW_DOMAIN + ".rtl"
HW_DOMAINS = (HW_DOMAIN, QMLP_HW_DOMAIN)


def is_hw_layer(domain: str) -> bool:
    """Whether a node of ``domain`` is a hardware layer (FINN's or this project's)."""
    return any(domain == d or domain.startswith(d + ".") for d in HW_DOMAINS)
