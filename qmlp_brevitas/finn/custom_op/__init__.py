"""The project's FINN custom ops, registered for qonnx's ``getCustomOp`` as FINN registers its own.

Domain ``qmlp_brevitas.finn.custom_op`` holds the project's HW ops (this module's
``custom_op`` dict) and ``qmlp_brevitas.finn.custom_op.rtl`` their ``_rtl`` specialisations and
the RTL variants of FINN HW ops that finn-plus has only as HLS (:mod:`.rtl`), as FINN does with
``finn.custom_op.fpgadataflow`` and ``finn.custom_op.fpgadataflow.rtl``. One module per op.
Importing this package imports no FINN module; importing :mod:`.rtl` does.
"""

DOMAIN = "qmlp_brevitas.finn.custom_op"
RTL_DOMAIN = DOMAIN + ".rtl"

custom_op: dict = {}
