"""Graph patterns shared by the Q-MLP transformations."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp


def pending_threshold_bias(model: ModelWrapper, node) -> bool:
    """Whether ``node`` is an ``Add`` behind a signed-typed ``MultiThreshold`` without out_bias.

    FINN's QONNX conversion turns a signed quantizer into a ``MultiThreshold`` that counts from 0
    but is annotated with the signed output type (``INT8`` for counts 0..255), followed by an
    ``Add`` of the bias; the annotation is true only once streamlining absorbs that ``Add`` into
    the threshold's ``out_bias``.
    """
    producer = model.find_producer(node.input[0])
    if node.op_type != "Add" or producer is None or producer.op_type != "MultiThreshold":
        return False
    inst = getCustomOp(producer)
    signed = DataType[inst.get_nodeattr("out_dtype")].signed()
    return signed and float(inst.get_nodeattr("out_bias")) == 0.0


def linear_before(
    model: ModelWrapper, consumer_op: str
) -> Iterator[tuple[object, np.ndarray, object]]:
    """``(node, constant, consumer)`` for each ``Mul``/``Add`` by a constant whose only consumer
    is a ``consumer_op`` node. Callers change the graph only right before they stop iterating.

    A :func:`pending_threshold_bias` is left out: moved away from its ``MultiThreshold``, it
    would leave an integer stream whose type is wrong (and every type inferred behind it).
    """
    for node in model.graph.node:
        if node.op_type not in ("Mul", "Add"):
            continue
        param = model.get_initializer(node.input[1])
        consumers = model.find_consumers(node.output[0]) or []
        if param is None or len(consumers) != 1 or consumers[0].op_type != consumer_op:
            continue
        if pending_threshold_bias(model, node):
            continue
        yield node, param, consumers[0]
