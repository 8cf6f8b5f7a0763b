"""``DuplicateStreams_rtl``: FINN's ``DuplicateStreams`` with the project's RTL core.

Core ``qmlp_dup_streams.sv``: one register for the word and a pending bit per output; a new word
is taken once every output has taken the held one, so each word of PE elements reaches all
``NumOutputStreams`` outputs at one word per cycle (FINN's cycle formula,
``prod(numInputVectors) * NumChannels / PE``).

Resources (modelled from the core's structure, see :mod:`.resources`): FF = word width + outputs,
LUT = outputs (pending bits) + the ready AND + the take enable; no BRAM, no DSP.
"""

from __future__ import annotations

from finn.custom_op.fpgadataflow.duplicatestreams import DuplicateStreams

from . import resources
from ._backend import InputSlot, ProjectRTLBackend


class DuplicateStreams_rtl(DuplicateStreams, ProjectRTLBackend):
    """RTL stream duplication: every input word to each of ``NumOutputStreams`` outputs."""

    core_name = "qmlp_dup_streams"

    def get_nodeattr_types(self):
        attrs = DuplicateStreams.get_nodeattr_types(self)
        attrs.update(ProjectRTLBackend.get_nodeattr_types(self))
        return attrs

    def execute_node(self, context, graph):
        if self.get_nodeattr("exec_mode") == "rtlsim":
            ProjectRTLBackend.execute_node(self, context, graph)
        else:
            DuplicateStreams.execute_node(self, context, graph)

    def core_params(self) -> dict:
        return {"WIDTH": self.get_instream_width(), "N_OUT": self.get_num_output_streams()}

    def input_slots(self) -> list[InputSlot]:
        pe, bits = self.get_nodeattr("PE"), self.get_input_datatype().bitwidth()
        return [InputSlot(pe, bits, bits)]

    def ff_estimation(self, fpgapart: str = "") -> int:
        return resources.dup_streams_ff(self.get_instream_width(), self.get_num_output_streams())

    def lut_estimation(self, fpgapart: str = "") -> int:
        return resources.dup_streams_lut(self.get_instream_width(), self.get_num_output_streams())

    def node_res_estimation(self, fpgapart: str = "") -> dict:
        return resources.with_ff(self, super().node_res_estimation(fpgapart))
