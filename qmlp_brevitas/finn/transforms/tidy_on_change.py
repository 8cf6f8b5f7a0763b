"""FINN's ``Streamline()`` and qonnx's ``ComposedTransformation``, tidying up only after a change.

Both apply a list of transformations and, after *every* one of them, tidy the graph: qonnx's
cleanup, ``RemoveIdentityOps``, unique and readable names, shape/datatype/layout inference. On a
graph of a few hundred nodes that tidy-up costs about a second a transformation (renaming every
tensor, sorting the graph), and most transformations of a streamlining round find nothing to do.
:class:`TidyOnChangeComposed` applies the same transformations in the same order, each until it
reports no change, and tidies up only after one that changed the graph (and once at the start),
so an unchanged graph costs one pass of pattern matching. The result is the same graph (the
tests compare it with FINN's on a Q-MLP block). :func:`streamline_step` is FINN's
``step_streamline`` with this ``Streamline()``; the Q-MLP streamlining step
(:func:`qmlp_brevitas.finn.steps.step_qmlp_streamline`) uses both.
"""

from __future__ import annotations

from finn.transformation.streamline.absorb import (
    Absorb1BitMulIntoConv,
    Absorb1BitMulIntoMatMul,
    AbsorbAddIntoMultiThreshold,
    AbsorbConsecutiveTransposes,
    AbsorbMulIntoMultiThreshold,
    AbsorbScalarBiasIntoMultiThreshold,
    AbsorbScalarMulAddIntoTopK,
    AbsorbTransposeIntoMultiThreshold,
    FactorOutMulSignMagnitude,
)
from finn.transformation.streamline.collapse_repeated import (
    CollapseRepeatedAdd,
    CollapseRepeatedMul,
)
from finn.transformation.streamline.reorder import (
    MakeMaxPoolNHWC,
    MoveAddPastConv,
    MoveAddPastMul,
    MoveMulPastMaxPool,
    MoveScalarAddPastMatMul,
    MoveScalarLinearPastInvariants,
    MoveScalarMulPastConv,
    MoveScalarMulPastMatMul,
    MoveScalesPastIm2Col,
)
from finn.transformation.streamline.sign_to_thres import ConvertSignToThres
from qonnx.transformation.base import Transformation
from qonnx.transformation.batchnorm_to_affine import BatchNormToAffine
from qonnx.transformation.bipolar_to_xnor import ConvertBipolarMatMulToXnorPopcount
from qonnx.transformation.general import (
    ConvertDivToMul,
    ConvertSubToAdd,
    GiveReadableTensorNames,
    GiveUniqueNodeNames,
    RemoveUnusedTensors,
)
from qonnx.transformation.infer_data_layouts import InferDataLayouts
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.transformation.lower_convs_to_matmul import LowerConvsToMatMul
from qonnx.transformation.remove import RemoveIdentityOps

# The transformations of FINN's Streamline(), in its order (a test compares this list with the
# installed FINN's source).
STREAMLINE_SEQUENCE = (
    ConvertSubToAdd,
    ConvertDivToMul,
    BatchNormToAffine,
    ConvertSignToThres,
    MoveMulPastMaxPool,
    AbsorbScalarBiasIntoMultiThreshold,
    MoveScalesPastIm2Col,
    MoveScalarLinearPastInvariants,
    MoveAddPastMul,
    MoveScalarAddPastMatMul,
    MoveAddPastConv,
    MoveScalarMulPastMatMul,
    MoveScalarMulPastConv,
    MoveAddPastMul,
    CollapseRepeatedAdd,
    CollapseRepeatedMul,
    MoveMulPastMaxPool,
    AbsorbAddIntoMultiThreshold,
    FactorOutMulSignMagnitude,
    AbsorbMulIntoMultiThreshold,
    Absorb1BitMulIntoMatMul,
    Absorb1BitMulIntoConv,
)
TIDY_UP = (
    RemoveIdentityOps,
    GiveUniqueNodeNames,
    GiveReadableTensorNames,
    InferShapes,
    InferDataTypes,
    InferDataLayouts,
)


def tidy_up(model):
    """qonnx's cleanup and the tidy-up that Streamline/ComposedTransformation run after a step."""
    model = model.cleanup()
    for transformation in TIDY_UP:
        model = model.transform(transformation())
    return model


class TidyOnChangeComposed(Transformation):
    """Each transformation until it reports no change, in order; tidy up only after a change.

    ``apply`` returns whether any transformation changed the graph, so ``model.transform``
    repeats the whole sequence until a pass changes nothing (like ``ComposedTransformation``).
    """

    def __init__(self, transformations):
        super().__init__()
        self.transformations = list(transformations)

    def apply(self, model):
        model = tidy_up(model)  # model.transform hands apply a copy already
        modified = False
        for transformation in self.transformations:
            changed = False
            while True:
                model, step_changed = transformation.apply(model)
                changed = changed or step_changed
                if not step_changed:
                    break
            if changed:
                model = tidy_up(model)
                modified = True
        return model, modified


def tidy_on_change_streamline() -> TidyOnChangeComposed:
    """FINN's ``Streamline()`` sequence as a :class:`TidyOnChangeComposed`."""
    return TidyOnChangeComposed(t() for t in STREAMLINE_SEQUENCE)


def streamline_step(model):
    """FINN's ``step_streamline`` (``finn.builder.build_dataflow_steps``), same transformations
    in the same order, with :func:`tidy_on_change_streamline` in place of ``Streamline()``."""
    model = model.transform(AbsorbScalarBiasIntoMultiThreshold())
    model = model.transform(tidy_on_change_streamline())
    if model.get_nodes_by_op_type("Conv"):
        model = model.transform(LowerConvsToMatMul())
        model = model.transform(MakeMaxPoolNHWC())
        model = model.transform(AbsorbTransposeIntoMultiThreshold())
        model = model.transform(MakeMaxPoolNHWC())
        model = model.transform(AbsorbConsecutiveTransposes())
    model = model.transform(ConvertBipolarMatMulToXnorPopcount())
    model = model.transform(tidy_on_change_streamline())
    model = model.transform(AbsorbScalarMulAddIntoTopK())
    model = model.transform(InferDataLayouts())
    return model.transform(RemoveUnusedTensors())
