"""One top-level module for a whole FINN dataflow partition: every layer, FIFOs between them.

Without Vivado, FINN's ``CreateStitchedIP`` (a Vivado block design) cannot run; this module does
the same job in plain SystemVerilog for Verilator:

* :func:`stitch_graph` -- FINN's own ``InsertDWC`` and ``InsertFIFO`` (a ``StreamingFIFO`` on
  every stream, the design's input and output included) and ``SpecializeLayers``, as FINN's
  ``step_set_fifo_depths`` does; every layer must then be an RTL layer.
* :func:`generate_design` -- every layer's HDL from FINN's code generation (``generate_hdl`` as
  FINN's ``PrepareIP`` calls it; for the project's own layers their ``generate_hdl``), copied
  into one folder and patched for Verilator (``qmlp_brevitas/rtlsim/verilator_patches``), and
  two generated files: the accelerator top ``qmlp_accel`` (AXI-stream ``s_axis``/``m_axis``,
  one wire bundle per stream) and the simulation top ``qmlp_whole_tb`` (file-fed source and
  sink from ``qmlp_brevitas/hdl``, cycle counters, progress and occupancy monitors).

FIFO depths are the FIFO nodes' ``depth`` attributes, set from a depth map (see
:mod:`.fifo_sizing`). In *gauge* mode the FIFOs are FINN's ``fifo_gauge`` (the unbounded
queue behind FINN's own FIFO sizing, selected by ``FINN_SIMULATION`` in FINN's FIFO template):
nothing ever waits on a FIFO and each one reports its maximum occupancy.
"""

from __future__ import annotations

import copy
import hashlib
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from qonnx.core.modelwrapper import ModelWrapper

from qmlp_brevitas.errors import QMLPError
from qmlp_brevitas.finn.specialize import run_with_finn_domains
from qmlp_brevitas.hdl import HDL_DIR
from qmlp_brevitas.rtlsim import node as finn_node
from qmlp_brevitas.rtlsim.patches import apply_patches, load_patches

ACCEL_TOP = "qmlp_accel"
TB_TOP = "qmlp_whole_tb"
HARNESS_SOURCES = ("axis_file_source.sv", "axis_file_sink.sv")
FIFO_OP = "StreamingFIFO_rtl"
COUNT_WIDTH = 32
GAUGE_DEFINE = "FINN_SIMULATION"


class StitchError(QMLPError, RuntimeError):
    """A graph that cannot be stitched into one simulated design; the message says why."""


@dataclass
class Stream:
    """One AXI-stream connection of the stitched design."""

    index: int
    tensor: str
    width: int
    producer: str | None  # node name; None: the design's input port
    producer_port: str | None
    consumer: str | None  # node name; None: the design's output port
    consumer_port: str | None


@dataclass
class Fifo:
    """A FIFO of the stitched design and the layers on either side of it."""

    name: str
    index: int
    depth: int
    width: int
    words_per_frame: int
    after: str  # the layer that writes it ("input": the design's input)
    before: str  # the layer that reads it ("output": the design's output)


@dataclass
class StitchedDesign:
    """A generated design: its sources, streams and FIFOs, and the stitched FINN graph."""

    out_dir: Path
    sources: list[Path]
    streams: list[Stream]
    fifos: list[Fifo]
    layers: list[str]
    in_width: int
    out_width: int
    gauge: bool
    model: ModelWrapper = field(repr=False)
    # parameter files the HDL reads relative to the simulator's folder ($readmemh)
    data_files: list[Path] = field(default_factory=list)

    @property
    def fifo_depths(self) -> dict[str, int]:
        """FIFO name -> depth."""
        return {f.name: f.depth for f in self.fifos}

    def describe(self) -> dict:
        """JSON-ready description (streams, FIFOs, layers)."""
        return {
            "layers": self.layers,
            "streams": [asdict(s) for s in self.streams],
            "fifos": [asdict(f) for f in self.fifos],
            "gauge": self.gauge,
        }


