"""``GlobalAccPool_rtl``: FINN's ``GlobalAccPool`` with the project's RTL core.

Core ``qmlp_global_acc_pool.sv``: per frame, ``H * W`` vectors (``numInputVectors = [N, H, W]``)
of ``NumChannels`` elements arrive as ``NumChannels / PE`` words each; a memory of
``NumChannels / PE`` words of PE accumulators (FINN's output type) holds the partial sums, and the
last vector's word goes to the output with its sum instead of back to the memory. So the layer
takes one word per cycle and needs ``H * W * NumChannels / PE`` cycles per frame: the input
words, without the ``NumChannels / PE`` cycles that FINN's HLS estimate adds for writing the
result out after the input.

Resources (modelled, see :mod:`.resources`): PE adders of the output width, the accumulator
memory in LUTRAM (64 words deep per LUT), the output register and two counters; no BRAM, no DSP.
"""

from __future__ import annotations

import numpy as np
from finn.custom_op.fpgadataflow.globalaccpool import GlobalAccPool

from . import resources
from ._backend import InputSlot, ProjectRTLBackend


class GlobalAccPool_rtl(GlobalAccPool, ProjectRTLBackend):
    """RTL global accumulation (sum) over the ``H * W`` vectors of a frame, per channel."""

    core_name = "qmlp_global_acc_pool"

    def get_nodeattr_types(self):
        attrs = GlobalAccPool.get_nodeattr_types(self)
        attrs.update(ProjectRTLBackend.get_nodeattr_types(self))
        return attrs

    def execute_node(self, context, graph):
        if self.get_nodeattr("exec_mode") == "rtlsim":
            ProjectRTLBackend.execute_node(self, context, graph)
        else:
            GlobalAccPool.execute_node(self, context, graph)

    def tokens(self) -> int:
        """Vectors summed per frame (``H * W``)."""
        vecs = list(self.get_nodeattr("numInputVectors"))
        if len(vecs) != 3:
            raise ValueError(
                f"{self.onnx_node.name}: GlobalAccPool_rtl needs numInputVectors [N, H, W], "
                f"got {vecs}"
            )
        return int(vecs[1] * vecs[2])

    def folds(self) -> int:
        return self.get_nodeattr("NumChannels") // self.get_nodeattr("PE")

    def get_exp_cycles(self) -> int:
        """One input word per cycle; the result leaves with the last vector's words."""
        return int(np.prod(self.get_folded_input_shape()[:-1]))

    def core_params(self) -> dict:
        idt = self.get_input_datatype()
        return {
            "PE": self.get_nodeattr("PE"),
            "IN_BITS": idt.bitwidth(),
            "IN_SIGNED": idt.signed(),
            "ACC_BITS": self.get_output_datatype().bitwidth(),
            "FOLDS": self.folds(),
            "TOKENS": self.tokens(),
        }

    def input_slots(self) -> list[InputSlot]:
        pe, bits = self.get_nodeattr("PE"), self.get_input_datatype().bitwidth()
        return [InputSlot(pe, bits, bits)]

    def _geometry(self) -> dict:
        return {
            "pe": self.get_nodeattr("PE"),
            "acc_bits": self.get_output_datatype().bitwidth(),
            "folds": self.folds(),
            "tokens": self.tokens(),
        }

    def ff_estimation(self, fpgapart: str = "") -> int:
        return resources.acc_pool_ff(**self._geometry())

    def lut_estimation(self, fpgapart: str = "") -> int:
        return resources.acc_pool_lut(**self._geometry())

    def node_res_estimation(self, fpgapart: str = "") -> dict:
        return resources.with_ff(self, super().node_res_estimation(fpgapart))
