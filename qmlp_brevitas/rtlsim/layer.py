"""Simulate one FINN RTL layer with Verilator and compare every output word with FINN.

For a ``*_rtl`` node: FINN generates its HDL, the sources are copied into the layer's folder
and patched for Verilator (``verilator_patches/``), the simulator is built (or taken from the
cache), and the cocotb testbench streams FINN's input words through it, once at full rate (for
the cycle count) and once with random TVALID bubbles and TREADY back-pressure. Each received word
is compared with FINN's reference output of the node.
"""

from __future__ import annotations

import copy
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper

from qmlp_brevitas.rtlsim import node as finn_node
from qmlp_brevitas.rtlsim.patches import apply_patches, load_patches
from qmlp_brevitas.rtlsim.toolchain import build_simulator, run_testbench

DEFAULT_FPGAPART = "xczu7ev-ffvc1156-2-e"
DEFAULT_CLK_NS = 5.0


@dataclass(frozen=True)
class StreamMode:
    """How the testbench drives the streams: probabilities of TVALID/TREADY being high."""

    name: str
    valid_prob: float
    ready_prob: float


FULL_RATE = StreamMode("full_rate", 1.0, 1.0)
BACKPRESSURE = StreamMode("backpressure", 0.7, 0.5)


@dataclass
class ModeResult:
    """The outcome of one testbench run."""

    mode: str
    frames: int
    words_checked: int
    mismatches: int
    first_mismatches: list[dict]
    cycles: int
    cycles_per_frame: float | None
    latency_cycles: int | None
    timed_out: bool
    sim_s: float


@dataclass
class LayerResult:
    """The outcome of simulating one layer in all stream modes."""

    name: str
    op_type: str
    folding: dict[str, int]
    status: str  # "pass", "fail" or "not simulated"
    reason: str = ""
    macs: int = 0
    words_checked: int = 0
    mismatches: int = 0
    cycles_per_frame: float | None = None
    exp_cycles: int | None = None
    build_s: float = 0.0
    build_cached: bool = False
    sim_s: float = 0.0
    hdl_s: float = 0.0
    patches: list[str] = field(default_factory=list)
    modes: list[ModeResult] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)


def _mask(width: int) -> int:
    return (1 << width) - 1


def _compare(expected: list[int], got: list[int], width: int) -> tuple[int, list[dict]]:
    mask = _mask(width)
    bad = []
    for i, exp in enumerate(expected):
        value = got[i] & mask if i < len(got) else None
        if value != exp:
            bad.append(
                {"word": i, "expected": hex(exp), "got": None if value is None else hex(value)}
            )
    extra = len(got) - len(expected)
    if extra > 0:
        bad.append({"word": len(expected), "expected": None, "got": f"{extra} extra words"})
    return len(bad), bad[:5]


def _frame_cycles(
    out_cycles: list[int], per_frame: int, frames: int, first_in: int | None
) -> tuple[float | None, int | None]:
    """Steady-state cycles per frame (between frame ends) and first-frame latency."""
    ends = [
        out_cycles[(f + 1) * per_frame - 1]
        for f in range(frames)
        if len(out_cycles) >= (f + 1) * per_frame
    ]
    latency = ends[0] - first_in + 1 if ends and first_in is not None else None
    if len(ends) >= 2:
        return (ends[-1] - ends[0]) / (len(ends) - 1), latency
    return (float(latency) if latency is not None else None), latency


