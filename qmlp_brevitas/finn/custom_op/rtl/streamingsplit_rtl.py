"""``StreamingSplit_rtl``: FINN's ``StreamingSplit`` with the project's RTL core.

Core ``qmlp_split_streams.sv``: of each vector's ``sum(ChannelsPerStream) / SIMD`` words, the
first ``ChannelsPerStream[0] / SIMD`` go to output 0, the next to output 1, and so on, one word
per cycle (FINN's cycle formula: the input words per frame). The element packing is unchanged.

Resources (modelled, see :mod:`.resources`): one output register with its destination index, a
word counter and the output index; no BRAM, no DSP.
"""

from __future__ import annotations

from finn.custom_op.fpgadataflow.split import StreamingSplit

from . import resources
from ._backend import InputSlot, ProjectRTLBackend


class StreamingSplit_rtl(StreamingSplit, ProjectRTLBackend):
    """RTL split of a stream along the channel axis into ``len(ChannelsPerStream)`` streams."""

    core_name = "qmlp_split_streams"

    def get_nodeattr_types(self):
        attrs = StreamingSplit.get_nodeattr_types(self)
        attrs.update(ProjectRTLBackend.get_nodeattr_types(self))
        return attrs

    def execute_node(self, context, graph):
        if self.get_nodeattr("exec_mode") == "rtlsim":
            ProjectRTLBackend.execute_node(self, context, graph)
        else:
            StreamingSplit.execute_node(self, context, graph)

    def folds(self) -> list[int]:
        """Words per vector of each output stream."""
        simd = self.get_nodeattr("SIMD")
        return [c // simd for c in self.get_nodeattr("ChannelsPerStream")]

    def core_params(self) -> dict:
        folds = self.folds()
        return {
            "WIDTH": self.get_instream_width(),
            "N_OUT": len(folds),
            "FOLDS": folds,
            "CNT_BITS": resources.bits(max(folds)),
        }

    def input_slots(self) -> list[InputSlot]:
        simd, bits = self.get_nodeattr("SIMD"), self.get_input_datatype().bitwidth()
        return [InputSlot(simd, bits, bits)]

    def ff_estimation(self, fpgapart: str = "") -> int:
        return resources.split_ff(self.get_instream_width(), self.folds())

    def lut_estimation(self, fpgapart: str = "") -> int:
        return resources.split_lut(self.get_instream_width(), self.folds())

    def node_res_estimation(self, fpgapart: str = "") -> dict:
        return resources.with_ff(self, super().node_res_estimation(fpgapart))
