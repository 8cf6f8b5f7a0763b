"""Custom FINN build steps for Q-MLP, used beside FINN's built-in steps in ``cfg.steps``.

Each step is ``step_x(model, cfg) -> model`` like FINN's own (``finn.builder.build_dataflow_steps``)
and resolves by its dotted name (``qmlp_brevitas.finn.steps.step_qmlp_streamline``). FINN must be
set up (:func:`qmlp_brevitas.finn.settings.setup_finn`) before this module is imported.

The stages verified against the build's verification input and expected output with
``execute_onnx`` are written to ``report/verification.json`` (stage -> max abs difference).

Specialisation: ``step_qmlp_specialize_layers`` is FINN's ``step_specialize_layers`` that keeps
each layer's ``preferred_impl_style``; after FINN's folding and transpose decomposition,
``step_qmlp_specialize_rtl`` swaps the HLS layers that have an RTL variant for it
(:mod:`qmlp_brevitas.finn.specialize`), and ``step_qmlp_generate_estimate_reports`` runs FINN's
estimate reports with the project's RTL layers visible to FINN's analyses.
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
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.general import GiveUniqueNodeNames
from qonnx.transformation.infer_data_layouts import InferDataLayouts
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.cleanup import cleanup_model

from ..layout import BuildFolder
from .domains import is_hw_layer
from .errors import UnmappedNode, UnmappedNodeError, write_unmapped
from .generic import execute_in_parent
from .host_io import join_host_io, split_host_io
from .project_ops import (
    SetProjectFolding,
    SpecializeProjectLayers,
    in_finn_view,
    to_finn_view,
)
from .specialize import SpecializeToRTL, preferred_style
from .transforms import (
    AbsorbClipIntoQuant,
    AbsorbScalarMulIntoIntLayerNorm,
    AbsorbScalarMulIntoLayerNorm,
    AbsorbTokenLinearIntoElementThresholds,
    ChannelsLastThresholds,
    CollapseOrderPreservingMovement,
    InferIntLayerNorm,
    MoveChannelwiseLinearPastSplit,
    MoveGlobalThresholdsBeforeDataMovement,
    MoveLinearPastReduceMean,
    MoveThresholdsBeforeSplit,
    OrderPreservingShuffleToReshape,
    OutputDequantToHost,
    ReduceMeanToGlobalAccPool,
    SlicesToSplit,
    ThresholdsToRequant,
    TidyOnChangeComposed,
    ZeroPointQuantToThresholds,
    output_dequant_tail,
    streamline_step,
    tidy_on_change_streamline,
)
from .transforms.infer_int_layernorm import unconverted_reason

MAX_STREAMLINE_ROUNDS = 8
# Thresholds have at most 8 output bits here; FINN's Requant conversion starts above this.
MAX_THRESHOLD_BITS = 8
NO_FINN_REQUANT = 33


def verify_stage(
    model: ModelWrapper, cfg: DataflowBuildConfig, stage: str, parent: ModelWrapper | None = None
) -> dict:
    """Execute ``model`` on ``cfg.verify_input_npy``, compare with the expected output, record it.

    With ``parent`` (FINN's dataflow parent model), ``model`` is its partition and the parent is
    executed around it (:func:`~qmlp_brevitas.finn.generic.execute_in_parent`), host-side nodes
    included. Appends ``{stage: {max_abs_diff, ok, atol, seconds}}`` to
    ``report/verification.json``.
    """
    x = np.load(cfg.verify_input_npy)
    expected = np.load(cfg.verify_expected_output_npy)
    start = time.time()
    top = parent if parent is not None else model
    iname, oname = top.graph.input[0].name, top.graph.output[0].name
    inputs = {iname: x.reshape(top.get_tensor_shape(iname)).astype(np.float32)}
    if parent is None:
        y = execute_onnx(model, inputs)[oname]
    else:
        child = BuildFolder(cfg.output_dir).step_model(f"verify_{stage}")
        y = execute_in_parent(parent, model, inputs, child)[oname]
    diff = float(np.abs(y.reshape(expected.shape) - expected).max())
    result = {
        "max_abs_diff": diff,
        "ok": diff <= cfg.verification_atol,
        "atol": cfg.verification_atol,
        "seconds": round(time.time() - start, 2),
    }
    folder = BuildFolder(cfg.output_dir)
    path = folder.verification_report
    path.parent.mkdir(parents=True, exist_ok=True)
    results = folder.read_verification()
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
    absorbs scales; then global thresholds move in front of token transposes and concats (and
    ResMLP's per-token factors go into per-element thresholds), residual
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
            AbsorbTokenLinearIntoElementThresholds(),
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


def unmapped_nodes(model: ModelWrapper) -> list[UnmappedNode]:
    """Every node that is not a hardware layer (FINN's or this project's), and why, apart from
    the output de-quantization left to the host (:class:`OutputDequantToHost`)."""
    host = {n.name for n in output_dequant_tail(model)}
    return [
        UnmappedNode(node.name, node.op_type, _why_unmapped(model, node))
        for node in model.graph.node
        if not is_hw_layer(node.domain) and node.name not in host
    ]


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
            + _negative_scale_hint(model, node)
        )
    return f"FINN has no hardware layer for {node.op_type} with these inputs ({', '.join(dtypes)})"


def _negative_scale_hint(model: ModelWrapper, node) -> str:
    """For ResMLP's token-group concat: a negative per-channel factor (LayerScale) behind it,
    which :class:`AbsorbTokenLinearIntoElementThresholds` cannot fold."""
    consumer = model.find_consumer(node.output[0]) if node.op_type == "Concat" else None
    factor = model.get_initializer(consumer.input[1]) if consumer is not None else None
    if consumer is None or consumer.op_type != "Mul" or factor is None or not (factor < 0).any():
        return ""
    return (
        f" ({consumer.name} multiplies {int((factor < 0).sum())} channels by a negative factor, "
        "a negative LayerScale: train with --layer-scale non_negative)"
    )


def check_all_hw(model: ModelWrapper, report: Path | None = None) -> None:
    """Raise :class:`UnmappedNodeError` (fields of the first node that is not a hardware layer,
    and all of them); with ``report``, also write them there as JSON first."""
    missing = unmapped_nodes(model)
    if missing:
        if report is not None:
            write_unmapped(report, missing)
        raise UnmappedNodeError(missing)


def step_qmlp_convert_to_hw(model: ModelWrapper, cfg: DataflowBuildConfig) -> ModelWrapper:
    """FINN's ``step_convert_to_hw`` between the host nodes, then a check that every other node
    became a hardware layer.

    The input quantizer (with its layout nodes) is set aside for the host
    (:mod:`~qmlp_brevitas.finn.host_io`), so that the accelerator takes integers; FINN's
    partitioning leaves it in the parent model. Expects ``cfg.standalone_thresholds``
    (thresholds as their own layer, since MVAUs with embedded thresholds do not execute on token
    streams) and ``infer_shuffle_skip_first=False`` (every other transpose becomes a
    ``Shuffle``). With ``cfg.requant_bitwidth_threshold`` at 8 bits or less
    (``fpga/build.py --requant-bits``), thresholds of that many output bits become FINN
    ``Requant`` layers where that is exact
    (:class:`~qmlp_brevitas.finn.transforms.ThresholdsToRequant`), in place of FINN's own
    conversion. After FINN's conversion the integer LayerNorms become the project's
    ``IntLayerNorm`` layer, a ``Shuffle`` that keeps the element order becomes a ``Reshape``
    (:class:`~qmlp_brevitas.finn.transforms.OrderPreservingShuffleToReshape`), and the float
    output scale and bias of the logits stay ONNX nodes for the host (:class:`OutputDequantToHost`).
    Verified as stage ``hw_layers``.
    """
    # Split and Concat first: their hardware layers also repair qonnx's datatype inference,
    # which leaves the outputs of a Split as FLOAT32 (as FINN's transformer steps do).
    model, host = split_host_io(model)
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
    # after FINN's conversion: its ElementwiseAdd types the residual sum (INT<a+1>), where
    # qonnx's inference of the plain Add gave INT32
    model = model.transform(InferIntLayerNorm())
    # A transpose that keeps the element order (the 1-channel input image) needs no shuffle.
    model = model.transform(OrderPreservingShuffleToReshape())
    model = model.transform(OutputDequantToHost())
    model = model.transform(InferShapes()).transform(InferDataTypes())
    check_all_hw(model, BuildFolder(cfg.output_dir).unmapped_nodes)
    model = join_host_io(model, host)
    verify_stage(model, cfg, "hw_layers")
    return model


def step_qmlp_create_dataflow_partition(
    model: ModelWrapper, cfg: DataflowBuildConfig
) -> ModelWrapper:
    """FINN's ``step_create_dataflow_partition``, the project's layers counted as hardware."""
    return in_finn_view(step_create_dataflow_partition)(model, cfg)


def step_qmlp_specialize_layers(model: ModelWrapper, cfg: DataflowBuildConfig) -> ModelWrapper:
    """The project's layers to their RTL variants (:class:`SpecializeProjectLayers`), then
    FINN's ``step_specialize_layers``, keeping each layer's ``preferred_impl_style``.

    FINN drops the attribute when it specialises a layer; ``step_qmlp_specialize_rtl`` reads it
    later (a layer preferred as "hls" stays HLS). The preference is the node's own attribute or
    ``cfg.specialize_layers_config_file``'s, which FINN's step applies first.
    """
    from finn.transformation.general import ApplyConfig
    from finn.transformation.qonnx.give_unique_node_names_recursive import (
        GiveUniqueNodeNamesRecursive,
    )

    preview = model
    if cfg.specialize_layers_config_file is not None:
        preview = model.transform(GiveUniqueNodeNamesRecursive())
        preview = preview.transform(ApplyConfig(cfg.specialize_layers_config_file))
    styles = {
        node.output[0]: style
        for node in preview.graph.node
        if node.output and (style := preferred_style(node))
    }
    model = model.transform(SpecializeProjectLayers(cfg._resolve_fpga_part()))  # noqa: SLF001
    model = step_specialize_layers(model, cfg)
    for node in model.graph.node:
        if node.output and node.output[0] in styles:
            getCustomOp(node).set_nodeattr("preferred_impl_style", styles[node.output[0]])
    return model


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


def step_qmlp_specialize_rtl(model: ModelWrapper, cfg: DataflowBuildConfig) -> ModelWrapper:
    """The HLS layers that have an RTL variant become it (:class:`SpecializeToRTL`).

    Placed after FINN's folding steps (``SetFolding`` and ``ApplyConfig`` pick the folding of
    these layers by their HLS op types) and after ``step_transpose_decomposition`` (which
    specialises the shuffles it makes): each RTL layer keeps the folding, data types and shapes
    of the HLS layer it replaces.
    """
    model = model.transform(SpecializeToRTL())
    model = model.transform(GiveUniqueNodeNames())
    return model.transform(InferShapes()).transform(InferDataTypes())


def step_qmlp_finn_domains(model: ModelWrapper, cfg: DataflowBuildConfig) -> ModelWrapper:
    """The project's layers moved into FINN's domains for FINN's hardware steps (IP generation,
    stitching), which select layers by domain. Not run without Vivado."""
    to_finn_view(model)
    return model


def step_qmlp_verify_folded(model: ModelWrapper, cfg: DataflowBuildConfig) -> ModelWrapper:
    """Verify the folded, specialised graph (stage ``folded``); the model is unchanged.

    Executes the Python execution of each layer (the generic HW copy) inside FINN's dataflow
    parent model, so that host-side nodes (the output scale and bias) are included; cycle-true
    simulation of the same graph is the RTL simulation's job.
    """
    parent = BuildFolder(cfg.output_dir).dataflow_parent
    verify_stage(model, cfg, "folded", ModelWrapper(str(parent)) if parent.is_file() else None)
    return model


def step_qmlp_generate_estimate_reports(
    model: ModelWrapper, cfg: DataflowBuildConfig
) -> ModelWrapper:
    """FINN's ``step_generate_estimate_reports``, with the project's layers estimated like
    FINN's (cycles, resources, critical path): FINN's analyses count only layers of FINN's
    hls/rtl domains, so the step runs with the project's layers presented there
    (:func:`~qmlp_brevitas.finn.project_ops.in_finn_view`)."""
    return in_finn_view(step_generate_estimate_reports)(model, cfg)
