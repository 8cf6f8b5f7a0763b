"""Single-layer FINN hardware graphs, built the way FINN's own layer tests build them.

``make_thresholding_model`` and ``make_mvau_model`` mirror finn-plus's
``tests/fpgadataflow/test_fpgadataflow_thresholding.py`` and ``test_fpgadataflow_mvau.py``: one
HW-abstraction node made with ``onnx.helper``, folded with PE/SIMD, then specialised to its RTL
variant with FINN's ``SpecializeLayers``. They give small, fast layers for checking the RTL
simulation itself. The builders of the stream layers (``make_duplicate_streams_model``,
``make_split_model``, ``make_concat_model``, ``make_global_acc_pool_model``,
``make_eltwise_model``) make FINN HW nodes of the kinds that the project's
:class:`~qmlp_brevitas.finn.specialize.SpecializeToRTL` turns into RTL layers
(:func:`specialize_rtl`); they have one or two inputs and outputs. ``make_int_layernorm_model``
does the same for the project's integer LayerNorm layer.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.general import GiveUniqueNodeNames
from qonnx.util.basic import qonnx_make_model

from qmlp_brevitas.finn.domains import HW_DOMAIN
from qmlp_brevitas.rtlsim.layer import DEFAULT_FPGAPART
from qmlp_brevitas.rtlsim.node import ensure_finn_settings, is_rtl_layer


def _wrap(node, in_shape, out_shape, idt: DataType, odt: DataType) -> ModelWrapper:
    inp = helper.make_tensor_value_info("inp", TensorProto.FLOAT, in_shape)
    outp = helper.make_tensor_value_info("outp", TensorProto.FLOAT, out_shape)
    graph = helper.make_graph([node], "single_layer", [inp], [outp])
    model = ModelWrapper(qonnx_make_model(graph, producer_name="qmlp-rtlsim"))
    model.set_tensor_datatype("inp", idt)
    model.set_tensor_datatype("outp", odt)
    return model


def _wrap_io(
    node, inputs: list[tuple[str, list[int], str]], outputs: list[tuple[str, list[int], str]]
) -> ModelWrapper:
    """A one-node graph with the given (name, shape, FINN data type) inputs and outputs."""
    graph = helper.make_graph(
        [node],
        "single_layer",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s, _ in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s, _ in outputs],
    )
    model = ModelWrapper(qonnx_make_model(graph, producer_name="qmlp-rtlsim"))
    for name, _, dt in inputs + outputs:
        model.set_tensor_datatype(name, DataType[dt])
    return model


def specialize(model: ModelWrapper, fpgapart: str = DEFAULT_FPGAPART) -> ModelWrapper:
    """FINN's ``SpecializeLayers`` (and the project's, for its own layers); fails if no node
    became an RTL layer."""
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

    from qmlp_brevitas.finn.project_ops import SpecializeProjectLayers

    ensure_finn_settings()
    model = model.transform(SpecializeProjectLayers(fpgapart))
    model = model.transform(SpecializeLayers(fpgapart)).transform(GiveUniqueNodeNames())
    if not any(is_rtl_layer(n) for n in model.graph.node):
        ops = [n.op_type for n in model.graph.node]
        raise ValueError(f"SpecializeLayers({fpgapart}) made no RTL layer (got {ops})")
    return model


def specialize_rtl(model: ModelWrapper) -> ModelWrapper:
    """The project's ``SpecializeToRTL``; fails if no node became an RTL layer."""
    from qmlp_brevitas.finn.specialize import SpecializeToRTL

    ensure_finn_settings()
    model = model.transform(SpecializeToRTL())
    if not any(is_rtl_layer(n) for n in model.graph.node):
        ops = [n.op_type for n in model.graph.node]
        raise ValueError(f"SpecializeToRTL made no RTL layer (got {ops})")
    return model


def make_duplicate_streams_model(
    channels: int = 12,
    pe: int = 3,
    vectors: tuple[int, ...] = (1, 5),
    idt: str = "INT5",
    outputs: int = 2,
) -> ModelWrapper:
    """A ``DuplicateStreams`` HW node with ``outputs`` output streams."""
    shape = [*vectors, channels]
    names = [f"out{i}" for i in range(outputs)]
    node = helper.make_node(
        "DuplicateStreams",
        ["inp"],
        names,
        domain=HW_DOMAIN,
        backend="fpgadataflow",
        NumChannels=channels,
        PE=pe,
        NumOutputStreams=outputs,
        inputDataType=idt,
        numInputVectors=list(vectors),
    )
    return _wrap_io(node, [("inp", shape, idt)], [(n, shape, idt) for n in names])


