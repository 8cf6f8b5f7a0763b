"""``IntLayerNorm_rtl``: the integer LayerNorm's SystemVerilog implementation, as FINN's RTL ops.

``generate_hdl`` fills the wrapper template ``qmlp_brevitas/hdl/int_layernorm_template.v``
(FINN's ``$NAME$`` placeholders) with the layer's folding and the widths of its
:class:`~qmlp_brevitas.intnorm.IntLayerNormSpec`, and copies the core
``int_layernorm.sv`` beside it. Latency and throughput are documented in
:mod:`qmlp_brevitas.finn.custom_op.int_layernorm` and in the core.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from finn.custom_op.fpgadataflow.rtlbackend import RTLBackend

from ....hdl import HDL_DIR
from ..int_layernorm import IntLayerNorm

CORE = "int_layernorm.sv"
TEMPLATE = "int_layernorm_template.v"


class IntLayerNorm_rtl(IntLayerNorm, RTLBackend):  # noqa: N801 (FINN's naming)
    """RTL variant of :class:`~qmlp_brevitas.finn.custom_op.int_layernorm.IntLayerNorm`."""

    def get_nodeattr_types(self):
        attrs = IntLayerNorm.get_nodeattr_types(self)
        attrs.update(RTLBackend.get_nodeattr_types(self))
        return attrs

    def execute_node(self, context, graph):
        if self.get_nodeattr("exec_mode") == "rtlsim":
            RTLBackend.execute_node(self, context, graph)
        else:
            IntLayerNorm.execute_node(self, context, graph)

    def template_values(self) -> dict[str, int | str]:
        """The wrapper's parameters: folding, widths, and the square root's schedule."""
        spec, timing = self.spec(), self.timing()
        out_width = self.get_outstream_width()
        out_padded = self.get_outstream_width_padded()
        if out_padded > out_width:
            assign = f"assign out0_V_TDATA = {{{out_padded - out_width}'b0, core_tdata}};"
        else:
            assign = "assign out0_V_TDATA = core_tdata;"
        return {
            "TOP_MODULE_NAME": self.get_verilog_top_module_name(),
            "C": self.get_nodeattr("NumChannels"),
            "SIMD": self.get_nodeattr("SIMD"),
            "IN_BITS": self.get_input_datatype().bitwidth(),
            "IN_SIGNED": int(self.get_input_datatype().signed()),
            "SUM_BITS": spec.sum_bits,
            "SQ_BITS": spec.square_sum_bits,
            "N_BITS": spec.n_bits,
            "D_BITS": spec.centred_bits,
            "K": spec.rsqrt_bits,
            "SHIFT": spec.shift,
            "OUT_BITS": spec.output_bits,
            "EPS": spec.eps_int,
            "ITERS": timing.iters_per_clock,
            "DEPTH": timing.fifo_depth,
            "IN_WIDTH": self.get_instream_width(),
            "IN_WIDTH_PADDED": self.get_instream_width_padded(),
            "OUT_WIDTH": out_width,
            "OUT_WIDTH_PADDED": out_padded,
            "OUT_ASSIGN": assign,
        }

    def generate_hdl(self, model, fpgapart, clk):
        self.check_input_datatype(self.get_input_datatype())
        values = self.template_values()
        text = (HDL_DIR / TEMPLATE).read_text()
        for name, value in values.items():
            text = text.replace(f"${name}$", str(value))
        top = values["TOP_MODULE_NAME"]
        self.set_nodeattr("gen_top_module", top)
        code_gen_dir = Path(self.get_nodeattr("code_gen_dir_ipgen"))
        (code_gen_dir / f"{top}.v").write_text(text)
        shutil.copyfile(HDL_DIR / CORE, code_gen_dir / CORE)
        self.set_nodeattr("ipgen_path", str(code_gen_dir))
        self.set_nodeattr("ip_path", str(code_gen_dir))

    def get_rtl_file_list(self, abspath=False):
        top = self.get_nodeattr("gen_top_module") or self.get_verilog_top_module_name()
        root = Path(self.get_nodeattr("code_gen_dir_ipgen")) if abspath else Path()
        return [root / CORE, root / f"{top}.v"]

    def code_generation_ipi(self):
        cmd = [f"add_files -norecurse {f}" for f in self.get_rtl_file_list(abspath=True)]
        cmd.append(
            "create_bd_cell -type module -reference "
            f"{self.get_nodeattr('gen_top_module')} {self.onnx_node.name}"
        )
        return cmd
