"""A ``Clip`` (ReLU6, HardTanh) feeding an activation quantizer, absorbed into it.

Brevitas exports ``nn.ReLU6`` before a ``QuantIdentity`` as ``Clip(0, 6)`` -> ``Quant``. FINN has
no hardware for ``Clip`` and its activation handlers only absorb ``Relu``. A clip before a
monotonic quantizer only moves thresholds (see :mod:`._quant_thresholds`): if the quantizer's
thresholds all lie inside ``(lo, hi]`` the clip cannot change the output and is removed, else
the pair becomes one exact ``MultiThreshold`` -> ``Add`` -> ``Mul``.
"""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.transformation.infer_shapes import InferShapes

from ._quant_thresholds import (
    clip_is_redundant,
    is_activation_quant,
    quant_params,
    replace_with_thresholds,
)


def _clip_bounds(model: ModelWrapper, clip) -> tuple[float, float] | None:
    """Constant ``(lo, hi)`` of a ``Clip`` node (opset >= 11 inputs), or None."""
    bounds = []
    for i, default in ((1, float("-inf")), (2, float("inf"))):
        if len(clip.input) <= i or not clip.input[i]:
            bounds.append(default)
            continue
        value = model.get_initializer(clip.input[i])
        if value is None or value.size != 1:
            return None
        bounds.append(float(value.item()))
    return bounds[0], bounds[1]


class AbsorbClipIntoQuant(Transformation):
    """Remove a redundant ``Clip`` before an activation ``Quant``, or fold both into thresholds."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        for clip in model.graph.node:
            if clip.op_type != "Clip":
                continue
            consumers = model.find_consumers(clip.output[0]) or []
            if len(consumers) != 1 or not is_activation_quant(model, consumers[0]):
                continue
            bounds = _clip_bounds(model, clip)
            if bounds is None or clip.output[0] in {o.name for o in model.graph.output}:
                continue
            quant = consumers[0]
            if clip_is_redundant(quant_params(model, quant), *bounds):
                quant.input[0] = clip.input[0]
                model.graph.node.remove(clip)
            else:
                replace_with_thresholds(model, quant, clip=clip, clip_bounds=bounds)
            return model.transform(InferShapes()), True
        return model, False