def make_split_model(
    channels: tuple[int, ...] = (8, 4, 12),
    simd: int = 4,
    vectors: tuple[int, ...] = (1, 3),
    idt: str = "INT4",
) -> ModelWrapper:
    """A ``StreamingSplit`` HW node splitting the channel axis into ``channels``."""
    names = [f"out{i}" for i in range(len(channels))]
    node = helper.make_node(
        "StreamingSplit",
        ["inp"],
        names,
        domain=HW_DOMAIN,
        backend="fpgadataflow",
        SIMD=simd,
        ChannelsPerStream=list(channels),
        inputDataType=idt,
        numInputVectors=list(vectors),
    )
    return _wrap_io(
        node,
        [("inp", [*vectors, sum(channels)], idt)],
        [(n, [*vectors, c], idt) for n, c in zip(names, channels, strict=True)],
    )


def make_concat_model(
    channels: tuple[int, ...] = (8, 4, 12),
    simd: int = 4,
    vectors: tuple[int, ...] = (1, 3),
    idts: tuple[str, ...] = ("INT4", "UINT3", "INT6"),
) -> ModelWrapper:
    """A ``StreamingConcat`` HW node joining inputs of ``channels`` (and types ``idts``)."""
    from finn.custom_op.fpgadataflow.concat import StreamingConcat

    names = [f"in{i}" for i in range(len(channels))]
    node = helper.make_node(
        "StreamingConcat",
        names,
        ["outp"],
        domain=HW_DOMAIN,
        backend="fpgadataflow",
        SIMD=simd,
        ChannelsPerStream=list(channels),
        inputDataTypes=list(idts),
        numInputVectors=list(vectors),
    )
    odt = StreamingConcat(node).get_output_datatype().name
    return _wrap_io(
        node,
        [(n, [*vectors, c], dt) for n, c, dt in zip(names, channels, idts, strict=True)],
        [("outp", [*vectors, sum(channels)], odt)],
    )


def make_global_acc_pool_model(
    channels: int = 12, pe: int = 3, tokens: tuple[int, int] = (5, 1), idt: str = "INT4"
) -> ModelWrapper:
    """A ``GlobalAccPool`` HW node summing ``tokens[0] * tokens[1]`` vectors per frame."""
    from finn.custom_op.fpgadataflow.globalaccpool import GlobalAccPool

    vectors = [1, *tokens]
    node = helper.make_node(
        "GlobalAccPool",
        ["inp"],
        ["outp"],
        domain=HW_DOMAIN,
        backend="fpgadataflow",
        NumChannels=channels,
        PE=pe,
        inputDataType=idt,
        numInputVectors=vectors,
    )
    odt = GlobalAccPool(node).get_output_datatype().name
    return _wrap_io(
        node, [("inp", [*vectors, channels], idt)], [("outp", [1, 1, 1, channels], odt)]
    )


def make_eltwise_model(
    op: str = "ElementwiseAdd",
    channels: int = 12,
    pe: int = 3,
    vectors: tuple[int, ...] = (1, 5),
    idts: tuple[str, str] = ("INT4", "INT4"),
) -> ModelWrapper:
    """An ``ElementwiseAdd``/``ElementwiseMul`` HW node of two streamed inputs of one shape, its
    output type FINN's minimal one."""
    from finn.custom_op.fpgadataflow import elementwise_binary

    shape = [*vectors, channels]
    node = helper.make_node(
        op,
        ["lhs", "rhs"],
        ["outp"],
        domain=HW_DOMAIN,
        backend="fpgadataflow",
        lhs_dtype=idts[0],
        rhs_dtype=idts[1],
        out_dtype="INT32",
        lhs_shape=shape,
        rhs_shape=shape,
        out_shape=shape,
        PE=pe,
    )
    model = _wrap_io(
        node, [("lhs", shape, idts[0]), ("rhs", shape, idts[1])], [("outp", shape, "INT32")]
    )
    getattr(elementwise_binary, op)(model.graph.node[0]).minimize_accumulator_width(model)
    return model