def is_fifo(node) -> bool:
    return node.op_type.startswith("StreamingFIFO")


def stitch_graph(model: ModelWrapper, fpgapart: str) -> ModelWrapper:
    """A copy of the dataflow partition ``model`` with FINN's width converters and a FIFO on
    every stream, specialised; raises :class:`StitchError` naming any non-RTL layer."""
    from finn.transformation.fpgadataflow.insert_dwc import InsertDWC
    from finn.transformation.fpgadataflow.insert_fifo import InsertFIFO
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers
    from qonnx.transformation.general import GiveReadableTensorNames, GiveUniqueNodeNames

    finn_node.ensure_finn_settings()
    if len(model.graph.input) != 1 or len(model.graph.output) != 1:
        raise StitchError(
            f"the design has {len(model.graph.input)} inputs and {len(model.graph.output)} "
            "outputs; the stitched simulation streams one input and one output"
        )
    graph = ModelWrapper(model.model.SerializeToString())
    not_rtl = [
        f"{n.name} ({n.op_type})"
        for n in graph.graph.node
        if not (n.domain.endswith(".rtl") and n.op_type.endswith("_rtl"))
    ]
    if not_rtl:
        raise StitchError(
            f"{len(not_rtl)} layers are not RTL layers and cannot be simulated with Verilator: "
            f"{', '.join(not_rtl)}; HLS layers need Vitis HLS (specialise them to RTL variants)"
        )

    def insert(model: ModelWrapper, _cfg) -> ModelWrapper:
        model = model.transform(InsertDWC())
        model = model.transform(InsertFIFO(create_shallow_fifos=True))
        return model.transform(SpecializeLayers(fpgapart))

    # FINN's transformations see the project's RTL layers as FINN layers
    graph = run_with_finn_domains(insert, graph, None)
    # readable tensor names: FINN's InsertFIFO names new tensors at random, and the generated
    # top (cached by its text) names every stream
    return graph.transform(GiveUniqueNodeNames()).transform(GiveReadableTensorNames())


def fifo_nodes(graph: ModelWrapper) -> list:
    return [n for n in graph.graph.node if is_fifo(n)]


def set_fifo_depths(graph: ModelWrapper, depths: dict[str, int]) -> None:
    """Set the depth of every FIFO of ``graph`` (in place) from ``depths``."""
    fifos = fifo_nodes(graph)
    missing = [n.name for n in fifos if n.name not in depths]
    if missing:
        raise StitchError(f"no depth given for FIFO(s) {missing}")
    for node in fifos:
        depth = int(depths[node.name])
        if depth < 2:
            raise StitchError(f"FIFO {node.name}: depth {depth} is below FINN's minimum of 2")
        finn_node.hw_op(node).set_nodeattr("depth", depth)


# Attributes HDL generation writes, not reads.
_GENERATED_ATTRS = ("code_gen_dir_ipgen", "ipgen_path", "ip_path", "gen_top_module", "exec_mode")


def _node_key(graph: ModelWrapper, node) -> str:
    """Hash of everything FINN's HDL generation reads: the node and its parameters."""
    bare = copy.deepcopy(node)
    for attr in [a for a in bare.attribute if a.name in _GENERATED_ATTRS]:
        bare.attribute.remove(attr)
    digest = hashlib.sha256(bare.SerializeToString())
    for name in node.input:
        value = graph.get_initializer(name)
        if value is not None:
            digest.update(value.tobytes())
            digest.update(str(graph.get_tensor_datatype(name)).encode())
    for name in list(node.input) + list(node.output):
        digest.update(str(graph.get_tensor_datatype(name)).encode())
    return digest.hexdigest()[:16]


