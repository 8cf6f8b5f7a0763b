"""QONNX export of a quantized model, cleaned with qonnx, with verification data beside it.

A model with integer LayerNorms (:class:`~qmlp_brevitas.int_layernorm.IntLayerNorm`) exports
each as the QONNX op ``IntLayerNorm``; the verification then also compares, on the verification
example, the integers every such node computes in qonnx with those of the Brevitas module
(``int_layernorm`` in ``export.json``: layers, values compared, mismatches).

Optionally also the standard-ONNX QDQ model (:mod:`qmlp_brevitas.qdq`) that onnxruntime runs,
checked against Brevitas' predictions.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import onnx
import torch
from brevitas.export import export_qonnx
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.util.cleanup import cleanup_model

from .errors import QMLPError, RunFolderError
from .int_layernorm import IntLayerNorm
from .layout import RunFolder


class OnnxFileError(QMLPError, ValueError):
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
def export_model(
    model: torch.nn.Module, examples: torch.Tensor, out_dir: str | Path, qdq: bool = False
) -> dict:
    """Export ``model`` to ``out_dir/model.onnx`` (QONNX, cleaned) and write verification data.

    ``examples`` is a batch of candidate inputs. The verification example (``input.npy``, with
    the Brevitas model's output on it as ``expected_output.npy``) is the first candidate on which
    the QONNX graph reproduces Brevitas within :data:`VERIFY_ATOL`, so that later compilation
    stages are checked on an input whose integer result is not ambiguous in float32 (see
    ``VERIFY_ATOL``). Candidates passed over are recorded in ``export.json``; if none agrees, the
    first is used and the mismatch is recorded there. With ``qdq``, the QDQ model is written as
    ``model_qdq.onnx`` and checked on ``examples`` (:func:`export_qdq_checked`). Returns the paths
    and that record.
    """
    run = RunFolder(out_dir)
    run.root.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    onnx_path = run.model
    tmp_path = onnx_path.with_name(onnx_path.name + ".tmp")
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
    np.save(run.input, examples[index : index + 1].cpu().numpy())
    np.save(run.expected_output, expected_all[index : index + 1])
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
    paths = {
        "onnx": str(onnx_path),
        "input": str(run.input),
        "expected_output": str(run.expected_output),
        "verification": record,
    }
    if qdq:
        paths["qdq"] = record["qdq"] = export_qdq_checked(model, run, [examples])
    write_json(run.export_record, record)
    return paths


@torch.no_grad()
def export_qdq_checked(
    model: torch.nn.Module, run: RunFolder, batches: Iterable[torch.Tensor]
) -> dict:
    """Write the QDQ model of ``run``'s QONNX export and compare onnxruntime with Brevitas.

    Returns the file and, over the images of ``batches`` (run one at a time in onnxruntime: the
    export has batch 1), how many predictions (arg max) agree, how many outputs agree within
    :data:`VERIFY_ATOL` (see there why not all) and the largest difference.
    """
    from .qdq import export_qdq, onnxruntime_session

    export_qdq(run.model, run.qdq_model)
    session = onnxruntime_session(run.qdq_model)
    name = session.get_inputs()[0].name
    images = agree = close = 0
    worst = 0.0
    for batch in batches:
        expected = model.eval()(batch).cpu().numpy()
        for x, y_ref in zip(batch.cpu().numpy(), expected, strict=True):
            y = session.run(None, {name: x[None]})[0][0]
            diff = float(np.abs(y - y_ref).max())
            images += 1
            agree += int(y.argmax() == y_ref.argmax())
            close += int(diff <= VERIFY_ATOL)
            worst = max(worst, diff)
    return {
        "onnx": str(run.qdq_model),
        "images": images,
        "same_prediction": agree,
        "within_atol": close,  # outputs within VERIFY_ATOL of Brevitas'
        "atol": VERIFY_ATOL,
        "max_abs_diff": worst,
    }


def first_examples(dataset, count: int = 8) -> torch.Tensor:
    """The first ``count`` images of a dataset as one batch: candidates for verification."""
    return torch.stack([dataset[i][0] for i in range(min(count, len(dataset)))])


def load_onnx(path: str | Path) -> ModelWrapper:
    """Load and check an ONNX file, with a clear error when it is missing or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise OnnxFileError(
            f"ONNX file {path} does not exist; export one with qmlp-export or train with qmlp-train"
        )
    try:
        proto = onnx.load(str(path))
        graph = proto.graph
        if not (graph.node and graph.input and graph.output):
            raise ValueError("no graph with nodes, an input and an output")
        # onnx's checker needs an opset import for every domain; FINN's graphs do not declare
        # theirs (finn.custom_op.fpgadataflow ...), so those are checked for structure only.
        declared = {o.domain for o in proto.opset_import} | {"", "ai.onnx"}
        if {n.domain for n in graph.node} <= declared:
            onnx.checker.check_model(proto)
    except Exception as err:  # onnx raises DecodeError, ValidationError, ... for a bad file
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise OnnxFileError(
            f"{path} is not a valid ONNX model ({type(err).__name__}: {first}); "
            "export it again (qmlp-export, or Brevitas' export_qonnx)"
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
    """Write JSON atomically (temporary file, then rename): a failed write (a full disk) leaves
    the previous file intact and says so."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
        tmp.replace(path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        kept = "the previous one is intact" if path.is_file() else "nothing was written"
        raise RunFolderError(f"could not write {path} ({err.strerror or err}); {kept}") from err