def make_fork_join_model(
    channels: int = 12, pe: int = 3, vectors: tuple[int, ...] = (1, 5), idt: str = "INT4"
) -> ModelWrapper:
    """``DuplicateStreams`` into both inputs of an ``ElementwiseAdd`` (``y = x + x``): a layer
    with two outputs feeding a layer with two inputs, as a residual block's fork and join."""
    dup = make_duplicate_streams_model(channels, pe, vectors, idt, outputs=2)
    add = make_eltwise_model("ElementwiseAdd", channels, pe, vectors, (idt, idt))
    shape = [*vectors, channels]
    fork, join = dup.graph.node[0], add.graph.node[0]
    join.input[:] = list(fork.output)
    odt = add.get_tensor_datatype("outp").name
    model = _wrap_io(fork, [("inp", shape, idt)], [("outp", shape, odt)])
    model.graph.node.append(join)
    for name in fork.output:
        model.graph.value_info.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))
        model.set_tensor_datatype(name, DataType[idt])
    return model


def make_thresholding_model(
    channels: int = 16,
    pe: int = 4,
    vectors: tuple[int, ...] = (1, 8),
    idt: str = "INT8",
    odt: str = "UINT4",
    seed: int = 0,
    threshold_range: tuple[int, int] | None = None,
) -> ModelWrapper:
    """A ``Thresholding`` HW node (random sorted integer thresholds in ``threshold_range``,
    default the input type's range), not yet specialised."""
    idt_, odt_ = DataType[idt], DataType[odt]
    rng = np.random.default_rng(seed)
    steps = odt_.get_num_possible_values() - 1
    low, high = threshold_range or (int(idt_.min()), int(idt_.max()))
    thresholds = np.sort(rng.integers(low, high + 1, size=(channels, steps)), axis=1).astype(
        np.float32
    )
    shape = [*vectors, channels]
    node = helper.make_node(
        "Thresholding",
        ["inp", "thresh"],
        ["outp"],
        domain=HW_DOMAIN,
        backend="fpgadataflow",
        NumChannels=channels,
        PE=pe,
        numSteps=steps,
        inputDataType=idt_.name,
        weightDataType=idt_.name,
        outputDataType=odt_.name,
        ActVal=int(odt_.min()),
        numInputVectors=list(vectors),
        preferred_impl_style="rtl",
    )
    model = _wrap(node, shape, shape, idt_, odt_)
    model.set_initializer("thresh", thresholds)
    model.set_tensor_datatype("thresh", idt_)
    return model


def make_mvau_model(
    mw: int = 16,
    mh: int = 8,
    simd: int = 4,
    pe: int = 2,
    vectors: tuple[int, ...] = (1, 4),
    idt: str = "INT4",
    wdt: str = "INT4",
    seed: int = 0,
) -> ModelWrapper:
    """An ``MVAU`` HW node (random weights, no activation), not yet specialised.

    The accumulator width is FINN's ``MinimizeAccumulatorWidth`` result.
    """
    from finn.transformation.fpgadataflow.minimize_accumulator_width import (
        MinimizeAccumulatorWidth,
    )

    ensure_finn_settings()
    idt_, wdt_ = DataType[idt], DataType[wdt]
    rng = np.random.default_rng(seed)
    weights = rng.integers(int(wdt_.min()), int(wdt_.max()) + 1, size=(mw, mh)).astype(np.float32)
    node = helper.make_node(
        "MVAU",
        ["inp", "weights"],
        ["outp"],
        domain=HW_DOMAIN,
        backend="fpgadataflow",
        MW=mw,
        MH=mh,
        SIMD=simd,
        PE=pe,
        inputDataType=idt_.name,
        weightDataType=wdt_.name,
        outputDataType="INT32",
        ActVal=0,
        binaryXnorMode=0,
        noActivation=1,
        numInputVectors=list(vectors),
        mem_mode="internal_decoupled",
        resType="dsp",
        preferred_impl_style="rtl",
    )
    model = _wrap(node, [*vectors, mw], [*vectors, mh], idt_, DataType["INT32"])
    model.set_initializer("weights", weights)
    model.set_tensor_datatype("weights", wdt_)
    return model.transform(MinimizeAccumulatorWidth())


