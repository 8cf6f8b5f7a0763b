"""QONNX export of a quantized model, cleaned with qonnx, with verification data beside it.

A model with integer LayerNorms (:class:`~qmlp_brevitas.int_layernorm.IntLayerNorm`) exports
each as the QONNX op ``IntLayerNorm``; the verification then also compares, on the verification
example, the integers every such node computes in qonnx with those of the Brevitas module
(``int_layernorm`` in ``export.json``: layers, values compared, mismatches).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import torch
from brevitas.export import export_qonnx
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.util.cleanup import cleanup_model

from .int_layernorm import IntLayerNorm

ONNX_NAME = "model.onnx"
INPUT_NAME = "input.npy"
EXPECTED_NAME = "expected_output.npy"


class OnnxFileError(ValueError):
    """An ONNX file that is missing, unreadable or not a valid model."""


# Brevitas and the QONNX graph compute the same integer-grid values in float32 in a different
# order (torch vs onnxruntime kernels): logits differ by ~1e-6. A quantizer input that lies within
# float32 rounding error of a rounding boundary (a LayerNorm output, typically) can still round
# to neighbouring levels in the two, which moves the logits by far more than this tolerance.
VERIFY_ATOL = 1e-4


def int_layernorm_check(
    module: torch.nn.Module, graph: ModelWrapper, examples: torch.Tensor, index: int
) -> dict | None:
    """Integers of every IntLayerNorm, Brevitas vs qonnx, on ``examples[index]``.

    The Brevitas integers are those the modules recorded in the last forward pass (on all
    ``examples``, with ``record_integers`` on); the modules and the graph's ``IntLayerNorm``
    nodes are matched in execution order. A module that computed no integers (float path) is
    not counted, so ``modules`` falls short of ``layers``.
    """
    from qonnx.core.onnx_exec import execute_onnx

    norms = [
        m for m in module.modules() if isinstance(m, IntLayerNorm) and m.last_integers is not None
    ]
    nodes = [n for n in graph.graph.node if n.op_type == "IntLayerNorm"]
    if not norms and not nodes:
        return None
    x = examples[index : index + 1].cpu().numpy()
    context = execute_onnx(graph, {graph.graph.input[0].name: x}, return_full_exec_context=True)
    values = mismatches = 0
    for norm, node in zip(norms, nodes, strict=False):
        ours = norm.last_integers[index : index + 1].numpy()
        theirs = context[node.output[0]].reshape(ours.shape)
        values += ours.size
        mismatches += int((ours != theirs).sum())
    return {"layers": len(nodes), "modules": len(norms), "values": values, "mismatches": mismatches}


def _integers_agree(check: dict | None) -> bool:
    if check is None:
        return True
    return check["layers"] == check["modules"] and check["mismatches"] == 0


def run_qonnx(model: ModelWrapper, x: np.ndarray) -> np.ndarray:
    """Execute a QONNX model with qonnx's ``execute_onnx`` on one input array."""
    from qonnx.core.onnx_exec import execute_onnx

    name_in, name_out = model.graph.input[0].name, model.graph.output[0].name
    return execute_onnx(model, {name_in: x})[name_out]


@torch.no_grad()
def export_model(model: torch.nn.Module, examples: torch.Tensor, out_dir: str | Path) -> dict:
    """Export ``model`` to ``out_dir/model.onnx`` (QONNX, cleaned) and write verification data.

    ``examples`` is a batch of candidate inputs. The verification example (``input.npy``, with
    the Brevitas model's output on it as ``expected_output.npy``) is the first candidate on which
    the QONNX graph reproduces Brevitas within :data:`VERIFY_ATOL`, so that later compilation
    stages are checked on an input whose integer result is not ambiguous in float32 (see
    ``VERIFY_ATOL``). Candidates passed over are recorded in ``export.json``; if none agrees, the
    first is used and the mismatch is recorded there. Returns the paths and that record.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    onnx_path = out_dir / ONNX_NAME
    tmp_path = out_dir / (ONNX_NAME + ".tmp")
    export_qonnx(
        model, args=examples[:1], export_path=str(tmp_path), opset_version=17, dynamo=False
    )
    cleaned = cleanup_model(ModelWrapper(str(tmp_path)))
    cleaned.save(str(tmp_path))
    tmp_path.replace(onnx_path)

    norms = [m for m in model.modules() if isinstance(m, IntLayerNorm)]
    for norm in norms:
        norm.record_integers = True
    try:
        expected_all = model(examples).cpu().numpy()
    finally:
        for norm in norms:
            norm.record_integers = False
    rejected, chosen = [], None
    for i in range(len(examples)):
        x = examples[i : i + 1].cpu().numpy()
        diff = float(np.abs(run_qonnx(cleaned, x) - expected_all[i : i + 1]).max())
        if diff <= VERIFY_ATOL:
            chosen = (i, diff)
            break
        rejected.append({"index": i, "max_abs_diff": diff})
    index, diff = chosen if chosen else (0, rejected[0]["max_abs_diff"])
    np.save(out_dir / INPUT_NAME, examples[index : index + 1].cpu().numpy())
    np.save(out_dir / EXPECTED_NAME, expected_all[index : index + 1])
    integers = int_layernorm_check(model, cleaned, examples, index)
    record = {
        "example_index": index,
        "qonnx_vs_brevitas_max_abs_diff": diff,
        "atol": VERIFY_ATOL,
        "agrees": chosen is not None and _integers_agree(integers),
        "passed_over": rejected,
    }
    if integers is not None:
        record["int_layernorm"] = integers
    write_json(out_dir / "export.json", record)
    return {
        "onnx": str(onnx_path),
        "input": str(out_dir / INPUT_NAME),
        "expected_output": str(out_dir / EXPECTED_NAME),
        "verification": record,
    }


def first_examples(dataset, count: int = 8) -> torch.Tensor:
    """The first ``count`` images of a dataset as one batch: candidates for verification."""
    return torch.stack([dataset[i][0] for i in range(min(count, len(dataset)))])


def load_onnx(path: str | Path) -> ModelWrapper:
    """Load and check an ONNX file, with a clear error when it is missing or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise OnnxFileError(
            f"ONNX file {path} does not exist; export one with scripts/export_qonnx.py "
            "or train with scripts/train_brevitas.py"
        )
    try:
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto)
    except Exception as err:  # onnx raises DecodeError, ValidationError, ... for a bad file
        raise OnnxFileError(
            f"{path} is not a valid ONNX model ({type(err).__name__}: {err}); "
            "re-export it with scripts/export_qonnx.py"
        ) from err
    return ModelWrapper(proto)


def quant_node_bit_widths(model: ModelWrapper) -> dict[str, int]:
    """The bit width of every QONNX ``Quant`` node, by node name."""
    widths = {}
    for node in model.graph.node:
        if node.op_type == "Quant":
            widths[node.name] = int(model.get_initializer(node.input[3]).item())
    return widths


def write_json(path: str | Path, data) -> None:
    """Write JSON atomically (temporary file, then rename)."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