def _generate(graph: ModelWrapper, node, hdl_root: Path, fpgapart: str, clk_ns: float):
    """FINN's HDL of ``node`` under ``hdl_root``, generated once per node configuration."""
    inst = finn_node.hw_op(node)
    out_dir = hdl_root / f"{node.name}-{_node_key(graph, node)}"
    marker = out_dir / ".generated"
    if marker.is_file():
        inst.set_nodeattr("code_gen_dir_ipgen", str(out_dir))
        inst.set_nodeattr("gen_top_module", marker.read_text().strip())
        inst.set_nodeattr("ipgen_path", str(out_dir))
        inst.set_nodeattr("ip_path", str(out_dir))
        return inst
    try:
        inst = finn_node.generate_hdl(graph, node, out_dir, fpgapart, clk_ns)
    except finn_node.LayerNotSimulable as err:
        raise StitchError(f"{node.name} ({node.op_type}): {err}") from err
    marker.write_text(finn_node.top_module(inst) + "\n")
    return inst


MEMSTREAM_SUFFIX = "_memstream_wrapper.v"
MEMSTREAM_PORT = "in1_V"


def memstream_wrapper(inst) -> Path | None:
    """The parameter streamer FINN generated for a layer with decoupled parameters, if any.

    FINN's convention (``code_generation_ipi`` of ``MVAU``, ``VVAU``, ``ElementwiseBinary``): a
    ``<top>_memstream_wrapper`` in the layer's code generation folder whose ``m_axis_0`` feeds the
    layer's ``in1_V``.
    """
    code_dir = Path(inst.get_nodeattr("code_gen_dir_ipgen"))
    found = sorted(code_dir.glob("*" + MEMSTREAM_SUFFIX))
    if not found:
        return None
    node = inst.onnx_node
    if len(found) > 1:
        raise StitchError(
            f"{node.name} ({node.op_type}) has {len(found)} parameter streamers; the stitched "
            "simulation connects one (to in1_V)"
        )
    return found[0]


def memstream_sources() -> list[Path]:
    """finn-rtllib's sources of the parameter streamer, as FINN's IPI stitching adds them."""
    from finn.util.settings import get_settings

    rtllib = Path(get_settings().finn_rtllib)
    return [
        rtllib / "axi" / "hdl" / "axilite.sv",
        rtllib / "memstream" / "hdl" / "memstream_axi.sv",
        rtllib / "memstream" / "hdl" / "memstream.sv",
    ]


def _interfaces(inst) -> dict:
    try:
        intf = finn_node.check_interfaces(inst)
    except finn_node.LayerNotSimulable as err:
        raise StitchError(f"{inst.onnx_node.name} ({inst.onnx_node.op_type}): {err}") from err
    if intf.get("axilite"):
        raise StitchError(
            f"{inst.onnx_node.name} has an AXI-lite interface (runtime-writeable parameters); "
            "the stitched simulation has no AXI-lite master"
        )
    return intf


def _streams(graph: ModelWrapper, insts: dict) -> list[Stream]:
    """Every stream: the design input, each tensor between two layers, the design output."""
    producer_of: dict[str, tuple[str, str, int]] = {}
    for node in graph.graph.node:
        inst = insts[node.name]
        ports = inst.get_verilog_top_module_intf_names()["m_axis"]
        if len(ports) != len(node.output):
            raise StitchError(
                f"{node.name}: {len(node.output)} outputs but {len(ports)} output streams"
            )
        for tensor, (port, width) in zip(node.output, ports, strict=True):
            producer_of[tensor] = (node.name, port, int(width))
    streams: list[Stream] = []
    gin, gout = graph.graph.input[0].name, graph.graph.output[0].name
    for node in graph.graph.node:
        inst = insts[node.name]
        dynamic = [t for t in node.input if graph.get_initializer(t) is None]
        ports = inst.get_verilog_top_module_intf_names()["s_axis"]
        if len(ports) != len(dynamic):
            raise StitchError(
                f"{node.name}: {len(dynamic)} streamed inputs but {len(ports)} input streams"
            )
        for tensor, (port, width) in zip(dynamic, ports, strict=True):
            k, width = len(streams), int(width)
            if tensor == gin:
                streams.append(Stream(k, tensor, width, None, None, node.name, port))
                continue
            if tensor not in producer_of:
                raise StitchError(f"{node.name}: input {tensor} has no producer in the design")
            prod, prod_port, prod_width = producer_of[tensor]
            if prod_width != width:
                raise StitchError(
                    f"stream {tensor}: {prod} writes {prod_width} bits, {node.name} reads "
                    f"{width}; FINN's InsertDWC should have put a width converter between them"
                )
            streams.append(Stream(k, tensor, width, prod, prod_port, node.name, port))
    prod, prod_port, width = producer_of[gout]
    streams.append(Stream(len(streams), gout, width, prod, prod_port, None, None))
    consumed = {s.tensor for s in streams}
    dangling = [t for t in producer_of if t not in consumed]
    if dangling:
        raise StitchError(f"streams without a reader: {dangling}")
    return streams