def make_int_layernorm_model(
    channels: int = 16,
    simd: int = 4,
    vectors: tuple[int, ...] = (1, 6),
    idt: str = "INT5",
    input_bits: int | None = None,
    frac_bits: int = 8,
    eps_int: int = 0,
) -> ModelWrapper:
    """An ``IntLayerNorm`` HW node (:mod:`qmlp_brevitas.finn.custom_op`), not yet specialised;
    sized for ``input_bits`` (default: the input type's width)."""
    from qmlp_brevitas.finn.project_ops import DOMAIN
    from qmlp_brevitas.intnorm import IntLayerNormSpec

    idt_ = DataType[idt]
    bits = input_bits or idt_.bitwidth() + (0 if idt_.signed() else 1)
    spec = IntLayerNormSpec(channels, bits, frac_bits, eps_int)
    odt = DataType[f"INT{spec.output_bits}"]
    shape = [*vectors, channels]
    node = helper.make_node(
        "IntLayerNorm",
        ["inp"],
        ["outp"],
        name="IntLayerNorm_0",
        domain=DOMAIN,
        backend="fpgadataflow",
        NumChannels=channels,
        SIMD=simd,
        numInputVectors=list(vectors),
        input_bits=bits,
        frac_bits=frac_bits,
        eps_int=eps_int,
        rsqrt_bits=spec.rsqrt_bits,
        inputDataType=idt_.name,
        outputDataType=odt.name,
    )
    return _wrap(node, shape, shape, idt_, odt)


def make_requant_model(channels: int, pe: int, idt: str, odt: str, seed: int = 0) -> ModelWrapper:
    """A ``Requant`` HW node over 16 tokens with per-channel scale ~1/1150 and bias in [-5, 5)."""
    shape = [1, 16, channels]
    node = helper.make_node(
        "Requant",
        ["inp", "scale", "bias"],
        ["outp"],
        domain=HW_DOMAIN,
        backend="fpgadataflow",
        NumChannels=channels,
        PE=pe,
        inputDataType=idt,
        outputDataType=odt,
        numInputVectors=shape[:-1],
        narrow=0,
        preferred_impl_style="rtl",
    )
    model = _wrap(node, shape, shape, DataType[idt], DataType[odt])
    rng = np.random.default_rng(seed)
    model.set_initializer("scale", (1 / (1000 + 300 * rng.random(channels))).astype(np.float32))
    model.set_initializer("bias", (10 * rng.random(channels) - 5).astype(np.float32))
    return model


def random_input(model: ModelWrapper, seed: int = 0) -> dict[str, np.ndarray]:
    """A random input of the graph's first input, in its FINN data type."""
    name = model.graph.input[0].name
    return {name: random_inputs(model, seed)[name]}


def random_inputs(model: ModelWrapper, seed: int = 0) -> dict[str, np.ndarray]:
    """Random values of every graph input, each in its FINN data type."""
    rng = np.random.default_rng(seed)
    values = {}
    for inp in model.graph.input:
        dt = model.get_tensor_datatype(inp.name)
        shape = model.get_tensor_shape(inp.name)
        low, high = int(dt.min()), int(dt.max())
        values[inp.name] = rng.integers(low, high + 1, size=shape).astype(np.float32)
    return values


def make_mvau_thresholding_model(
    mw: int = 16,
    mh: int = 8,
    simd: int = 4,
    pe: int = 2,
    thresholding_pe: int = 2,
    vectors: tuple[int, ...] = (1, 4),
    odt: str = "UINT4",
    seed: int = 0,
) -> ModelWrapper:
    """An ``MVAU`` followed by a ``Thresholding`` on its accumulator (a quantized linear layer
    as FINN maps it), not yet specialised. The thresholding input type is the MVAU's
    minimised accumulator type, so :func:`make_thresholding_model` with ``idt`` set to it and
    the same sizes gives the same hardware configuration."""
    model = make_mvau_model(mw, mh, simd, pe, vectors, seed=seed)
    acc = model.get_tensor_datatype("outp")
    thr = make_thresholding_model(
        mh, thresholding_pe, vectors, acc.name, odt, seed=seed + 1, threshold_range=(-200, 200)
    )
    node = thr.graph.node[0]
    model.graph.output[0].name = "acc"
    model.graph.node[0].output[0] = "acc"
    model.graph.value_info.append(
        helper.make_tensor_value_info("acc", TensorProto.FLOAT, [*vectors, mh])
    )
    node.input[0] = "acc"
    model.graph.node.append(node)
    model.graph.output[0].CopyFrom(thr.graph.output[0])
    model.set_tensor_datatype("acc", acc)
    model.set_tensor_datatype("outp", DataType[odt])
    model.set_initializer("thresh", thr.get_initializer("thresh"))
    model.set_tensor_datatype("thresh", acc)
    return model
