"""``IntLayerNorm``: the integer LayerNorm as a FINN hardware layer (HW abstraction).

The layer normalises each token of an integer stream (``numInputVectors`` tokens of
``NumChannels`` channels, ``SIMD`` channels per stream word) with
:func:`qmlp_brevitas.intnorm.int_layernorm` and outputs the integers ``y`` (``INT<O>``, ``F``
fractional bits); LayerNorm's affine and the ``2**-F`` scale stay outside, in the following
thresholds. Its Python execution is the QONNX op's (:mod:`qmlp_brevitas.custom_op`), so every
stage of the build computes the same integers. ``IntLayerNorm_rtl`` (:mod:`.rtl`) is its
SystemVerilog implementation (``qmlp_brevitas/hdl/int_layernorm.sv``).

Timing (:class:`IntLayerNormTiming`, the RTL's schedule): with ``Fc = C / SIMD`` words per token
and ``K`` the inverse-square-root precision, the square root runs ``ITERS = ceil((K+1) /
max(Fc-2, 1))`` bits per clock, so that a token spends ``R + 2`` clocks in it
(``R = ceil((K+1)/ITERS)``), at most ``Fc`` when ``Fc >= 3``. A token goes in every
``interval = max(Fc, R + 2)`` clocks; its first output word leaves ``R + 6`` clocks after its
last input word. ``get_exp_cycles`` = ``T * interval + R + 6`` for ``T`` tokens per frame (one
frame alone; in steady state frames follow every ``T * interval`` clocks).

Resources (:meth:`IntLayerNorm.resource_model`): a structural count of the RTL, scaled by a
linear fit to Yosys' synthesis of the layer (64 channels, INT5, SIMD 1, 4 and 64;
``docs/results/synthesis.json``, :mod:`qmlp_brevitas.finn.synth`): a model, not Vivado. With
``S = SIMD``, input width ``b``, widths ``W_s1, W_s2, W_N, W_d, W_out, W_prod`` from
:class:`~qmlp_brevitas.intnorm.IntLayerNormSpec` and ``W_P = W_N + 2K + 3``, the structural
count (:meth:`IntLayerNorm.structural_model`) is

* LUT = input sums ``S*(W_s1 + W_s2)`` (adder trees) + accumulators ``W_s1 + W_s2`` + ``N``
  ``2*W_N`` + square root ``ITERS * 3 * W_P`` (three-input add and compare, ``A`` update,
  muxes) + output ``S*(W_d + W_out)`` (centre, round) + FIFO ``ceil(depth/64) * S*b`` if in
  LUTRAM + control 60;
* FF = accumulators and 2-entry queues ``3*(W_s1 + W_s2) + 2*(W_s1 + K+1)`` + square-root
  registers ``3*W_P + K+1 + W_s1 + 8`` + output pipeline ``S*(b + W_d + W_prod + W_out)`` +
  ``W_s1 + 2*(K+1)`` + pointers and counters ``2*ceil(log2 depth) + 16``;
* DSP = per lane one DSP48 per 18x27 bits of ``d * r`` plus one for the square ``x*x`` (Yosys
  maps both to DSPs), and one for ``S1**2``;
* BRAM_18K: the FIFO (``depth = 2*Fc + 4`` words of ``S*b`` bits) goes to block RAM when it
  holds more than 4096 bits, in FINN's BRAM shapes (``ceil(S*b / width(depth))`` blocks).

The estimate is ``LUT = 1.74 * LUT_structural - 185`` and ``FF = 0.64 * FF_structural + 66``
(:data:`LUT_FIT`, :data:`FF_FIT`), within 2% of Yosys at the three foldings; DSP and BRAM as
counted (DSP equals Yosys' count there).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from finn.custom_op.fpgadataflow.hwcustomop import HWCustomOp
from qonnx.core.datatype import DataType

from ...custom_op.int_layernorm import execute_integers, spec_from_node
from ...intnorm import IntLayerNormError, IntLayerNormSpec

LUTRAM_MAX_BITS = 4096
CONTROL_LUTS = 60
# (slope, offset) of Yosys' counts against the structural ones (see module docstring)
LUT_FIT = (1.74, -185.0)
FF_FIT = (0.64, 66.0)
# FINN's BRAM_18K shapes: (largest depth, width)
BRAM_SHAPES = ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1))


@dataclass(frozen=True)
class IntLayerNormTiming:
    """The RTL's schedule for one layer (see module docstring)."""

    words_per_token: int  # Fc = C / SIMD
    rsqrt_bits: int  # K

    @property
    def iters_per_clock(self) -> int:
        bits = self.rsqrt_bits + 1
        return min(bits, math.ceil(bits / max(self.words_per_token - 2, 1)))

    @property
    def rsqrt_clocks(self) -> int:
        """R: clocks of the bit-serial loop per token."""
        return math.ceil((self.rsqrt_bits + 1) / self.iters_per_clock)

    @property
    def interval(self) -> int:
        """Clocks per token in steady state."""
        return max(self.words_per_token, self.rsqrt_clocks + 2)

    @property
    def latency(self) -> int:
        """Clocks from a token's last input word to its first output word."""
        return self.rsqrt_clocks + 7

    @property
    def fifo_depth(self) -> int:
        return 2 * self.words_per_token + 4