def _neighbour(graph: ModelWrapper, node, upstream: bool) -> str:
    """The nearest non-FIFO layer before (``upstream``) or after a FIFO, or input/output."""
    while True:
        if upstream:
            nxt = graph.find_producer(node.input[0])
        else:
            consumers = graph.find_consumers(node.output[0]) or []
            nxt = consumers[0] if consumers else None
        if nxt is None:
            return "input" if upstream else "output"
        if not is_fifo(nxt):
            return nxt.name
        node = nxt


def _layer_sources(inst) -> list[Path]:
    files = finn_node.rtl_sources(inst)
    wrapper = memstream_wrapper(inst)
    if wrapper is not None:
        files += [wrapper, *memstream_sources()]
    return files


def _copy_sources(insts: dict, src_dir: Path, gauge: bool, patch_dir: Path | None) -> list[Path]:
    shutil.rmtree(src_dir, ignore_errors=True)
    src_dir.mkdir(parents=True)
    seen: dict[str, bytes] = {}
    copied: list[Path] = []
    for name, inst in insts.items():
        for src in _layer_sources(inst):
            data = src.read_bytes()
            if src.name in seen:
                if seen[src.name] != data:
                    raise StitchError(
                        f"two different HDL files named {src.name} (one of them from {name}); "
                        "the stitched design keeps one flat source folder"
                    )
                continue
            seen[src.name] = data
            if gauge and inst.onnx_node.op_type == FIFO_OP and src.name.endswith(".v"):
                # FINN's FIFO template selects fifo_gauge under FINN_SIMULATION; defined for
                # the FIFO wrappers only, so that no other layer changes.
                text = data.decode()
                if f"`ifdef {GAUGE_DEFINE}" in text:
                    data = (f"`define {GAUGE_DEFINE}\n{text}`undef {GAUGE_DEFINE}\n").encode()
            dst = src_dir / src.name
            dst.write_bytes(data)
            copied.append(dst)
    apply_patches(copied, load_patches(patch_dir))
    for name in HARNESS_SOURCES:
        dst = src_dir / name
        shutil.copyfile(HDL_DIR / name, dst)
        copied.append(dst)
    return copied


def _data_files(insts: dict, sources: list[Path]) -> list[Path]:
    """The ``.dat`` files of every layer that no source names by absolute path: the HDL reads
    them relative to the simulator's folder (FINN's thresholds, ``./<layer>_threshs_*.dat``)."""
    text = "\n".join(p.read_text(errors="replace") for p in sources)
    found: dict[str, Path] = {}
    for name, inst in insts.items():
        code_dir = Path(inst.get_nodeattr("code_gen_dir_ipgen"))
        for dat in sorted(code_dir.glob("*.dat")):
            if str(dat) in text:
                continue
            if dat.name in found and found[dat.name].read_bytes() != dat.read_bytes():
                raise StitchError(f"two different parameter files named {dat.name} ({name})")
            found[dat.name] = dat
    return list(found.values())


def _wire(stream: Stream) -> str:
    return f"s{stream.index}"


