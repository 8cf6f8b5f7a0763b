"""The whole accelerator of a FINN build simulated end to end: test images in, predictions out.

:func:`simulate_whole` stitches the build's final dataflow partition (:mod:`.stitch`), sizes its
FIFOs from simulated occupancy (:mod:`.fifo_sizing`) unless depths are given, and streams N test
images through it in Verilator (:mod:`.harness`). Every frame is checked twice:

* against **FINN**: the accelerator's output words must equal the integers of FINN's Python
  execution of the same final graph on the same input (``exact_outputs``);
* against **Brevitas**: the host finishes the accelerator's integers into logits (the parent
  model's de-quantization) and the predicted class must be Brevitas' (``prediction_agreement``).

The accelerator's input is the image quantized by the Brevitas model's own input quantizer
(its integers), laid out by the host nodes of FINN's parent model; the share of frames on which
that equals the QONNX graph's input quantizer (the host ``MultiThreshold``) is reported too.
Cycles per frame (steady state: mean interval between frame ends, the first frame left out),
frames per second at the build's clock and the first frame's latency are measured from the
cycle of every output word, beside FINN's estimates. The report is ``rtlsim_whole.json`` in the
build folder.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper

from qmlp_brevitas.errors import QMLPError
from qmlp_brevitas.finn.partition import PartitionedModel
from qmlp_brevitas.layout import BuildFolder, BuildFolderError
from qmlp_brevitas.rtlsim import node as finn_node
from qmlp_brevitas.rtlsim.fifo_sizing import (
    GAUGE_FRAMES,
    FifoSizing,
    depths_from_occupancy,
    gauge,
    grow_full_fifos,
)
from qmlp_brevitas.rtlsim.harness import FULL_RATE, DesignRun, Drive, run_design
from qmlp_brevitas.rtlsim.layer import DEFAULT_CLK_NS, DEFAULT_FPGAPART
from qmlp_brevitas.rtlsim.stitch import generate_design, stitch_graph

MAX_ROUNDS = 4


class WholeSimError(QMLPError, RuntimeError):
    """The whole-design simulation could not run or check anything; the message says why."""


@dataclass
class Reference:
    """The frames to simulate: images, labels, Brevitas' logits and input integers."""

    images: np.ndarray  # (N, C, H, W) float, as the data pipeline gives them
    labels: np.ndarray | None
    logits: np.ndarray  # (N, classes), Brevitas
    input_ints: np.ndarray | None  # (N, C, H, W), Brevitas' input quantizer; None: unknown

    def __len__(self) -> int:
        return len(self.images)


def input_quantizer(model):
    """The model's input quantizer: the first Brevitas activation quantizer it registers
    (``stem.input_quant`` of a Q-MLP model, ``input_quant`` of the plain MLP)."""
    from brevitas.nn import QuantIdentity

    for module in model.modules():
        if isinstance(module, QuantIdentity):
            return module
    return None


def brevitas_reference(model, images, labels=None) -> Reference:
    """Brevitas' logits and input-quantizer integers for ``images`` (a float tensor)."""
    import torch

    model = model.eval()
    with torch.no_grad():
        logits = model(images).numpy()
        ints = None
        quant = input_quantizer(model)
        if quant is not None:
            keep = quant.return_quant_tensor
            quant.return_quant_tensor = True
            try:
                ints = quant(images).int().numpy()
            finally:
                quant.return_quant_tensor = keep
    return Reference(
        images=images.numpy(),
        labels=None if labels is None else np.asarray(labels),
        logits=logits,
        input_ints=ints,
    )


def run_reference(run_dir: str | Path, frames: int, data_dir: str | Path | None = None):
    """The first ``frames`` test images of a training run's dataset and Brevitas' outputs on
    them, from the run's ``checkpoint.pt``."""
    import torch

    from qmlp_brevitas.checkpoint import load_checkpoint
    from qmlp_brevitas.data import build_dataset
    from qmlp_brevitas.train import TrainConfig, build_model

    state = load_checkpoint(Path(run_dir) / "checkpoint.pt")
    cfg = TrainConfig.from_dict(state["config"])
    model = build_model(cfg)
    model.load_state_dict(state["model"])
    test_set = build_dataset(cfg.data, data_dir or cfg.data_dir, train=False)
    if frames > len(test_set):
        raise WholeSimError(f"--frames {frames}: the test set has only {len(test_set)} images")
    items = [test_set[i] for i in range(frames)]
    images = torch.stack([img for img, _ in items])
    labels = [int(label) for _, label in items]
    return brevitas_reference(model, images, labels)