class IntLayerNorm(HWCustomOp):
    """Integer LayerNorm over the channels of an integer stream (see module docstring)."""

    folding_attribute = "SIMD"  # folded by qmlp_brevitas.finn.project_ops.SetProjectFolding

    def folding_limit(self) -> int:
        return self.get_nodeattr("NumChannels")

    def get_nodeattr_types(self):
        attrs = super().get_nodeattr_types()
        attrs.update(
            {
                "NumChannels": ("i", True, 0),
                "SIMD": ("i", False, 1),
                "numInputVectors": ("ints", False, [1]),
                "input_bits": ("i", True, 0),
                "frac_bits": ("i", True, 0),
                "eps_int": ("i", False, 0),
                "rsqrt_bits": ("i", False, 0),
                "inputDataType": ("s", True, ""),
                "outputDataType": ("s", True, ""),
            }
        )
        return attrs

    # -- the integer LayerNorm --------------------------------------------------------------
    def spec(self) -> IntLayerNormSpec:
        return spec_from_node(self, self.get_nodeattr("NumChannels"))

    def check_input_datatype(self, dtype: DataType) -> None:
        """Refuse an input type the layer was not sized for (naming the layer and limit)."""
        spec = self.spec()
        if not dtype.is_integer():
            raise IntLayerNormError(
                spec.layer, "input type", dtype.name, "an integer type", "streamline first"
            )
        spec.check_input_range(int(dtype.min()), int(dtype.max()), f"input type {dtype.name}")

    def check_folding(self) -> int:
        """SIMD, after checking that it divides the channels."""
        channels, simd = self.get_nodeattr("NumChannels"), self.get_nodeattr("SIMD")
        if simd < 1 or channels % simd:
            raise IntLayerNormError(
                self.onnx_node.name or self.onnx_node.op_type,
                "SIMD",
                simd,
                f"a divisor of its {channels} channels",
                "choose a SIMD that divides the channels (folding config)",
            )
        return simd

    def timing(self) -> IntLayerNormTiming:
        simd = self.check_folding()
        return IntLayerNormTiming(self.get_nodeattr("NumChannels") // simd, self.spec().rsqrt_bits)

    def tokens(self) -> int:
        return int(np.prod(self.get_nodeattr("numInputVectors")))

    # -- shapes, types, streams ---------------------------------------------------------------
    def get_normal_input_shape(self, ind=0):
        return [*self.get_nodeattr("numInputVectors"), self.get_nodeattr("NumChannels")]

    def get_normal_output_shape(self, ind=0):
        return self.get_normal_input_shape()

    def get_folded_input_shape(self, ind=0):
        simd = self.check_folding()
        fold = self.get_nodeattr("NumChannels") // simd
        return [*self.get_nodeattr("numInputVectors"), fold, simd]

    def get_folded_output_shape(self, ind=0):
        return self.get_folded_input_shape()

    def get_input_datatype(self, ind=0):
        return DataType[self.get_nodeattr("inputDataType")]

    def get_output_datatype(self, ind=0):
        return DataType[self.get_nodeattr("outputDataType")]

    def get_instream_width(self, ind=0):
        return self.get_input_datatype().bitwidth() * self.get_nodeattr("SIMD")

    def get_outstream_width(self, ind=0):
        return self.get_output_datatype().bitwidth() * self.get_nodeattr("SIMD")

    def get_number_output_values(self):
        return int(np.prod(self.get_folded_output_shape()[:-1]))

    def infer_node_datatype(self, model):
        node = self.onnx_node
        dtype = model.get_tensor_datatype(node.input[0])
        self.check_input_datatype(dtype)
        self.set_nodeattr("inputDataType", dtype.name)
        self.set_nodeattr("outputDataType", f"INT{self.spec().output_bits}")
        model.set_tensor_datatype(node.output[0], self.get_output_datatype())

    def execute_node(self, context, graph):
        node = self.onnx_node
        x = context[node.input[0]]
        out = execute_integers(x, self.spec())
        context[node.output[0]] = out.reshape(self.get_normal_output_shape())

    def verify_node(self):
        info = []
        try:
            self.spec()
            self.check_folding()
            info.append("IntLayerNorm attributes and folding are consistent")
        except IntLayerNormError as err:
            info.append(str(err))
        return info

    # -- cycles and resources -------------------------------------------------------------
    def get_exp_cycles(self):
        """Clocks per frame in steady state, ``T * interval`` (as FINN's MVAU and
        Thresholding, without the pipeline's latency)."""
        return self.tokens() * self.timing().interval

    def get_op_and_param_counts(self):
        values = self.tokens() * self.get_nodeattr("NumChannels")
        return {f"op_int_layernorm_{self.get_output_datatype().name}": values}

    def resource_model(self) -> dict[str, int]:
        """LUT, FF, DSP and BRAM_18K of the RTL: the structural count, LUT and FF fitted to
        Yosys (module docstring)."""
        res = self.structural_model()
        res["LUT"] = max(int(round(LUT_FIT[0] * res["LUT"] + LUT_FIT[1])), 1)
        res["FF"] = max(int(round(FF_FIT[0] * res["FF"] + FF_FIT[1])), 1)
        return res

    def structural_model(self) -> dict[str, int]:
        """LUT, FF, DSP and BRAM_18K counted from the RTL's structure (module docstring)."""
        spec, timing = self.spec(), self.timing()
        simd, b, k = (
            self.get_nodeattr("SIMD"),
            self.get_input_datatype().bitwidth(),
            spec.rsqrt_bits,
        )
        w_s1, w_s2, w_n = spec.sum_bits, spec.square_sum_bits, spec.n_bits
        w_d, w_out, w_prod = spec.centred_bits, spec.output_bits, spec.product_bits
        w_p = w_n + 2 * k + 3
        fifo_bits = timing.fifo_depth * simd * b
        in_bram = fifo_bits > LUTRAM_MAX_BITS
        bram = 0
        if in_bram:
            width = next((w for d, w in BRAM_SHAPES if timing.fifo_depth <= d), 1)
            blocks = math.ceil(timing.fifo_depth / BRAM_SHAPES[-1][0])
            bram = blocks * math.ceil(simd * b / width)
        fifo_luts = 0 if in_bram else math.ceil(timing.fifo_depth / 64) * simd * b
        lut = (
            simd * (w_s1 + w_s2)
            + w_s1
            + w_s2
            + 2 * w_n
            + timing.iters_per_clock * 3 * w_p
            + simd * (w_d + w_out)
            + fifo_luts
            + CONTROL_LUTS
        )
        ptr = max(math.ceil(math.log2(timing.fifo_depth)), 1)
        ff = (
            3 * (w_s1 + w_s2)
            + 2 * (w_s1 + k + 1)
            + 3 * w_p
            + k
            + 1
            + w_s1
            + 8
            + simd * (b + w_d + w_prod + w_out)
            + w_s1
            + 2 * (k + 1)
            + 2 * ptr
            + 16
        )
        dsp = simd * (math.ceil(w_d / 18) * math.ceil((k + 2) / 27) + 1) + 1
        return {"LUT": lut, "FF": ff, "DSP": dsp, "BRAM_18K": bram}

    def lut_estimation(self, fpgapart=None):
        return self.resource_model()["LUT"]

    def dsp_estimation(self, fpgapart=None):
        return self.resource_model()["DSP"]

    def bram_estimation(self, fpgapart=None):
        return self.resource_model()["BRAM_18K"]

    def uram_estimation(self, fpgapart=None):
        return 0

    def ff_estimation(self, fpgapart=None):
        return self.resource_model()["FF"]

    def node_res_estimation(self, fpgapart):
        res = super().node_res_estimation(fpgapart)
        res["FF"] = self.ff_estimation(fpgapart)
        return res