def _memstream_instance(inst, wrapper: Path) -> list[str]:
    """The parameter streamer of a layer, as FINN's IPI stitching connects it: clock, reset,
    ``m_axis_0`` to the layer's ``in1_V``; no AXI-lite writes, no set selection."""
    node = inst.onnx_node
    if f"{MEMSTREAM_PORT}_TDATA" not in _top_text(inst):
        raise StitchError(f"{node.name} has a parameter streamer but no {MEMSTREAM_PORT} port")
    module = wrapper.name[: -len(".v")]
    if f"module {module}" not in wrapper.read_text():
        raise StitchError(f"{wrapper} does not define module {module}")
    width = int(inst.get_instream_width_padded(1))
    w = f"{node.name}_param"
    return [
        f"  wire [{width - 1}:0] {w}_tdata;",
        f"  wire {w}_tvalid, {w}_tready;",
        f"  {module} {node.name}_wstrm (",
        "    .ap_clk(ap_clk), .ap_clk2x(ap_clk), .ap_rst_n(ap_rst_n),",
        "    .s_axilite_AWVALID(1'b0), .s_axilite_AWPROT(3'b0), .s_axilite_AWADDR('0),",
        "    .s_axilite_WVALID(1'b0), .s_axilite_WDATA(32'b0), .s_axilite_WSTRB(4'b0),",
        "    .s_axilite_BREADY(1'b0), .s_axilite_ARVALID(1'b0), .s_axilite_ARPROT(3'b0),",
        "    .s_axilite_ARADDR('0), .s_axilite_RREADY(1'b0),",
        "    .s_axis_0_tvalid(1'b0), .s_axis_0_tdata('0),",
        f"    .m_axis_0_tready({w}_tready), .m_axis_0_tvalid({w}_tvalid),",
        f"    .m_axis_0_tdata({w}_tdata)",
        "  );",
    ]


def _top_text(inst) -> str:
    """The text of the layer's generated HDL files (to look for a port)."""
    return "\n".join(
        Path(f).read_text(errors="replace")
        for f in inst.get_rtl_file_list(abspath=True)
        if str(f).startswith(str(inst.get_nodeattr("code_gen_dir_ipgen")))
    )