def run_mode(
    build,
    inst,
    streams: dict[str, list[int]],
    expected: dict[str, list[int]],
    mode: StreamMode,
    frames: int,
    run_dir: Path,
    memory_files: list[Path],
    seed: int,
) -> ModeResult:
    """Run the testbench once in ``mode`` and compare the outputs with ``expected``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    for mem in memory_files:
        shutil.copyfile(mem, run_dir / mem.name)
    intf = dict(inst.get_verilog_top_module_intf_names())
    widths = {name: inst.get_outstream_width(i) for i, (name, _) in enumerate(intf["m_axis"])}
    total_in = sum(len(w) for w in streams.values()) * frames
    exp_cycles = max(int(inst.get_exp_cycles() or 0), 1) * frames
    slack = 1.0 / min(mode.valid_prob, mode.ready_prob)
    job = {
        "clock": "ap_clk",
        "reset_n": "ap_rst_n",
        "seed": seed,
        "valid_prob": mode.valid_prob,
        "ready_prob": mode.ready_prob,
        "max_cycles": int(slack * 4 * (exp_cycles + total_in) + 10_000),
        "inputs": [
            {"port": port, "words": [format(w, "x") for w in words * frames]}
            for port, words in streams.items()
        ],
        "outputs": [
            {"port": port, "count": len(words) * frames} for port, words in expected.items()
        ],
    }
    start = time.perf_counter()
    result = run_testbench(build, job, run_dir)
    sim_s = time.perf_counter() - start
    checked = mismatches = 0
    first: list[dict] = []
    cycles_per_frame = latency = None
    first_in = min(
        (s["first_cycle"] for s in result["inputs"] if s["first_cycle"] is not None), default=None
    )
    for out in result["outputs"]:
        port = out["port"]
        got = [int(w, 16) for w in out["words"]]
        exp = expected[port] * frames
        n_bad, bad = _compare(exp, got, widths[port])
        checked += len(exp)
        mismatches += n_bad
        first += [{"port": port, **b} for b in bad]
        cpf, lat = _frame_cycles(out["cycles"], len(expected[port]), frames, first_in)
        if cpf is not None and (cycles_per_frame is None or cpf > cycles_per_frame):
            cycles_per_frame, latency = cpf, lat
    return ModeResult(
        mode=mode.name,
        frames=frames,
        words_checked=checked,
        mismatches=mismatches,
        first_mismatches=first[:5],
        cycles=result["cycles"],
        cycles_per_frame=cycles_per_frame,
        latency_cycles=latency,
        timed_out=result["timed_out"],
        sim_s=sim_s,
    )


@dataclass
class PreparedLayer:
    """A layer whose HDL FINN has generated, copied and patched for Verilator."""

    model: ModelWrapper
    inst: object
    layer_dir: Path
    sources: list[Path]
    result: LayerResult

    @property
    def hdl_dir(self) -> Path:
        """FINN's code generation folder of the layer (wrapper, parameter files)."""
        return Path(self.inst.get_nodeattr("code_gen_dir_ipgen"))


def prepare_layer(
    model: ModelWrapper,
    node_name: str,
    work_dir: Path,
    fpgapart: str = DEFAULT_FPGAPART,
    clk_ns: float = DEFAULT_CLK_NS,
    patch_dir: Path | None = None,
) -> PreparedLayer:
    """Generate the HDL of the node ``node_name`` with FINN into ``work_dir/<node>``.

    The model is not modified (the node is generated from a copy). If the layer cannot be
    simulated, the returned ``result`` has status "not simulated" and the reason.
    """
    model = copy.deepcopy(model)
    node = model.get_node_from_name(node_name)
    if node is None:
        names = [n.name for n in model.graph.node if finn_node.is_rtl_layer(n)]
        raise KeyError(f"no node named '{node_name}' in the model; its RTL layers: {names}")
    layer_dir = Path(work_dir) / node_name
    inst = finn_node.hw_op(node)
    result = LayerResult(
        name=node_name,
        op_type=node.op_type,
        folding=finn_node.folding(inst),
        status="not simulated",
        macs=finn_node.mac_count(inst),
    )
    try:
        result.exp_cycles = int(inst.get_exp_cycles())
    except Exception:
        result.exp_cycles = None
    prepared = PreparedLayer(model, inst, layer_dir, [], result)
    if not finn_node.is_rtl_layer(node):
        result.reason = f"{node.op_type} is not a FINN RTL layer"
        return prepared
    try:
        start = time.perf_counter()
        prepared.inst = finn_node.generate_hdl(model, node, layer_dir / "hdl", fpgapart, clk_ns)
        finn_node.check_interfaces(prepared.inst)
        sources = finn_node.rtl_sources(prepared.inst)
        result.hdl_s = time.perf_counter() - start
    except finn_node.LayerNotSimulable as err:
        result.reason = str(err)
        return prepared
    src_dir = layer_dir / "src"
    shutil.rmtree(src_dir, ignore_errors=True)
    src_dir.mkdir(parents=True)
    for src in sources:
        shutil.copyfile(src, src_dir / src.name)
        prepared.sources.append(src_dir / src.name)
    result.patches = apply_patches(prepared.sources, load_patches(patch_dir))
    return prepared


