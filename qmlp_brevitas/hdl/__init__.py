"""The project's SystemVerilog (package data): cores and the wrappers FINN-style ops fill in.

* ``int_layernorm.sv`` / ``int_layernorm_template.v`` -- the integer LayerNorm layer
  (:mod:`qmlp_brevitas.finn.custom_op.rtl.int_layernorm_rtl`).
"""

from pathlib import Path

HDL_DIR = Path(__file__).resolve().parent