def accel_top_text(
    graph: ModelWrapper, insts: dict, streams: list[Stream], fifos: list[Fifo]
) -> str:
    """The accelerator top module: layer instances, one wire bundle per stream."""
    s_in, s_out = streams[0], streams[-1]
    nf, ns = len(fifos), len(streams)
    lines = [
        "// Generated by qmlp_brevitas.rtlsim.stitch from a FINN dataflow partition.",
        "// Streams (index: tensor, writer -> reader):",
    ]
    for s in streams:
        lines.append(
            f"//   s{s.index}: {s.tensor}, {s.producer or 'input'} -> {s.consumer or 'output'}"
        )
    lines += [
        f"module {ACCEL_TOP} (",
        "  input  wire ap_clk,",
        "  input  wire ap_rst_n,",
        f"  input  wire [{s_in.width - 1}:0] s_axis_tdata,",
        "  input  wire s_axis_tvalid,",
        "  output wire s_axis_tready,",
        f"  output wire [{s_out.width - 1}:0] m_axis_tdata,",
        "  output wire m_axis_tvalid,",
        "  input  wire m_axis_tready,",
        "  // monitors for simulation: FIFO occupancy (32 bits per FIFO), stream handshakes",
        f"  output wire [{nf * COUNT_WIDTH - 1}:0] fifo_count,",
        f"  output wire [{nf * COUNT_WIDTH - 1}:0] fifo_maxcount,",
        f"  output wire [{ns - 1}:0] stream_valid,",
        f"  output wire [{ns - 1}:0] stream_ready",
        ");",
    ]
    for s in streams:
        w = _wire(s)
        lines.append(f"  wire [{s.width - 1}:0] {w}_tdata;")
        lines.append(f"  wire {w}_tvalid, {w}_tready;")
        lines.append(f"  assign stream_valid[{s.index}] = {w}_tvalid;")
        lines.append(f"  assign stream_ready[{s.index}] = {w}_tready;")
    w_in, w_out = _wire(s_in), _wire(s_out)
    lines += [
        f"  assign {w_in}_tdata = s_axis_tdata;",
        f"  assign {w_in}_tvalid = s_axis_tvalid;",
        f"  assign s_axis_tready = {w_in}_tready;",
        f"  assign m_axis_tdata = {w_out}_tdata;",
        f"  assign m_axis_tvalid = {w_out}_tvalid;",
        f"  assign {w_out}_tready = m_axis_tready;",
    ]
    by_reader = {(s.consumer, s.consumer_port): s for s in streams if s.consumer}
    by_writer = {(s.producer, s.producer_port): s for s in streams if s.producer}
    fifo_index = {f.name: f.index for f in fifos}
    for node in graph.graph.node:
        inst = insts[node.name]
        intf = inst.get_verilog_top_module_intf_names()
        conns = ["    .ap_clk(ap_clk)", "    .ap_rst_n(ap_rst_n)"]
        for port, _ in intf["s_axis"]:
            w = _wire(by_reader[(node.name, port)])
            conns += [
                f"    .{port}_TDATA({w}_tdata)",
                f"    .{port}_TVALID({w}_tvalid)",
                f"    .{port}_TREADY({w}_tready)",
            ]
        for port, _ in intf["m_axis"]:
            w = _wire(by_writer[(node.name, port)])
            conns += [
                f"    .{port}_TDATA({w}_tdata)",
                f"    .{port}_TVALID({w}_tvalid)",
                f"    .{port}_TREADY({w}_tready)",
            ]
        if node.name in fifo_index:
            k = fifo_index[node.name]
            conns += [
                f"    .count(fifo_count[{k * COUNT_WIDTH} +: {COUNT_WIDTH}])",
                f"    .maxcount(fifo_maxcount[{k * COUNT_WIDTH} +: {COUNT_WIDTH}])",
            ]
        wrapper = memstream_wrapper(inst)
        if wrapper is not None:
            lines += _memstream_instance(inst, wrapper)
            w = f"{node.name}_param"
            conns += [
                f"    .{MEMSTREAM_PORT}_TDATA({w}_tdata)",
                f"    .{MEMSTREAM_PORT}_TVALID({w}_tvalid)",
                f"    .{MEMSTREAM_PORT}_TREADY({w}_tready)",
            ]
        lines.append(f"  {finn_node.top_module(inst)} {node.name} (")
        lines.append(",\n".join(conns))
        lines.append("  );")
    lines.append("endmodule")
    return "\n".join(lines) + "\n"


