"""FINN's side of a layer simulation: its HDL, its input streams and its reference output words.

Everything here is FINN's own code: the HDL comes from the node's ``code_generation_ipgen``
(what FINN's ``PrepareIP`` calls for an RTL layer: finn-rtllib templates filled by FINN), the
input words are exactly those FINN's own node-level rtlsim feeds to the design (its
``execute_node`` in ``rtlsim`` mode, stopped where it would hand them to the simulator), and the
expected output words are FINN's reference output of the node packed with FINN's data packing.
"""

from __future__ import annotations

import shutil
from contextlib import ExitStack
from pathlib import Path
from unittest import mock

import numpy as np
from onnx import NodeProto
from qonnx.core.modelwrapper import ModelWrapper

from qmlp_brevitas.finn.domains import QMLP_RTL_DOMAIN, RTL_DOMAIN

RTL_DOMAINS = (RTL_DOMAIN, QMLP_RTL_DOMAIN)  # FINN's RTL layers and the project's

FOLDING_ATTRS = ("PE", "SIMD", "TH", "pumpedCompute")


class LayerNotSimulable(RuntimeError):
    """A layer this check cannot simulate; the message says why."""


def ensure_finn_settings() -> None:
    """Initialise finn-plus's settings for use as a library (no FINN CLI boot)."""
    from finn.util import settings

    try:
        settings.get_settings()
    except Exception:
        settings.initialize_dummy_settings()


def is_rtl_layer(node: NodeProto) -> bool:
    """True for a node specialised to an RTL variant (``*_rtl`` in FINN's or the project's rtl
    domain)."""
    return node.domain in RTL_DOMAINS


def hw_op(node: NodeProto):
    """FINN's custom-op instance for ``node``."""
    from finn.util.basic import getHWCustomOp

    ensure_finn_settings()
    return getHWCustomOp(node)


def folding(inst) -> dict[str, int]:
    """The folding attributes (PE, SIMD, ...) the node has."""
    out = {}
    for name in FOLDING_ATTRS:
        try:
            value = inst.get_nodeattr(name)
        except (AttributeError, KeyError, Exception):
            continue
        if name in ("TH", "pumpedCompute") and value in (0, 1):
            continue
        out[name] = int(value)
    return out


def mac_count(inst) -> int:
    """Multiply-accumulates per frame, from FINN's ``get_op_and_param_counts``."""
    try:
        counts = inst.get_op_and_param_counts()
    except Exception:
        return 0
    return int(sum(v for k, v in counts.items() if k.startswith("op_mac")))


def generate_hdl(model: ModelWrapper, node: NodeProto, out_dir: Path, fpgapart: str, clk_ns: float):
    """Run FINN's HDL generation for ``node`` into ``out_dir``; return its custom-op instance."""
    inst = hw_op(node)
    out_dir = Path(out_dir)
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    inst.set_nodeattr("code_gen_dir_ipgen", str(out_dir))
    try:
        inst.code_generation_ipgen(model, fpgapart, clk_ns)
    except Exception as err:
        raise LayerNotSimulable(f"FINN's HDL generation failed: {err}") from err
    return inst


def top_module(inst) -> str:
    """Name of the generated top-level Verilog module."""
    return inst.get_nodeattr("gen_top_module") or inst.get_verilog_top_module_name()


def rtl_sources(inst) -> list[Path]:
    """FINN's list of HDL files for the node (generated wrapper plus finn-rtllib sources)."""
    files = [Path(f) for f in inst.get_rtl_file_list(abspath=True)]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise LayerNotSimulable(f"HDL files listed by FINN are missing: {missing}")
    names = [f.name for f in files]
    if len(set(names)) != len(names):
        raise LayerNotSimulable(f"HDL files with the same name cannot be copied flat: {names}")
    return files


def check_interfaces(inst) -> dict:
    """FINN's interface description of the top module; refuse what the testbench cannot drive."""
    intf = inst.get_verilog_top_module_intf_names()
    if intf.get("clk2x"):
        raise LayerNotSimulable("double-pumped (clk2x) layers are not driven by this testbench")
    if intf.get("aximm"):
        raise LayerNotSimulable("layers with an AXI-MM master (external weights) are not driven")
    if intf.get("clk") != ["ap_clk"] or intf.get("rst") != ["ap_rst_n"]:
        raise LayerNotSimulable(f"unexpected clock/reset ports {intf.get('clk')}/{intf.get('rst')}")
    return intf


class _StreamsCaptured(Exception):
    """Raised inside FINN's execute_node once its input streams are built."""


def finn_input_streams(
    inst, model: ModelWrapper, inputs: dict[str, np.ndarray]
) -> dict[str, list[int]]:
    """The words FINN's own rtlsim would feed to each input port (``in0_V``, ``in1_V``, ...).

    Runs the node's ``execute_node`` in ``rtlsim`` mode with FINN's simulator calls replaced,
    so that the packing, weight streams and repetitions are exactly FINN's.
    """
    import finn.xsi as finnxsi

    node = inst.onnx_node
    context: dict[str, np.ndarray] = {}
    for name in node.input:
        value = inputs.get(name)
        if value is None:
            value = model.get_initializer(name)
        if value is None:
            raise LayerNotSimulable(f"no value for input tensor '{name}' of {node.name}")
        context[name] = np.asarray(value, dtype=np.float32)
    for name in node.output:
        context[name] = np.zeros(inst.get_normal_output_shape(), dtype=np.float32)

    captured: dict[str, list[int]] = {}

    def capture(sim, io_dict, *args, **kwargs):
        captured.update({k: [int(w) for w in v] for k, v in io_dict["inputs"].items()})
        raise _StreamsCaptured

    def no_sim(*args, **kwargs):
        return None

    inst.set_nodeattr("exec_mode", "rtlsim")
    with ExitStack() as stack:
        stack.enter_context(mock.patch.object(inst, "get_rtlsim", no_sim))
        stack.enter_context(mock.patch.object(inst, "rtlsim_multi_io", capture))
        for name in ("reset_rtlsim", "close_rtlsim"):
            # set in the module's namespace: finn.xsi's lazy __getattr__ needs Vivado
            stack.enter_context(mock.patch.dict(vars(finnxsi), {name: no_sim}))
        try:
            inst.execute_node(context, model.graph)
        except _StreamsCaptured:
            pass
        except Exception as err:
            raise LayerNotSimulable(f"FINN's rtlsim input preparation failed: {err}") from err
        else:
            raise LayerNotSimulable("FINN's execute_node did not reach its rtlsim call")
    return {f"{key}_V": words for key, words in captured.items()}


def expected_output_words(inst, reference: np.ndarray, index: int = 0) -> list[int]:
    """FINN's reference output of the node packed into output-stream words, as FINN packs them."""
    from finn.util.data_packing import npy_to_rtlsim_input

    folded = np.asarray(reference, dtype=np.float32).reshape(inst.get_folded_output_shape(index))
    odt = inst.get_output_datatype(index)
    return [int(w) for w in npy_to_rtlsim_input(folded, odt, inst.get_outstream_width(index))]


def decode_output_words(inst, words: list[int], index: int = 0) -> np.ndarray:
    """Unpack output-stream words into values with FINN's data packing."""
    from finn.util.data_packing import rtlsim_output_to_npy

    odt = inst.get_output_datatype(index)
    return rtlsim_output_to_npy(
        words,
        None,
        odt,
        inst.get_folded_output_shape(index),
        inst.get_outstream_width(index),
        odt.bitwidth(),
    )