def accelerator_inputs(parent: PartitionedModel, ref: Reference) -> tuple[list, float | None]:
    """What the host feeds the accelerator per frame (from Brevitas' input integers when the
    host has an input quantizer) and the share of frames on which that equals the QONNX
    graph's input quantizer (None if there is nothing to compare)."""
    feeds, same = [], 0
    use_brevitas = ref.input_ints is not None and parent.input_quantizer_output() is not None
    for k in range(len(ref)):
        qonnx_feed = parent.accelerator_input(ref.images[k : k + 1])
        if use_brevitas:
            feed = parent.layout_quantized(ref.input_ints[k : k + 1])
            same += int(np.array_equal(feed, qonnx_feed))
        else:
            feed = qonnx_feed
        feeds.append(feed)
    return feeds, (same / len(ref) if use_brevitas else None)


def finn_outputs(model: ModelWrapper, feeds: list, progress: bool = True) -> list[np.ndarray]:
    """FINN's Python execution of the final graph (every layer's HW op) on each feed."""
    from finn.core.onnx_exec import execute_onnx
    from tqdm import tqdm

    from qmlp_brevitas.finn.generic import generic_hw_copy, register_hw_ops

    finn_node.ensure_finn_settings()
    register_hw_ops()
    core = generic_hw_copy(model)
    iname, oname = core.graph.input[0].name, core.graph.output[0].name
    shape = core.get_tensor_shape(iname)
    outs = []
    for feed in tqdm(feeds, desc="FINN Python execution", disable=not progress, unit="frame"):
        outs.append(execute_onnx(core, {iname: feed.reshape(shape)})[oname])
    return outs


def pack_input(inst, feed: np.ndarray) -> list[int]:
    """One frame as the words of the design's input stream (FINN's packing)."""
    from finn.util.data_packing import npy_to_rtlsim_input

    dt = inst.get_input_datatype()
    feed = np.asarray(feed)
    if not (np.all(feed == np.round(feed)) and feed.min() >= dt.min() and feed.max() <= dt.max()):
        raise WholeSimError(
            f"the accelerator input holds values outside its type {dt.name} "
            f"(range {feed.min()}..{feed.max()})"
        )
    folded = np.asarray(feed, dtype=np.float32).reshape(inst.get_folded_input_shape())
    return [int(w) for w in npy_to_rtlsim_input(folded, dt, inst.get_instream_width())]


def unpack_output(inst, words: list[int]) -> np.ndarray:
    """One frame of output words as values (FINN's unpacking)."""
    return finn_node.decode_output_words(inst, words)


def frame_timing(run: DesignRun, words_per_frame: int, frames: int) -> dict:
    """Cycle of each frame's last output word; steady-state cycles per frame; latency."""
    ends = [
        run.out_cycles[(f + 1) * words_per_frame - 1]
        for f in range(frames)
        if len(run.out_cycles) >= (f + 1) * words_per_frame
    ]
    latency = ends[0] - run.first_in_cycle + 1 if ends and run.first_in_cycle is not None else None
    if len(ends) >= 3:
        cpf = (ends[-1] - ends[1]) / (len(ends) - 2)
    elif len(ends) == 2:
        cpf = float(ends[1] - ends[0])
    else:
        cpf = None
    return {"frame_end_cycles": ends, "cycles_per_frame": cpf, "latency_cycles": latency}


def _load_depths(path: Path) -> dict[str, int]:
    data = json.loads(Path(path).read_text())
    depths = data.get("depths", data)
    if not isinstance(depths, dict) or not all(isinstance(v, int) for v in depths.values()):
        raise WholeSimError(f"{path} holds no FIFO depths (a 'depths' map of FIFO name -> int)")
    return depths


def fifo_cost(design, fpgapart: str) -> dict:
    """FINN's resource estimate of the design's FIFOs at their depths (FINN's FIFO model)."""
    totals = {"LUT": 0.0, "BRAM_18K": 0.0, "URAM": 0.0}
    for node in design.model.graph.node:
        if node.name not in design.fifo_depths:
            continue
        inst = finn_node.hw_op(node)
        totals["LUT"] += float(inst.lut_estimation(fpgapart) or 0)
        totals["BRAM_18K"] += float(inst.bram_estimation(fpgapart) or 0)
        totals["URAM"] += float(inst.uram_estimation(fpgapart) or 0)
    return totals


