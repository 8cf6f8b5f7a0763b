"""RTL check of a FINN build folder: every ``*_rtl`` layer simulated against FINN's execution.

For the build's final specialised model, FINN's ``execute_onnx`` on the verification input gives
each layer's real input and FINN's output of that layer (:mod:`.reference`). Each RTL layer is
then generated, built and streamed with :mod:`.layer`. The result is written to
``rtlsim.json`` in the build folder, with a coverage section: which layers were simulated, which
were not and why, and the share of the model's multiply-accumulates checked in RTL.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper

from qmlp_brevitas.errors import CheckFailedError
from qmlp_brevitas.export import load_onnx
from qmlp_brevitas.finn.domains import is_hw_layer
from qmlp_brevitas.finn.generic import PartitionError, execute_in_parent
from qmlp_brevitas.layout import BuildFolder, BuildFolderError
from qmlp_brevitas.rtlsim import node as finn_node
from qmlp_brevitas.rtlsim.layer import (
    BACKPRESSURE,
    DEFAULT_CLK_NS,
    DEFAULT_FPGAPART,
    FULL_RATE,
    LayerResult,
    prepare_layer,
    run_layer,
)
from qmlp_brevitas.rtlsim.reference import execution_context
from qmlp_brevitas.rtlsim.toolchain import ToolchainError

HLS_REASON = "HLS variant: building it needs Vitis HLS, not available here"


class NothingToCheckError(CheckFailedError):
    """A model without FINN RTL layers: an RTL check of it would check nothing."""


def load_model(path: str | Path) -> ModelWrapper:
    """A specialised model given with ``--model``; a clear error for a missing or corrupt file
    and for a model without RTL layers."""
    model = load_onnx(path)
    if not any(finn_node.is_rtl_layer(n) for n in model.graph.node):
        ops = sorted({n.op_type for n in model.graph.node})
        raise NothingToCheckError(
            f"{path} has no FINN RTL layers (*_rtl; its ops: {', '.join(ops)}), so there is "
            "nothing to simulate; pass the folded, specialised model of a FINN build "
            f"({BuildFolder('BUILD').final_model})"
        )
    return model


def build_settings(folder: BuildFolder) -> tuple[str, float]:
    """FPGA part and clock period of the build in ``folder`` (defaults without a summary)."""
    if not folder.summary.is_file():
        return DEFAULT_FPGAPART, DEFAULT_CLK_NS
    summary = folder.read_summary()
    return summary["fpga_part"] or DEFAULT_FPGAPART, float(summary["clock_ns"] or DEFAULT_CLK_NS)


def fit_input(model: ModelWrapper, value: np.ndarray) -> dict[str, np.ndarray]:
    """The verification input as the model's input, transposed NCHW->NHWC if that fits.

    The values must be of the input's datatype: a float image is not the input of an
    accelerator whose input quantizer runs on the host (:func:`partition_input` makes that one).
    """
    name = model.graph.input[0].name
    shape = tuple(model.get_tensor_shape(name))
    dtype = model.get_tensor_datatype(name)
    value = np.asarray(value, dtype=np.float32)
    if not np.all(dtype.allowed(value)):
        raise BuildFolderError(
            f"the verification input's values are not of the datatype {dtype.name} of the "
            f"model input '{name}'; pass --input with the accelerator's own input"
        )
    if value.shape == shape:
        return {name: value}
    if value.ndim == 4 and value.transpose(0, 2, 3, 1).shape == shape:
        return {name: value.transpose(0, 2, 3, 1).copy()}
    raise BuildFolderError(
        f"the verification input has shape {value.shape}, the model's input '{name}' expects "
        f"{shape}; pass --input with an input of that shape"
    )


def partition_input(
    build_dir: Path, model: ModelWrapper, value: np.ndarray, work_dir: Path
) -> dict[str, np.ndarray]:
    """The input of a dataflow partition model, from FINN's parent model on ``value``.

    As FINN's own verification of later build stages does, the parent model
    (``intermediate_models/dataflow_parent.onnx``) is executed with its
    StreamingDataflowPartition node pointing at (a Python-executable copy of) ``model``.
    """
    parent_path = BuildFolder(build_dir).dataflow_parent
    if not parent_path.is_file():
        raise BuildFolderError(
            f"the model's input does not match the verification input and {parent_path} "
            "does not exist; pass --input with the model's own input"
        )
    parent = ModelWrapper(str(parent_path))
    child_path = work_dir / "reference_partition.onnx"
    try:
        context = execute_in_parent(parent, model, fit_input(parent, value), child_path)
    except PartitionError as err:
        raise BuildFolderError(f"{parent_path}: {err}") from err
    sdp = next(n for n in parent.graph.node if n.op_type == "StreamingDataflowPartition")
    return {model.graph.input[0].name: context[sdp.input[0]]}


def layer_coverage(model: ModelWrapper, results: dict[str, LayerResult]) -> dict:
    """Which HW layers were simulated, which not and why, and the MAC share checked."""
    total = checked = 0
    simulated, not_simulated = [], []
    for node in model.graph.node:
        if not is_hw_layer(node.domain):
            continue
        res = results.get(node.name)
        macs = res.macs if res is not None else finn_node.mac_count(finn_node.hw_op(node))
        total += macs
        if res is not None and res.status in ("pass", "fail"):
            simulated.append(node.name)
            checked += macs
        else:
            if res is not None:
                reason = res.reason
            elif node.op_type.endswith("_hls"):
                reason = HLS_REASON
            elif finn_node.is_rtl_layer(node):
                reason = "not selected (--layer)"
            else:
                reason = "not specialised to an RTL variant"
            not_simulated.append(
                {"layer": node.name, "op": node.op_type, "macs": macs, "reason": reason}
            )
    return {
        "simulated": simulated,
        "not_simulated": not_simulated,
        "macs_total": total,
        "macs_checked": checked,
        "mac_share_checked": checked / total if total else None,
    }


def check_build(
    build_dir: str | Path,
    model_path: str | Path | None = None,
    input_path: str | Path | None = None,
    cache_dir: str | Path | None = None,
    fpgapart: str | None = None,
    clk_ns: float | None = None,
    frames: int = 2,
    backpressure: bool = True,
    layers: list[str] | None = None,
) -> dict:
    """Simulate every ``*_rtl`` layer of the build in ``build_dir``; write ``rtlsim.json``.

    Outputs go under ``build_dir/rtlsim`` (generated HDL per layer, runs, compiled simulators
    in ``cache/`` unless ``cache_dir`` is given). Returns the report that is written.
    """
    start = time.perf_counter()
    # Absolute paths: the simulator runs in its own folder and reads the job files from there.
    build_dir = Path(build_dir).resolve()
    if not build_dir.is_dir():
        raise BuildFolderError(f"build folder {build_dir} does not exist; run fpga/build.py")
    folder = BuildFolder(build_dir)
    model_path = Path(model_path).resolve() if model_path else folder.final_model_path()
    model = load_model(model_path)
    input_path = Path(input_path).resolve() if input_path else folder.verification_input_path()
    if not input_path.is_file():
        raise BuildFolderError(f"verification input {input_path} does not exist")
    part, clock = build_settings(folder)
    fpgapart, clk_ns = fpgapart or part, float(clk_ns or clock)
    finn_node.ensure_finn_settings()
    raw_input = np.load(input_path)
    try:
        model_input = fit_input(model, raw_input)
    except BuildFolderError:
        model_input = partition_input(build_dir, model, raw_input, folder.rtlsim_dir)
    context = execution_context(model, model_input)
    rtl_nodes = [n for n in model.graph.node if finn_node.is_rtl_layer(n)]
    if layers:
        unknown = sorted(set(layers) - {n.name for n in rtl_nodes})
        if unknown:
            names = [n.name for n in rtl_nodes]
            raise BuildFolderError(f"no RTL layers named {unknown} in {model_path}; it has {names}")
        rtl_nodes = [n for n in rtl_nodes if n.name in layers]
    out_root = folder.rtlsim_dir
    cache = Path(cache_dir).resolve() if cache_dir else out_root / "cache"
    modes = (FULL_RATE, BACKPRESSURE) if backpressure else (FULL_RATE,)
    results: dict[str, LayerResult] = {}
    for node in rtl_nodes:
        prepared = prepare_layer(model, node.name, out_root / "layers", fpgapart, clk_ns)
        inputs = {name: context[name] for name in node.input if model.get_initializer(name) is None}
        reference = {name: context[name] for name in node.output}
        try:
            results[node.name] = run_layer(prepared, inputs, reference, cache, modes, frames)
        except ToolchainError as err:
            prepared.result.status = "error"
            prepared.result.reason = str(err).splitlines()[0]
            results[node.name] = prepared.result
        print(_row(results[node.name]), flush=True)
    report = {
        "build_dir": str(build_dir),
        "model": str(model_path),
        "input": str(input_path),
        "fpgapart": fpgapart,
        "clk_ns": clk_ns,
        "frames": frames,
        "modes": [m.name for m in modes],
        "layers": [r.to_dict() for r in results.values()],
        "coverage": layer_coverage(model, results),
        "mismatches": sum(r.mismatches for r in results.values()),
        "errors": [r.name for r in results.values() if r.status == "error"],
        "time_s": time.perf_counter() - start,
    }
    folder.rtlsim_report.write_text(json.dumps(report, indent=1))
    return report


HEADER = (
    f"{'layer':<24} {'op':<20} {'folding':<14} {'words':>7} {'mism':>5} "
    f"{'cyc/frame':>10} {'estimate':>9} {'build s':>8} {'sim s':>7}  status"
)


def _row(res: LayerResult) -> str:
    fold = " ".join(f"{k}{v}" for k, v in res.folding.items()) or "-"
    cpf = f"{res.cycles_per_frame:.0f}" if res.cycles_per_frame is not None else "-"
    est = str(res.exp_cycles) if res.exp_cycles is not None else "-"
    build = "cached" if res.build_cached else f"{res.build_s:.1f}"
    status = res.status + (f" ({res.reason})" if res.reason else "")
    return (
        f"{res.name:<24} {res.op_type:<20} {fold:<14} {res.words_checked:>7} "
        f"{res.mismatches:>5} {cpf:>10} {est:>9} {build:>8} {res.sim_s:>7.1f}  {status}"
    )


def format_report(report: dict, table: bool = True) -> str:
    """The table of layers (unless ``table`` is False) and the coverage lines."""
    rows = [HEADER, "-" * len(HEADER)] if table else []
    if table:
        rows += [_row(LayerResult(**{**r, "modes": []})) for r in report["layers"]]
    cov = report["coverage"]
    share = cov["mac_share_checked"]
    share_txt = f"{100 * share:.1f}%" if share is not None else "n/a (no MAC layers)"
    rows.append("")
    rows.append(
        f"coverage: {len(cov['simulated'])} layers simulated in RTL, "
        f"{len(cov['not_simulated'])} not; MACs checked in RTL: {cov['macs_checked']} of "
        f"{cov['macs_total']} ({share_txt})"
    )
    for item in cov["not_simulated"]:
        rows.append(f"  not simulated: {item['layer']} ({item['op']}): {item['reason']}")
    rows.append(
        f"mismatches: {report['mismatches']}; errors: {len(report['errors'])}; "
        f"time {report['time_s']:.1f} s; written to "
        f"{BuildFolder(report['build_dir']).rtlsim_report}"
    )
    return "\n".join(rows)
