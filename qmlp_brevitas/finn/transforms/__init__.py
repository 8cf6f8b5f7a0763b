"""qonnx Transformations for the Q-MLP patterns FINN does not map by itself, one per module."""

from .channels_last_thresholds import ChannelsLastThresholds
from .clip_quant import AbsorbClipIntoQuant
from .collapse_movement import CollapseOrderPreservingMovement
from .infer_int_layernorm import InferIntLayerNorm
from .int_layernorm_scale import AbsorbScalarMulIntoIntLayerNorm
from .layernorm_scale import AbsorbScalarMulIntoLayerNorm
from .linear_past_reduce_mean import MoveLinearPastReduceMean
from .linear_past_split import MoveChannelwiseLinearPastSplit
from .output_dequant import OutputDequantToHost, output_dequant_tail
from .reduce_mean_to_acc_pool import ReduceMeanToGlobalAccPool
from .shuffle_to_reshape import OrderPreservingShuffleToReshape
from .slices_to_split import SlicesToSplit
from .thresholds_before_movement import MoveGlobalThresholdsBeforeDataMovement
from .thresholds_before_split import MoveThresholdsBeforeSplit
from .thresholds_to_requant import ThresholdsToRequant
from .tidy_on_change import TidyOnChangeComposed, streamline_step, tidy_on_change_streamline
from .token_linear_thresholds import AbsorbTokenLinearIntoElementThresholds
from .zero_point_quant import ZeroPointQuantToThresholds

__all__ = [
    "AbsorbTokenLinearIntoElementThresholds",
    "AbsorbClipIntoQuant",
    "AbsorbScalarMulIntoIntLayerNorm",
    "AbsorbScalarMulIntoLayerNorm",
    "ChannelsLastThresholds",
    "CollapseOrderPreservingMovement",
    "InferIntLayerNorm",
    "MoveChannelwiseLinearPastSplit",
    "MoveGlobalThresholdsBeforeDataMovement",
    "MoveLinearPastReduceMean",
    "MoveThresholdsBeforeSplit",
    "OrderPreservingShuffleToReshape",
    "OutputDequantToHost",
    "ReduceMeanToGlobalAccPool",
    "SlicesToSplit",
    "ThresholdsToRequant",
    "TidyOnChangeComposed",
    "ZeroPointQuantToThresholds",
    "output_dequant_tail",
    "streamline_step",
    "tidy_on_change_streamline",
]