def simulate_whole(
    build_dir: str | Path,
    ref: Reference,
    fifo_depths: str | Path | None = None,
    resize: bool = False,
    cache_dir: str | Path | None = None,
    drive: Drive = FULL_RATE,
    stall_cycles: int | None = None,
    progress: bool = True,
) -> dict:
    """Simulate the build in ``build_dir`` on the frames of ``ref``; write and return the report.

    FIFO depths: from ``fifo_depths`` (a JSON map), else those of an earlier run in
    ``BUILD/rtlsim_whole/fifo_depths.json`` (unless ``resize``), else sized here.
    """
    start = time.perf_counter()
    build_dir = Path(build_dir).resolve()
    if not build_dir.is_dir():
        raise BuildFolderError(f"build folder {build_dir} does not exist; run fpga/build.py")
    if len(ref) == 0:
        raise WholeSimError("no frames to simulate: a run that checks 0 frames checks nothing")
    folder = BuildFolder(build_dir)
    summary = folder.read_summary()
    fpgapart = summary.get("fpga_part") or DEFAULT_FPGAPART
    clk_ns = float(summary.get("clock_ns") or DEFAULT_CLK_NS)
    work = folder.rtlsim_whole_dir
    cache = Path(cache_dir).resolve() if cache_dir else work / "cache"
    finn_node.ensure_finn_settings()
    final_model = folder.final_model_path()
    model = ModelWrapper(str(final_model))
    parent = PartitionedModel.from_build(build_dir)

    feeds, input_agreement = accelerator_inputs(parent, ref)
    expected = finn_outputs(model, feeds, progress)
    graph = stitch_graph(model, fpgapart)
    first, last = finn_node.hw_op(graph.graph.node[0]), finn_node.hw_op(graph.graph.node[-1])
    frame_words = [pack_input(first, feed) for feed in feeds]
    out_per_frame = len(finn_node.expected_output_words(last, expected[0]))
    est_cycles = int(summary.get("max_cycles") or 0)
    stall = stall_cycles or max(100_000, 2 * est_cycles)

    sizing, source = None, "given"
    depths_path = folder.fifo_depths
    if fifo_depths is not None:
        depths = _load_depths(Path(fifo_depths))
    elif depths_path.is_file() and not resize:
        depths, source = _load_depths(depths_path), f"earlier run ({depths_path})"
    else:
        gauge_design = generate_design(model, work / "gauge", fpgapart, clk_ns, gauge=True)
        period = est_cycles or 1
        occupancy, grun = gauge(
            gauge_design,
            frame_words[:GAUGE_FRAMES],
            out_per_frame,
            period,
            cache,
            work / "run_gauge",
            stall_cycles=stall,
            progress="FIFO sizing (gauge)" if progress else None,
        )
        depths = depths_from_occupancy(occupancy)
        sizing = FifoSizing(
            depths=dict(depths),
            max_occupancy=occupancy,
            gauge_frames=GAUGE_FRAMES,
            frame_period=period,
            gauge_cycles=grun.cycles,
            gauge_sim_s=grun.sim_s,
        )
        source = "sized from simulated occupancy"

    words = [w for frame in frame_words for w in frame]
    n_frames = len(frame_words)
    budget = 4 * (n_frames + 2) * max(est_cycles, 1000) + 200_000
    rounds = []
    while True:
        design = generate_design(model, work / "design", fpgapart, clk_ns, depths=depths)
        run = run_design(
            design,
            words,
            out_per_frame * n_frames,
            cache,
            work / "run",
            drive=drive,
            frame_words=len(frame_words[0]),
            max_cycles=budget,
            stall_cycles=stall,
            progress="Verilator" if progress else None,
            out_per_frame=out_per_frame,
        )
        rounds.append({"status": run.status, "cycles": run.cycles, "diagnosis": run.diagnosis})
        if run.status != "deadlock" or sizing is None or len(rounds) >= MAX_ROUNDS:
            break
        grown = grow_full_fifos(depths, design, run, sizing.grown)
        if not grown:
            break
        sizing.depths = dict(depths)
    if sizing is not None:
        work.mkdir(parents=True, exist_ok=True)
        sizing.save(depths_path)

    report = _compare(run, design, last, expected, out_per_frame, parent, ref, n_frames)
    timing = frame_timing(run, out_per_frame, n_frames)
    cpf = timing["cycles_per_frame"]
    est_fps = summary.get("estimated_fps")
    fps = 1e9 / (clk_ns * cpf) if cpf else None
    report.update(
        {
            "build_dir": str(build_dir),
            "model": str(final_model),
            "fpgapart": fpgapart,
            "clk_ns": clk_ns,
            "status": run.status,
            "deadlock": run.diagnosis if run.status != "done" else None,
            "input_quantization_agreement": input_agreement,
            "cycles_per_frame": cpf,
            "cycles_per_frame_finn_estimate": est_cycles or None,
            "fps": fps,
            "fps_finn_estimate": est_fps,
            "fps_vs_estimate": fps / est_fps if fps and est_fps else None,
            "latency_cycles": timing["latency_cycles"],
            "latency_cycles_finn_estimate": summary.get("critical_path_cycles"),
            "frame_end_cycles": timing["frame_end_cycles"],
            "fifo_depths": {
                f.name: {
                    "depth": f.depth,
                    "max_occupancy": run.fifo_maxcount[f.index],
                    "gauge_occupancy": sizing.max_occupancy.get(f.name) if sizing else None,
                    "after": f.after,
                    "before": f.before,
                    "width": f.width,
                    "words_per_frame": f.words_per_frame,
                }
                for f in design.fifos
            },
            "fifo_depths_source": source,
            "fifo_sizing_rounds": rounds,
            "fifo_cost_finn_estimate": fifo_cost(design, fpgapart),
            "layers": len(design.layers),
            "fifos": len(design.fifos),
            "drive": {"valid_pct": drive.valid_pct, "ready_pct": drive.ready_pct},
            "simulated_cycles": run.cycles,
            "sim_seconds": run.sim_s,
            "sim_frames_per_second": n_frames / run.sim_s if run.sim_s else None,
            "sim_cycles_per_second": run.cycles / run.sim_s if run.sim_s else None,
            "verilator_build_seconds": run.build_s,
            "verilator_build_cached": run.build_cached,
            "total_seconds": time.perf_counter() - start,
        }
    )
    folder.rtlsim_whole_report.write_text(json.dumps(report, indent=1) + "\n")
    return report


