"""Graph patterns shared by the Q-MLP transformations."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper


def linear_before(
    model: ModelWrapper, consumer_op: str
) -> Iterator[tuple[object, np.ndarray, object]]:
    """``(node, constant, consumer)`` for each ``Mul``/``Add`` by a constant whose only consumer
    is a ``consumer_op`` node. Callers change the graph only right before they stop iterating."""
    for node in model.graph.node:
        if node.op_type not in ("Mul", "Add"):
            continue
        param = model.get_initializer(node.input[1])
        consumers = model.find_consumers(node.output[0]) or []
        if param is None or len(consumers) != 1 or consumers[0].op_type != consumer_op:
            continue
        yield node, param, consumers[0]