def tb_top_text(design_in: int, design_out: int, nf: int, ns: int) -> str:
    """The simulation top: file-fed source and sink around the accelerator, and monitors."""
    return f"""// Generated by qmlp_brevitas.rtlsim.stitch: simulation top of {ACCEL_TOP}.
module {TB_TOP} (
  input  logic ap_clk /*verilator public_flat_rw*/,
  input  logic ap_rst_n /*verilator public_flat_rw*/,
  input  logic finish /*verilator public_flat_rw*/,
  output logic [63:0] cycle /*verilator public_flat_rw*/,
  output logic [63:0] last_move /*verilator public_flat_rw*/,
  output logic [63:0] in_words /*verilator public_flat_rw*/,
  output logic [63:0] first_in_cycle /*verilator public_flat_rw*/,
  output logic [63:0] out_words /*verilator public_flat_rw*/,
  output logic in_exhausted /*verilator public_flat_rw*/,
  output logic [{nf * COUNT_WIDTH - 1}:0] fifo_count /*verilator public_flat_rw*/,
  output logic [{nf * COUNT_WIDTH - 1}:0] fifo_maxcount /*verilator public_flat_rw*/,
  output logic [{ns - 1}:0] stream_valid /*verilator public_flat_rw*/,
  output logic [{ns - 1}:0] stream_ready /*verilator public_flat_rw*/
);
  logic [{design_in - 1}:0] in_tdata;
  logic in_tvalid, in_tready;
  logic [{design_out - 1}:0] out_tdata;
  logic out_tvalid, out_tready;

  axis_file_source #(.W({design_in}), .PLUSARG("input")) source (
    .clk(ap_clk), .rst_n(ap_rst_n), .tdata(in_tdata), .tvalid(in_tvalid), .tready(in_tready),
    .words_sent(in_words), .first_cycle(first_in_cycle), .exhausted(in_exhausted)
  );
  {ACCEL_TOP} accel (
    .ap_clk(ap_clk), .ap_rst_n(ap_rst_n),
    .s_axis_tdata(in_tdata), .s_axis_tvalid(in_tvalid), .s_axis_tready(in_tready),
    .m_axis_tdata(out_tdata), .m_axis_tvalid(out_tvalid), .m_axis_tready(out_tready),
    .fifo_count(fifo_count), .fifo_maxcount(fifo_maxcount),
    .stream_valid(stream_valid), .stream_ready(stream_ready)
  );
  axis_file_sink #(.W({design_out}), .PLUSARG("output")) sink (
    .clk(ap_clk), .rst_n(ap_rst_n), .tdata(out_tdata), .tvalid(out_tvalid), .tready(out_tready),
    .finish(finish), .words_received(out_words)
  );

  always_ff @(posedge ap_clk) begin
    if (!ap_rst_n) begin
      cycle <= 0;
      last_move <= 0;
    end else begin
      cycle <= cycle + 1;
      if (|(stream_valid & stream_ready)) last_move <= cycle;
    end
  end
endmodule
"""


def generate_design(
    model: ModelWrapper,
    out_dir: str | Path,
    fpgapart: str,
    clk_ns: float,
    depths: dict[str, int] | None = None,
    gauge: bool = False,
    patch_dir: Path | None = None,
) -> StitchedDesign:
    """Stitch the dataflow partition ``model`` into ``out_dir`` (see the module docstring).

    ``depths`` sets the FIFO depths (by FIFO name of :func:`stitch_graph`'s graph); without it
    every FIFO keeps FINN's default. With ``gauge`` the FIFOs are FINN's occupancy gauges.
    """
    out_dir = Path(out_dir).resolve()
    graph = stitch_graph(model, fpgapart)
    if depths is not None:
        set_fifo_depths(graph, depths)
    insts = {}
    for node in graph.graph.node:
        insts[node.name] = _generate(graph, node, out_dir / "hdl", fpgapart, clk_ns)
        _interfaces(insts[node.name])
    streams = _streams(graph, insts)
    fifos = []
    for k, node in enumerate(fifo_nodes(graph)):
        inst = insts[node.name]
        folded = inst.get_folded_input_shape()
        words = 1
        for dim in folded[:-1]:
            words *= int(dim)
        fifos.append(
            Fifo(
                name=node.name,
                index=k,
                depth=int(inst.get_nodeattr("depth")),
                width=int(inst.get_instream_width_padded()),
                words_per_frame=words,
                after=_neighbour(graph, node, upstream=True),
                before=_neighbour(graph, node, upstream=False),
            )
        )
    if not fifos:
        raise StitchError("the stitched graph has no FIFO: FINN's InsertFIFO did not run")
    sources = _copy_sources(insts, out_dir / "src", gauge, patch_dir)
    data_files = _data_files(insts, sources)
    accel = out_dir / "src" / f"{ACCEL_TOP}.sv"
    accel.write_text(accel_top_text(graph, insts, streams, fifos))
    tb = out_dir / "src" / f"{TB_TOP}.sv"
    tb.write_text(tb_top_text(streams[0].width, streams[-1].width, len(fifos), len(streams)))
    return StitchedDesign(
        out_dir=out_dir,
        sources=[*sources, accel, tb],
        streams=streams,
        fifos=fifos,
        layers=[n.name for n in graph.graph.node if not is_fifo(n)],
        in_width=streams[0].width,
        out_width=streams[-1].width,
        gauge=gauge,
        model=graph,
        data_files=data_files,
    )