def _compare(
    run: DesignRun,
    design,
    last,
    expected: list[np.ndarray],
    out_per_frame: int,
    parent: PartitionedModel,
    ref: Reference,
    n_frames: int,
) -> dict:
    """Per frame: the output words against FINN's integers, the predicted class against
    Brevitas'. Frames the design did not finish count as wrong."""
    mask = (1 << design.out_width) - 1
    exact = agree = 0
    max_diff = 0.0
    hw_pred = []
    first_bad = None
    for f in range(n_frames):
        words = run.out_words[f * out_per_frame : (f + 1) * out_per_frame]
        if len(words) < out_per_frame:
            hw_pred.append(None)
            continue
        values = unpack_output(last, [w & mask for w in words])
        exp = np.asarray(expected[f]).reshape(values.shape)
        if np.array_equal(values, exp):
            exact += 1
        elif first_bad is None:
            first_bad = f
        logits = parent.host_output(values).reshape(-1)
        pred = int(np.argmax(logits))
        hw_pred.append(pred)
        agree += int(pred == int(np.argmax(ref.logits[f])))
        max_diff = max(max_diff, float(np.abs(logits - ref.logits[f].reshape(-1)).max()))
    done = sum(p is not None for p in hw_pred)
    labels = ref.labels
    return {
        "frames": n_frames,
        "frames_completed": done,
        "prediction_agreement": agree / n_frames,
        "exact_outputs": exact / n_frames,
        "first_inexact_frame": first_bad,
        "logits_max_abs_diff_vs_brevitas": max_diff,
        "accuracy_hardware": (
            sum(int(p == y) for p, y in zip(hw_pred, labels, strict=True)) / n_frames
            if labels is not None
            else None
        ),
        "accuracy_brevitas": (
            float(np.mean(np.argmax(ref.logits, axis=1) == labels)) if labels is not None else None
        ),
    }
