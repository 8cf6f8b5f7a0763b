"""Custom FINN build steps for Q-MLP, used beside FINN's built-in steps in ``cfg.steps``.

Each step is ``step_x(model, cfg) -> model`` like FINN's own (``finn.builder.build_dataflow_steps``)
and resolves by its dotted name (``qmlp_brevitas.finn.steps.step_qmlp_streamline``). FINN must be
set up (:func:`qmlp_brevitas.finn.settings.setup_finn`) before this module is imported.

The stages verified against the export's ``input.npy``/``expected_output.npy`` with
``execute_onnx`` are written to ``report/verification.json`` (stage -> max abs difference).
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from finn.builder.build_dataflow_config import DataflowBuildConfig
from finn.builder.build_dataflow_steps import (
    step_convert_to_hw,
    step_create_dataflow_partition,
    step_generate_estimate_reports,
    step_specialize_layers,
    step_target_fps_parallelization,
)
from finn.transformation.fpgadataflow.convert_to_hw.concat import InferConcatLayer
from finn.transformation.fpgadataflow.convert_to_hw.split import InferSplitLayer
from finn.transformation.streamline.absorb import AbsorbTransposeIntoMultiThreshold
from finn.transformation.streamline.extract_norm_scale_bias import ExtractNormScaleBias
from finn.transformation.streamline.reorder import MoveLinearPastEltwiseAdd, MoveMulPastFork
from finn.transformation.streamline.round_thresholds import RoundAndClipThresholds
from finn.util.exception import FINNUserError
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.transformation.infer_data_layouts import InferDataLayouts
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.util.cleanup import cleanup_model

from .generic import generic_hw_copy
from .project_ops import (
    SetProjectFolding,
    SpecializeProjectLayers,
    in_finn_view,
    is_hw_node,
    to_finn_view,
)
from .transforms import (
    AbsorbClipIntoQuant,
    AbsorbScalarMulIntoIntLayerNorm,
    AbsorbScalarMulIntoLayerNorm,
    ChannelsLastThresholds,
    CollapseOrderPreservingMovement,
    InferIntLayerNorm,
    MoveChannelwiseLinearPastSplit,
    MoveGlobalThresholdsBeforeDataMovement,
    MoveLinearPastReduceMean,
    MoveThresholdsBeforeSplit,
    OrderPreservingShuffleToReshape,
    ReduceMeanToGlobalAccPool,
    SlicesToSplit,
    ThresholdsToRequant,
    TidyOnChangeComposed,
    ZeroPointQuantToThresholds,
    streamline_step,
    tidy_on_change_streamline,
)
from .transforms.infer_int_layernorm import unconverted_reason

VERIFICATION_FILE = "verification.json"
MAX_STREAMLINE_ROUNDS = 8
# Thresholds have at most 8 output bits here; FINN's Requant conversion starts above this.
MAX_THRESHOLD_BITS = 8
NO_FINN_REQUANT = 33


class UnmappedNodeError(FINNUserError, ValueError):
    """A compute node that did not become a FINN hardware layer."""


def verify_stage(model: ModelWrapper, cfg: DataflowBuildConfig, stage: str) -> dict:
    """Execute ``model`` on ``cfg.verify_input_npy``, compare with the expected output, record it.

    Appends ``{stage: {max_abs_diff, ok, atol, seconds}}`` to ``report/verification.json``.
    """
    x = np.load(cfg.verify_input_npy)
    expected = np.load(cfg.verify_expected_output_npy)
    start = time.time()
    iname, oname = model.graph.input[0].name, model.graph.output[0].name
    ishape = model.get_tensor_shape(iname)
    y = execute_onnx(model, {iname: x.reshape(ishape).astype(np.float32)})[oname]
    diff = float(np.abs(y.reshape(expected.shape) - expected).max())
    result = {
        "max_abs_diff": diff,
        "ok": diff <= cfg.verification_atol,
        "atol": cfg.verification_atol,
        "seconds": round(time.time() - start, 2),
    }
    path = cfg.get_report_directory() / VERIFICATION_FILE
    results = json.loads(path.read_text()) if path.exists() else {}
    results[stage] = result
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(
        f"verification {stage}: max abs difference {diff:.3g} ({'ok' if result['ok'] else 'FAIL'})"
    )
    return result


def step_qmlp_prepare_qonnx(model: ModelWrapper, cfg: DataflowBuildConfig) -> ModelWrapper:
    """QONNX patterns FINN's QONNX-to-FINN conversion refuses, rewritten exactly.

    Verifies the exported QONNX model (stage ``qonnx``), then absorbs ``Clip`` (ReLU6) into the
    following quantizer, turns zero-point quantizers into thresholds + shift + scale and the
    channel-group slices into a ``Split`` (stage ``qonnx_prepared``).
    """
    model = cleanup_model(model)
    verify_stage(model, cfg, "qonnx")
    for transformation in (AbsorbClipIntoQuant(), ZeroPointQuantToThresholds(), SlicesToSplit()):
        model = model.transform(transformation)
    model = cleanup_model(model)
    verify_stage(model, cfg, "qonnx_prepared")
    return model


def _signature(model: ModelWrapper) -> tuple:
    return tuple((n.op_type, tuple(n.input)) for n in model.graph.node)


def step_qmlp_streamline(model: ModelWrapper, cfg: DataflowBuildConfig) -> ModelWrapper:
    """FINN's streamlining plus the Q-MLP moves it lacks, repeated until the graph is stable.

    LayerNorm affine parameters are split off (FINN's ``ExtractNormScaleBias``) and moved past the
    group ``Split``; FINN's ``step_streamline`` (as
    :func:`~qmlp_brevitas.finn.transforms.streamline_step`) lowers the patch-embedding conv and
    absorbs scales; then global thresholds move in front of token transposes and concats, residual
    scales move past the adds (FINN's ``MoveLinearPastEltwiseAdd``, ``MoveMulPastFork``), scales
    fold into LayerNorm epsilons and into the input scales of integer LayerNorms (which then
    read the integer residual stream), and the token mean becomes a ``GlobalAccPool`` whose ``1/T``
    folds into the head's thresholds. Verified as stage ``streamlined``.

    FINN's ``Streamline()`` sequence and the Q-MLP moves run as
    :class:`~qmlp_brevitas.finn.transforms.TidyOnChangeComposed`, which tidies the graph only
    after a transformation that changed it (the same graph, in half the time).
    """
    model = model.transform(ExtractNormScaleBias())
    prepare = TidyOnChangeComposed(
        [MoveChannelwiseLinearPastSplit(), MoveLinearPastReduceMean(), ChannelsLastThresholds()]
    )
    model = model.transform(prepare)
    model = streamline_step(model)
    qmlp_moves = TidyOnChangeComposed(
        [
            MoveGlobalThresholdsBeforeDataMovement(),
            MoveThresholdsBeforeSplit(),
            MoveMulPastFork(),
            MoveLinearPastEltwiseAdd(),
            AbsorbScalarMulIntoLayerNorm(),
            AbsorbScalarMulIntoIntLayerNorm(),
            MoveLinearPastReduceMean(),
            ReduceMeanToGlobalAccPool(),
            AbsorbTransposeIntoMultiThreshold(),
            CollapseOrderPreservingMovement(),
            ChannelsLastThresholds(),
        ]
    )
    for _ in range(MAX_STREAMLINE_ROUNDS):
        before = _signature(model)
        model = model.transform(qmlp_moves)
        model = model.transform(tidy_on_change_streamline())
        model = model.transform(ChannelsLastThresholds())
        if _signature(model) == before:
            break
    model = model.transform(RoundAndClipThresholds())
    model = model.transform(InferDataLayouts())
    verify_stage(model, cfg, "streamlined")
    return model


def unmapped_nodes(model: ModelWrapper) -> list[tuple[str, str, str]]:
    """``(name, op_type, why)`` of every node that is not a hardware layer (FINN's or the
    project's, :mod:`qmlp_brevitas.finn.custom_op`)."""
    found = []
    for node in model.graph.node:
        if is_hw_node(node):
            continue
        found.append((node.name, node.op_type, _why_unmapped(model, node)))
    return found


def _why_unmapped(model: ModelWrapper, node) -> str:
    if node.op_type == "IntLayerNorm":
        reason = unconverted_reason(model, node)
        if reason:
            return reason
    dtypes = [model.get_tensor_datatype(i).name for i in node.input if i]
    if any(d == "FLOAT32" for d in dtypes):
        return (
            f"it has a float input ({', '.join(dtypes)}): FINN maps only integer streams here; "
            "the quantizer or scale in front of it was not absorbed by streamlining"
        )
    return f"FINN has no hardware layer for {node.op_type} with these inputs ({', '.join(dtypes)})"


def check_all_hw(model: ModelWrapper) -> None:
    """Raise :class:`UnmappedNodeError` naming the first node that is not a hardware layer."""
    missing = unmapped_nodes(model)
    if missing:
        name, op_type, why = missing[0]
        others = f" ({len(missing) - 1} more: {', '.join(n for n, _, _ in missing[1:])})"
        raise UnmappedNodeError(
            f"node {name} ({op_type}) cannot be mapped to a FINN hardware layer: {why}"
            + (others if len(missing) > 1 else "")
        )


def step_qmlp_convert_to_hw(model: ModelWrapper, cfg: DataflowBuildConfig) -> ModelWrapper:
    """FINN's ``step_convert_to_hw``, then a check that every node became a hardware layer.

    Expects ``cfg.standalone_thresholds`` (thresholds as their own layer, since MVAUs with
    embedded thresholds do not execute on token streams) and ``infer_shuffle_skip_first=False``
    (every transpose becomes a ``Shuffle``). With ``cfg.requant_bitwidth_threshold`` at 8 bits or
    less (``fpga/build.py --requant-bits``), thresholds of that many output bits become FINN
    ``Requant`` layers where that is exact
    (:class:`~qmlp_brevitas.finn.transforms.ThresholdsToRequant`), in place of FINN's own
    conversion. A ``Shuffle`` that keeps the element order becomes
    a ``Reshape`` (:class:`~qmlp_brevitas.finn.transforms.OrderPreservingShuffleToReshape`).
    Integer LayerNorms become the project's ``IntLayerNorm`` layer
    (:class:`~qmlp_brevitas.finn.transforms.InferIntLayerNorm`). Verified as stage ``hw_layers``.
    """
    # Split and Concat first: their hardware layers also repair qonnx's datatype inference,
    # which leaves the outputs of a Split as FLOAT32 (as FINN's transformer steps do).
    model = model.transform(InferSplitLayer())
    model = model.transform(InferDataTypes())
    model = model.transform(InferConcatLayer())
    requant_bits = cfg.requant_bitwidth_threshold
    if requant_bits is not None and requant_bits <= MAX_THRESHOLD_BITS:
        # FINN's own conversion accepts thresholds uniform within 1 %: use the exact one.
        model = step_convert_to_hw(model, replace(cfg, requant_bitwidth_threshold=NO_FINN_REQUANT))
        model = model.transform(ThresholdsToRequant(requant_bits, cfg._resolve_fpga_part()))
    else:
        model = step_convert_to_hw(model, cfg)
    # A transpose that keeps the element order (the 1-channel input image) needs no shuffle.
    model = model.transform(OrderPreservingShuffleToReshape())
    # After FINN's conversion: its ElementwiseAdd types the residual sum (INT<a+1>), where
    # qonnx's inference of the plain Add gave INT32.
    model = model.transform(InferIntLayerNorm())
    check_all_hw(model)
    verify_stage(model, cfg, "hw_layers")
    return model


def step_qmlp_create_dataflow_partition(
    model: ModelWrapper, cfg: DataflowBuildConfig
) -> ModelWrapper:
    """FINN's ``step_create_dataflow_partition``, the project's layers counted as hardware."""
    return in_finn_view(step_create_dataflow_partition)(model, cfg)


def step_qmlp_specialize_layers(model: ModelWrapper, cfg: DataflowBuildConfig) -> ModelWrapper:
    """The project's layers to their RTL variants, then FINN's ``step_specialize_layers``."""
    model = model.transform(SpecializeProjectLayers(cfg._resolve_fpga_part()))  # noqa: SLF001
    return step_specialize_layers(model, cfg)


def step_qmlp_target_fps_parallelization(
    model: ModelWrapper, cfg: DataflowBuildConfig
) -> ModelWrapper:
    """The project's layers folded to the target, then FINN's folding of its own, with the
    project's layers in FINN's view (FINN's cycle analysis covers them; its
    ``auto_folding_config.json`` lists both; its ``SetFolding`` logs that it leaves them be)."""
    target = cfg._resolve_cycles_per_frame()  # noqa: SLF001 (FINN's own resolution)
    if target is not None:
        model = model.transform(SetProjectFolding(target))
    return in_finn_view(step_target_fps_parallelization)(model, cfg)


def step_qmlp_generate_estimate_reports(
    model: ModelWrapper, cfg: DataflowBuildConfig
) -> ModelWrapper:
    """FINN's ``step_generate_estimate_reports``, with the project's layers estimated like
    FINN's (cycles, resources, critical path)."""
    return in_finn_view(step_generate_estimate_reports)(model, cfg)


def step_qmlp_finn_domains(model: ModelWrapper, cfg: DataflowBuildConfig) -> ModelWrapper:
    """The project's layers moved into FINN's domains for FINN's hardware steps (IP generation,
    stitching), which select layers by domain. Not run without Vivado."""
    to_finn_view(model)
    return model


def step_qmlp_verify_folded(model: ModelWrapper, cfg: DataflowBuildConfig) -> ModelWrapper:
    """Verify the folded, specialised graph (stage ``folded``); the model is unchanged.

    Executes :func:`generic_hw_copy` of the model (Python execution of each layer); cycle-true
    simulation of the same graph is the RTL simulation's job.
    """
    verify_stage(generic_hw_copy(model), cfg, "folded")
    return model


def read_verification(output_dir: str | Path) -> dict:
    """The stage results written by :func:`verify_stage`, or an empty dict."""
    path = Path(output_dir) / "report" / VERIFICATION_FILE
    return json.loads(path.read_text()) if path.exists() else {}
