"""Every layer costed: FINN's estimate where FINN has one, the project's model otherwise.

For each hardware layer of a folded FINN graph and each resource (LUT, FF, BRAM_18K, URAM,
DSP) and its cycles per frame, :func:`layer_cost` records the number and where it comes from:

* ``finn`` -- the op class's own estimate, defined by a FINN class (``lut_estimation``,
  ``bram_estimation``, ``uram_estimation``, ``dsp_estimation``, ``get_exp_cycles``). A LUT
  estimate of 0 counts as none: every layer uses LUTs, and FINN's base class returns 0;
* ``modelled`` -- an estimate of the project: the op class's own method where the class is the
  project's (:mod:`qmlp_brevitas.finn.custom_op`, including ``ff_estimation``), else
  :mod:`qmlp_brevitas.finn.cost_models`; FINN has no flip-flop estimate, so FF is always the
  project's;
* ``synthesized`` -- Yosys' count for this very layer (:mod:`qmlp_brevitas.finn.synth`), when
  the build has been synthesised.

:func:`stream_costs` adds what the estimate-only build has not inserted yet: a data-width
converter on each connection whose stream widths differ, costed by FINN's
``StreamingDataWidthConverter`` (its LUT estimate), and the FIFO that a residual's bypass
branch needs to hold the frame while the other branch buffers it (:func:`bypass_fifo_depth`),
costed by FINN's ``StreamingFIFO`` at that depth. :func:`network_costs` gives the totals,
the critical path and bottleneck (over FINN's and modelled cycles), frames/s, the MAC
utilisation and the fraction of the part used.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from onnx import helper

from . import cost_models
from .domains import HW_DOMAIN, is_hw_layer
from .parts import RESOURCES, UnknownPartError, part_capacity

ESTIMATE_METHODS = {
    "LUT": "lut_estimation",
    "FF": "ff_estimation",
    "BRAM_18K": "bram_estimation",
    "URAM": "uram_estimation",
    "DSP": "dsp_estimation",
}
FOLDING_ATTRS = ("PE", "SIMD")
# Layers that take in a whole frame before they emit its first word.
FRAME_BUFFERS = ("Shuffle", "InnerShuffle", "OuterShuffle", "GlobalAccPool")
MIN_FIFO_DEPTH = 32


@dataclass
class LayerCost:
    """Cycles and resources of one layer (or inserted FIFO/DWC), with each number's source."""

    name: str
    op_type: str
    cycles: int
    resources: dict[str, float]
    sources: dict[str, str]
    folding: dict[str, int] = field(default_factory=dict)
    macs: int = 0
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def _owner(inst, method: str) -> type | None:
    for cls in type(inst).__mro__:
        if method in cls.__dict__:
            return cls
    return None


def estimate_source(inst, method: str) -> str | None:
    """``"finn"`` or ``"modelled"`` if the op class estimates this itself, else None."""
    from finn.custom_op.fpgadataflow.hwcustomop import HWCustomOp

    owner = _owner(inst, method)
    if owner is None or owner is HWCustomOp:
        return None
    if owner.__module__.startswith("qmlp_brevitas"):
        return "modelled"
    if owner.__module__.startswith("finn"):
        return "finn"
    return None


def folding_of(inst) -> dict[str, int]:
    out = {}
    for attr in FOLDING_ATTRS:
        try:
            out[attr] = int(inst.get_nodeattr(attr))
        except (AttributeError, KeyError):
            continue
    return out


def layer_cycles(inst) -> tuple[int, str]:
    """Cycles per frame and their source."""
    source = estimate_source(inst, "get_exp_cycles")
    if source is not None:
        cycles = int(inst.get_exp_cycles())
        if cycles > 0:
            return cycles, source
    model = cost_models.CYCLE_MODELS.get(inst.onnx_node.op_type)
    if model is not None:
        return int(model(inst)), "modelled"
    # a streaming layer without estimate: one output word per cycle
    return int(np.prod(inst.get_folded_output_shape()[:-1])), "modelled"


def layer_cost(inst, fpgapart: str, synthesized: dict | None = None) -> LayerCost:
    """The cost of one HW layer (FINN's custom-op instance); see the module docstring."""
    from qmlp_brevitas.rtlsim.node import mac_count

    from .specialize import built_variant

    # an HLS layer that the build turns into an RTL layer is costed as that RTL layer
    inst = built_variant(inst)
    node = inst.onnx_node
    resources: dict[str, float] = {}
    sources: dict[str, str] = {}
    for res, method in ESTIMATE_METHODS.items():
        source = estimate_source(inst, method)
        if source is None:
            continue
        value = float(getattr(inst, method)(fpgapart))
        if res == "LUT" and value <= 0:
            continue
        resources[res], sources[res] = value, source
    model = cost_models.op_model(node.op_type)(inst)
    default = cost_models.streaming_default(inst)
    for res in RESOURCES:
        if res not in resources:
            resources[res] = float(model.get(res, default.get(res, 0.0)))
            sources[res] = "modelled"
    if synthesized:
        for res in RESOURCES:
            if res in synthesized:
                resources[res], sources[res] = float(synthesized[res]), "synthesized"
    cycles, sources["cycles"] = layer_cycles(inst)
    return LayerCost(
        name=node.name,
        op_type=node.op_type,
        cycles=cycles,
        resources=resources,
        sources=sources,
        folding=folding_of(inst),
        macs=mac_count(inst),
    )


