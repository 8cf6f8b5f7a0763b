"""The project's SystemVerilog (package data): cores and the wrappers FINN-style ops fill in.

* ``int_layernorm.sv`` / ``int_layernorm_template.v`` -- the integer LayerNorm layer
  (:mod:`qmlp_brevitas.finn.custom_op.rtl.int_layernorm_rtl`).
* ``qmlp_dup_streams.sv``, ``qmlp_split_streams.sv``, ``qmlp_concat_streams.sv``,
  ``qmlp_global_acc_pool.sv`` -- RTL variants of FINN's HLS-only layers
  (:mod:`qmlp_brevitas.finn.custom_op.rtl`).
* ``axis_file_source.sv``, ``axis_file_sink.sv`` -- the file-fed stream source and sink of the
  whole-design simulation (:mod:`qmlp_brevitas.rtlsim.stitch`).
"""

from pathlib import Path

HDL_DIR = Path(__file__).resolve().parent
