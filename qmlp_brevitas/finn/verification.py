"""The verification data of a FINN build: an input, and the QONNX graph's output on it.

Every stage of a build is executed on the input and compared with the expected output. They
come from, in this order:

* ``given``: an input the user passes (``--input X.npy``); the expected output is the QONNX
  graph's output on it, executed with qonnx;
* ``export``: the export's ``input.npy`` and ``expected_output.npy`` beside the ONNX file
  (what :func:`qmlp_brevitas.export.export_model` writes: the Brevitas model's output);
* ``generated``: random values on the levels of the model's input quantizer (seeded), and the
  QONNX graph's output on them. The input quantizer is the first ``Quant``/``BipolarQuant``
  node behind the graph input, reached through shape-only nodes (Reshape, Flatten, Transpose,
  ...) and scalar ``Mul``/``Div``/``Add``/``Sub``, which are inverted; a graph input with an
  integer FINN data type annotation uses that type's range instead. Values on the levels lie
  where the quantizer does not round, so no stage can disagree by rounding them differently.

Any ONNX file works: a client's Brevitas export with nothing beside it gets a generated input.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper

from ..errors import QMLPError
from ..export import run_qonnx
from ..layout import BuildFolder, RunFolder
from ..qdq import integer_range

GIVEN, EXPORT, GENERATED = "given", "export", "generated"
SHAPE_ONLY = ("Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Identity")
MAX_LEVELS = 2**16


class VerificationInputError(QMLPError, ValueError):
    """No verification input can be found or made for a model; the message says what to pass."""


@dataclass(frozen=True)
class VerificationData:
    """The input and expected output of a build, where they came from, and in words."""

    input: np.ndarray
    expected_output: np.ndarray
    source: str  # GIVEN, EXPORT or GENERATED
    note: str

    def save(self, folder: BuildFolder) -> None:
        folder.verify_input.parent.mkdir(parents=True, exist_ok=True)
        np.save(folder.verify_input, self.input)
        np.save(folder.verify_expected_output, self.expected_output)


def _input_shape(model: ModelWrapper) -> tuple[int, ...]:
    return tuple(model.get_tensor_shape(model.graph.input[0].name))


def _fit(x: np.ndarray, model: ModelWrapper, origin: str) -> np.ndarray:
    shape = _input_shape(model)
    if x.size != int(np.prod(shape)):
        raise VerificationInputError(
            f"{origin} has shape {x.shape}, but the model's input takes {shape}; pass --input with "
            "an array of that shape"
        )
    return x.reshape(shape).astype(np.float32)


def verification_data(
    model: ModelWrapper, model_path: str | Path, given: str | Path | None = None, seed: int = 0
) -> VerificationData:
    """The verification data of ``model`` (read from ``model_path``); see the module doc."""
    qonnx_note = "expected output: the QONNX graph executed with qonnx"
    if given is not None:
        given = Path(given)
        if not given.is_file():
            raise VerificationInputError(f"--input {given} does not exist")
        x = _fit(np.load(given), model, f"--input {given}")
        return VerificationData(x, run_qonnx(model, x), GIVEN, f"--input {given}; {qonnx_note}")
    beside = RunFolder(Path(model_path).parent)
    if beside.input.is_file() and beside.expected_output.is_file():
        x = _fit(np.load(beside.input), model, str(beside.input))
        note = f"{beside.input} and {beside.expected_output.name} of the export"
        return VerificationData(x, np.load(beside.expected_output), EXPORT, note)
    levels, where = input_levels(model)
    x = np.random.default_rng(seed).choice(levels, size=_input_shape(model)).astype(np.float32)
    note = (
        f"generated: random values (seed {seed}) on the {len(levels)} levels of {where} in "
        f"[{levels.min():.4g}, {levels.max():.4g}]; {qonnx_note}"
    )
    return VerificationData(x, run_qonnx(model, x), GENERATED, note)


def input_levels(model: ModelWrapper) -> tuple[np.ndarray, str]:
    """The input values the model's input quantizer represents exactly, and what it is."""
    name = model.graph.input[0].name
    dtype = model.get_tensor_datatype(name)
    if dtype.is_integer() and dtype.get_num_possible_values() <= MAX_LEVELS:
        levels = [v for v in range(int(dtype.min()), int(dtype.max()) + 1) if dtype.allowed(v)]
        return np.array(levels, dtype=np.float32), f"the input's data type {dtype.name}"
    scale, shift, tensor = 1.0, 0.0, name  # the tensor reached is scale * input + shift
    while True:
        consumers = model.find_consumers(tensor)
        if len(consumers) != 1:
            break
        node = consumers[0]
        if node.op_type in ("Quant", "BipolarQuant") and node.input[0] == tensor:
            levels = _quantizer_levels(model, node)
            return ((levels - shift) / scale).astype(np.float32), f"input quantizer {node.name}"
        if node.op_type in SHAPE_ONLY and node.input[0] == tensor:
            tensor = node.output[0]
            continue
        step = _scalar_affine(model, node, tensor)
        if step is None:
            break
        a, b = step
        scale, shift, tensor = a * scale, a * shift + b, node.output[0]
    raise VerificationInputError(
        "no input.npy and expected_output.npy beside the model, and no input quantizer to make "
        f"an input from (the graph input '{name}' does not reach a Quant node through reshapes "
        "and scalar scale/shift); pass --input X.npy with an input for the model"
    )


def _scalar_affine(model: ModelWrapper, node, tensor: str) -> tuple[float, float] | None:
    """``(a, b)`` with ``node``'s output ``a * tensor + b``, for a scalar Mul/Div/Add/Sub."""
    if node.op_type not in ("Mul", "Div", "Add", "Sub") or len(node.input) != 2:
        return None
    other = node.input[1] if node.input[0] == tensor else node.input[0]
    value = model.get_initializer(other)
    if value is None or value.size != 1:
        return None
    c, first = float(value.item()), node.input[0] == tensor
    if node.op_type == "Mul":
        return (c, 0.0) if c != 0 else None
    if node.op_type == "Add":
        return 1.0, c
    if node.op_type == "Sub":
        return (1.0, -c) if first else (-1.0, c)
    return (1.0 / c, 0.0) if first and c != 0 else None  # Div: only tensor / c is affine


def _quantizer_levels(model: ModelWrapper, node) -> np.ndarray:
    """The values a per-tensor ``Quant``/``BipolarQuant`` node outputs."""
    from qonnx.custom_op.registry import getCustomOp

    scale = model.get_initializer(node.input[1])
    if scale is None or scale.size != 1:
        raise VerificationInputError(
            f"the input quantizer {node.name} has no single constant scale; pass --input X.npy"
        )
    if node.op_type == "BipolarQuant":
        return float(scale.item()) * np.array([-1.0, 1.0])
    zero_point, bits = (model.get_initializer(i) for i in node.input[2:4])
    if zero_point is None or bits is None or zero_point.size != 1:
        raise VerificationInputError(
            f"the input quantizer {node.name} has no constant zero point and bit width; pass "
            "--input X.npy"
        )
    op = getCustomOp(node)
    qmin, qmax = integer_range(
        int(bits.item()), bool(op.get_nodeattr("signed")), bool(op.get_nodeattr("narrow"))
    )
    return float(scale.item()) * (np.arange(qmin, qmax + 1) - float(zero_point.item()))