def _hw_nodes(model):
    return [n for n in model.graph.node if is_hw_layer(n.domain)]


def _dwc_cost(name: str, width_in: int, width_out: int, shape, dtype: str, fpgapart: str):
    from qonnx.custom_op.registry import getCustomOp

    node = helper.make_node(
        "StreamingDataWidthConverter",
        ["in"],
        ["out"],
        name=name,
        domain=HW_DOMAIN,
        backend="fpgadataflow",
        inShape=list(shape),
        outShape=list(shape),
        inWidth=int(width_in),
        outWidth=int(width_out),
        dataType=dtype,
    )
    inst = getCustomOp(node)
    lut = float(inst.lut_estimation(fpgapart))
    res = {r: 0.0 for r in RESOURCES}
    res["LUT"], res["FF"] = lut, cost_models.dwc_ff(width_in, width_out)
    sources = {r: "modelled" for r in RESOURCES}
    sources.update(LUT="finn", cycles="modelled")
    return LayerCost(name, "StreamingDataWidthConverter", 0, res, sources)


def fifo_cost(name: str, depth: int, width: int, dtype: str, fpgapart: str, note: str):
    """FINN's ``StreamingFIFO`` estimate (LUT, BRAM, URAM) of a FIFO; FF modelled."""
    from qonnx.custom_op.registry import getCustomOp

    bits = max(1, _bits_of(dtype))
    elems = max(1, width // bits)
    node = helper.make_node(
        "StreamingFIFO",
        ["in"],
        ["out"],
        name=name,
        domain=HW_DOMAIN,
        backend="fpgadataflow",
        depth=int(depth),
        folded_shape=[1, int(depth), elems],
        normal_shape=[1, int(depth) * elems],
        dataType=dtype,
    )
    inst = getCustomOp(node)
    res = {r: 0.0 for r in RESOURCES}
    res["LUT"] = float(inst.lut_estimation(fpgapart))
    res["BRAM_18K"] = float(inst.bram_estimation(fpgapart))
    res["URAM"] = float(inst.uram_estimation(fpgapart))
    res["FF"] = cost_models.fifo_ff(depth, width)
    sources = {r: "finn" for r in ("LUT", "BRAM_18K", "URAM")}
    sources.update(FF="modelled", DSP="modelled", cycles="modelled")
    return LayerCost(name, "StreamingFIFO", 0, res, sources, note=note)


def _bits_of(dtype: str) -> int:
    from qonnx.core.datatype import DataType

    return int(DataType[dtype].bitwidth())


def _branch_buffers(model, tensor: str, fork: str | None) -> int:
    """Frame-buffering layers on the path from ``tensor`` back to the node ``fork``."""
    count = 0
    producer = model.find_producer(tensor)
    seen = 0
    while producer is not None and producer.name != fork and seen < 10_000:
        base = producer.op_type.removesuffix("_hls").removesuffix("_rtl")
        count += base in FRAME_BUFFERS
        dynamic = [i for i in producer.input if i and model.get_initializer(i) is None]
        producer = model.find_producer(dynamic[0]) if dynamic else None
        seen += 1
    return count


def _fork_of(model, node) -> str | None:
    """The nearest DuplicateStreams above the first input of a join."""
    producer = model.find_producer(node.input[0])
    while producer is not None:
        if producer.op_type.startswith("DuplicateStreams"):
            return producer.name
        dynamic = [i for i in producer.input if i and model.get_initializer(i) is None]
        producer = model.find_producer(dynamic[0]) if dynamic else None
    return None


def bypass_fifo_depth(model, node, words_per_frame: int) -> tuple[int, int]:
    """Depth of the FIFO on the shorter input of a two-stream join, and which input.

    The branch with more frame-buffering layers (shuffles: a transpose must take in the whole
    frame before its first output) delays its stream by about a frame per buffer; for the
    join to keep streaming, the other input must hold that many frames: depth = frames x
    words per frame (at least :data:`MIN_FIFO_DEPTH`). Modelled, in place of FINN's FIFO
    sizing by RTL simulation, which needs Vivado.
    """
    fork = _fork_of(model, node)
    buffers = [_branch_buffers(model, t, fork) for t in node.input[:2]]
    short = int(np.argmin(buffers))
    frames = abs(buffers[0] - buffers[1])
    return max(MIN_FIFO_DEPTH, frames * words_per_frame), short


def node_stream_costs(model, node, fpgapart: str) -> list[LayerCost]:
    """What the build inserts on the inputs of ``node``: a DWC on each input whose stream
    width differs from its producer's, and the bypass FIFO of a two-stream join (see module
    docstring). They depend on the folding of ``node`` and of its producers only."""
    from qonnx.custom_op.registry import getCustomOp

    extra: list[LayerCost] = []
    inst = getCustomOp(node)
    dynamic = [(j, t) for j, t in enumerate(node.input) if t and model.get_initializer(t) is None]
    for j, tensor in dynamic:
        producer = model.find_producer(tensor)
        if producer is None or not is_hw_layer(producer.domain):
            continue
        pinst = getCustomOp(producer)
        k = list(producer.output).index(tensor)
        w_out, w_in = int(pinst.get_outstream_width(k)), int(inst.get_instream_width(j))
        if w_out != w_in:
            dtype = pinst.get_output_datatype(k).name
            shape = model.get_tensor_shape(tensor)
            name = f"DWC_{producer.name}_{node.name}"
            extra.append(_dwc_cost(name, w_out, w_in, shape, dtype, fpgapart))
    if len(dynamic) == 2 and node.op_type.startswith("Elementwise"):
        words = int(np.prod(inst.get_folded_input_shape(0)[:-1]))
        depth, short = bypass_fifo_depth(model, node, words)
        width = int(inst.get_instream_width(short))
        dtype = inst.get_input_datatype(short).name
        extra.append(
            fifo_cost(
                f"FIFO_{node.name}_in{short}",
                depth,
                width,
                dtype,
                fpgapart,
                note=f"residual bypass, depth {depth} (modelled)",
            )
        )
    return extra


def stream_costs(model, fpgapart: str) -> list[LayerCost]:
    """DWCs on width mismatches and FIFOs on residual bypasses (see module docstring)."""
    return [c for node in _hw_nodes(model) for c in node_stream_costs(model, node, fpgapart)]


def critical_path(model, cycles: dict[str, int]) -> int:
    """Longest path in cycles through the layers (the graph is topologically sorted)."""
    longest: dict[str, int] = {}
    for node in model.graph.node:
        preds = [model.find_producer(t) for t in node.input if t]
        start = max((longest[p.name] for p in preds if p is not None), default=0)
        longest[node.name] = start + cycles.get(node.name, 0)
    return max(longest.values(), default=0)


def network_costs(
    model, fpgapart: str, clock_ns: float, synthesized: dict[str, dict] | None = None
) -> dict:
    """Per-layer costs, inserted FIFO/DWC costs and the network's totals and performance."""
    from qonnx.custom_op.registry import getCustomOp

    synthesized = synthesized or {}
    layers = [
        layer_cost(getCustomOp(n), fpgapart, synthesized.get(n.name)) for n in _hw_nodes(model)
    ]
    inserted = stream_costs(model, fpgapart)
    totals = {r: sum(c.resources[r] for c in layers + inserted) for r in RESOURCES}
    everything = layers + inserted
    by_source = {
        s: {r: sum(c.resources[r] for c in everything if c.sources[r] == s) for r in RESOURCES}
        for s in ("finn", "modelled", "synthesized")
    }
    cycles = {c.name: c.cycles for c in layers}
    bottleneck = max(layers, key=lambda c: c.cycles) if layers else None
    max_cycles = bottleneck.cycles if bottleneck else 0
    macs = sum(c.macs for c in layers)
    lanes = sum(c.folding.get("PE", 1) * c.folding.get("SIMD", 1) for c in layers if c.macs)
    try:
        capacity = part_capacity(fpgapart)
        fraction = {r: (totals[r] / capacity[r] if capacity[r] else None) for r in RESOURCES}
    except UnknownPartError:
        capacity, fraction = None, None
    return {
        "layers": layers,
        "inserted": inserted,
        "totals": totals,
        "totals_by_source": by_source,
        "max_cycles": max_cycles,
        "bottleneck": bottleneck.name if bottleneck else None,
        "bottleneck_op": bottleneck.op_type if bottleneck else None,
        "critical_path_cycles": critical_path(model, cycles),
        "estimated_fps": 1e9 / (clock_ns * max_cycles) if max_cycles else None,
        "macs_per_frame": macs,
        "mac_lanes": lanes,
        "mac_utilisation": macs / (lanes * max_cycles) if lanes and max_cycles else None,
        "part_capacity": capacity,
        "part_fraction": fraction,
    }


def fits(totals: dict[str, float], budget: dict[str, float]) -> bool:
    return all(totals.get(r, 0.0) <= budget[r] + 1e-9 for r in budget)
