"""``StreamingConcat_rtl``: FINN's ``StreamingConcat`` with the project's RTL core.

Core ``qmlp_concat_streams.sv``: each output vector takes ``ChannelsPerStream[i] / SIMD`` words
from input ``i`` in turn, one word per cycle (FINN's cycle formula: the output words per frame).
Inputs of a narrower type are sign- or zero-extended per element to FINN's output type of the
concat (the widest type covering all inputs) in the top module, as FINN's HLS concat casts each
element.

Resources (modelled, see :mod:`.resources`): the input multiplexer, one output register, a word
counter and the input index; no BRAM, no DSP.
"""

from __future__ import annotations

from finn.custom_op.fpgadataflow.concat import StreamingConcat

from . import resources
from ._backend import InputSlot, ProjectRTLBackend


class StreamingConcat_rtl(StreamingConcat, ProjectRTLBackend):
    """RTL concatenation of ``len(ChannelsPerStream)`` streams along the channel axis."""

    core_name = "qmlp_concat_streams"

    def get_nodeattr_types(self):
        attrs = StreamingConcat.get_nodeattr_types(self)
        attrs.update(ProjectRTLBackend.get_nodeattr_types(self))
        return attrs

    def execute_node(self, context, graph):
        if self.get_nodeattr("exec_mode") == "rtlsim":
            ProjectRTLBackend.execute_node(self, context, graph)
        else:
            StreamingConcat.execute_node(self, context, graph)

    def folds(self) -> list[int]:
        """Words per vector of each input stream."""
        simd = self.get_nodeattr("SIMD")
        return [c // simd for c in self.get_nodeattr("ChannelsPerStream")]

    def core_params(self) -> dict:
        folds = self.folds()
        return {
            "WIDTH": self.get_outstream_width(),
            "N_IN": len(folds),
            "FOLDS": folds,
            "CNT_BITS": resources.bits(max(folds)),
        }

    def input_slots(self) -> list[InputSlot]:
        simd = self.get_nodeattr("SIMD")
        obits = self.get_output_datatype().bitwidth()
        slots = []
        for i in range(self.get_n_inputs()):
            idt = self.get_input_datatype(i)
            slots.append(InputSlot(simd, idt.bitwidth(), obits, idt.signed()))
        return slots

    def ff_estimation(self, fpgapart: str = "") -> int:
        return resources.concat_ff(self.get_outstream_width(), self.folds())

    def lut_estimation(self, fpgapart: str = "") -> int:
        return resources.concat_lut(self.get_outstream_width(), self.folds())

    def node_res_estimation(self, fpgapart: str = "") -> dict:
        return resources.with_ff(self, super().node_res_estimation(fpgapart))