def run_layer(
    prepared: PreparedLayer,
    inputs: dict[str, np.ndarray],
    reference: dict[str, np.ndarray],
    cache_dir: Path,
    modes: tuple[StreamMode, ...] = (FULL_RATE, BACKPRESSURE),
    frames: int = 2,
    seed: int = 1,
) -> LayerResult:
    """Build (or reuse) the simulator of a prepared layer and check it in every mode.

    ``inputs`` maps the node's dynamic input tensor names to values (parameters come from the
    model's initializers and FINN's parameter files in the HDL folder); ``reference`` maps its
    output tensor names to FINN's output of the node on those inputs.
    """
    result = prepared.result
    if result.reason:
        return result
    inst, node = prepared.inst, prepared.inst.onnx_node
    try:
        streams = finn_node.finn_input_streams(inst, prepared.model, inputs)
        ports = [name for name, _ in inst.get_verilog_top_module_intf_names()["s_axis"]]
        unfed = [p for p in ports if p not in streams]
        if unfed:
            raise finn_node.LayerNotSimulable(f"FINN feeds no data to input port(s) {unfed}")
        expected = {}
        for i, out_name in enumerate(node.output):
            if out_name not in reference:
                raise finn_node.LayerNotSimulable(f"no reference value for output '{out_name}'")
            expected[f"out{i}_V"] = finn_node.expected_output_words(inst, reference[out_name], i)
    except finn_node.LayerNotSimulable as err:
        result.reason = str(err)
        return result
    build = build_simulator(prepared.sources, finn_node.top_module(inst), Path(cache_dir))
    result.build_s, result.build_cached = build.build_s, build.cached
    memory_files = sorted(prepared.hdl_dir.glob("*.dat"))
    result.modes, result.words_checked, result.mismatches, result.sim_s = [], 0, 0, 0.0
    for mode in modes:
        res = run_mode(
            build,
            inst,
            streams,
            expected,
            mode,
            frames,
            prepared.layer_dir / f"run_{mode.name}",
            memory_files,
            seed,
        )
        result.modes.append(res)
        result.words_checked += res.words_checked
        result.mismatches += res.mismatches + (1 if res.timed_out and res.mismatches == 0 else 0)
        result.sim_s += res.sim_s
        if mode.name == FULL_RATE.name:
            result.cycles_per_frame = res.cycles_per_frame
    result.status = "pass" if result.mismatches == 0 else "fail"
    return result


def simulate_layer(
    model: ModelWrapper,
    node_name: str,
    inputs: dict[str, np.ndarray],
    reference: dict[str, np.ndarray],
    work_dir: Path,
    cache_dir: Path,
    fpgapart: str = DEFAULT_FPGAPART,
    clk_ns: float = DEFAULT_CLK_NS,
    modes: tuple[StreamMode, ...] = (FULL_RATE, BACKPRESSURE),
    frames: int = 2,
    seed: int = 1,
    patch_dir: Path | None = None,
) -> LayerResult:
    """Generate, build and simulate the ``*_rtl`` node ``node_name``; see the two steps."""
    prepared = prepare_layer(model, node_name, work_dir, fpgapart, clk_ns, patch_dir)
    return run_layer(prepared, inputs, reference, cache_dir, modes, frames, seed)
