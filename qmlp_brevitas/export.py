"""QONNX export of a quantized model, cleaned with qonnx, with verification data beside it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import torch
from brevitas.export import export_qonnx
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.util.cleanup import cleanup_model

ONNX_NAME = "model.onnx"
INPUT_NAME = "input.npy"
EXPECTED_NAME = "expected_output.npy"


class OnnxFileError(ValueError):
    """An ONNX file that is missing, unreadable or not a valid model."""


@torch.no_grad()
def export_model(model: torch.nn.Module, example: torch.Tensor, out_dir: str | Path) -> dict:
    """Export ``model`` to ``out_dir/model.onnx`` (QONNX, cleaned) for the input ``example``.

    Writes ``input.npy`` (``example``) and ``expected_output.npy`` (the Brevitas model's output
    on it) beside the model, for verification of later compilation stages. Returns the paths.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    onnx_path = out_dir / ONNX_NAME
    tmp_path = out_dir / (ONNX_NAME + ".tmp")
    export_qonnx(model, args=example, export_path=str(tmp_path), opset_version=17, dynamo=False)
    cleaned = cleanup_model(ModelWrapper(str(tmp_path)))
    cleaned.save(str(tmp_path))
    tmp_path.replace(onnx_path)
    expected = model(example).cpu().numpy()
    np.save(out_dir / INPUT_NAME, example.cpu().numpy())
    np.save(out_dir / EXPECTED_NAME, expected)
    return {
        "onnx": str(onnx_path),
        "input": str(out_dir / INPUT_NAME),
        "expected_output": str(out_dir / EXPECTED_NAME),
    }


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
