"""ResMLP's token-mixing scale and bias absorbed, exactly, into per-element thresholds.

ResMLP mixes tokens with one linear layer per channel group (paper Sec. 4.4 with ResMLP's
token mixer). After streamlining, group ``g`` is an integer ``MatMul`` across tokens whose
output (layout ``[1, Cg, T]``: channels of the group, then tokens) carries the weight scale and
the bias of each output *token* (``Mul``/``Add`` by ``[T]`` constants); it is transposed back,
the groups are concatenated along channels, and the residual's shared quantizer follows, with
the LayerScale of each *channel* folded into its per-channel thresholds (and a ``Mul`` by the
sign of any negative LayerScale in front of it). No quantizer lies between the two: a token
factor and a channel factor meet on every element, and neither per-channel nor per-token
thresholds can absorb their product, so FINN is left with a float ``Concat``.

A quantizer is a staircase of its input. Seen from the integer ``MatMul`` output ``x`` of one
element, the whole chain (token scale and bias, transpose, concat, channel factors, thresholds)
is ``q = bias + #{k : f(x) >= theta_k}`` with ``f`` the element's float32 arithmetic, monotone
in ``x``. Where ``f`` increases, ``f(x) >= theta_k`` holds exactly for ``x >= T_k``, with
``T_k`` the smallest integer in the accumulator's range where it holds (found by bisection
evaluating the graph's own float32 operations, so the result is bit-exact to the graph, not
to real arithmetic). So each group becomes ``Reshape`` to one vector of ``Cg*T`` elements
(``[1, 1, Cg*T]``), a ``MultiThreshold`` with those integer thresholds per element, ``Reshape``
back, and the transpose and concat then move integers. Where ``f`` decreases (a negative
LayerScale), the count decreases in ``x`` and no threshold layer computes it: the graph is left
unchanged (``QuantRecipe.layer_scale="non_negative"`` trains a model without that case).
"""

from __future__ import annotations

import numpy as np
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.basic import get_by_name

MOVEMENT = ("Transpose", "Reshape", "Split", "Concat", "Flatten")


def _const_chain_back(model: ModelWrapper, tensor: str) -> tuple[list, str]:
    """Constant ``Mul``/``Add`` nodes producing ``tensor`` (graph order) and their input."""
    chain = []
    while True:
        node = model.find_producer(tensor)
        if node is None or node.op_type not in ("Mul", "Add"):
            break
        if model.get_initializer(node.input[1]) is None:
            break
        if len(model.find_consumers(node.output[0]) or []) != 1:
            break
        chain.insert(0, node)
        tensor = node.input[0]
    return chain, tensor


def integer_bounds(model: ModelWrapper, tensor: str) -> tuple[int, int] | None:
    """Bounds of an integer tensor, through data movement if its own type is not annotated."""
    dt = model.get_tensor_datatype(tensor)
    if dt.is_integer():
        return int(dt.min()), int(dt.max())
    node = model.find_producer(tensor)
    if node is None or node.op_type not in MOVEMENT:
        return None
    inputs = [i for i in node.input if model.get_initializer(i) is None]
    if node.op_type in ("Reshape", "Split"):
        inputs = inputs[:1]
    bounds = [integer_bounds(model, i) for i in inputs]
    if not bounds or any(b is None for b in bounds):
        return None
    return min(b[0] for b in bounds), max(b[1] for b in bounds)


def matmul_column_bounds(model: ModelWrapper, node) -> tuple[np.ndarray, np.ndarray] | None:
    """Per output column, the range of an integer ``MatMul`` with constant integer weights."""
    if node is None or node.op_type != "MatMul":
        return None
    weights = model.get_initializer(node.input[1])
    bounds = integer_bounds(model, node.input[0])
    if weights is None or bounds is None or weights.ndim != 2:
        return None
    if not np.array_equal(weights, np.round(weights)):
        return None
    lo_in, hi_in = bounds
    w = weights.astype(np.int64)
    lo = np.minimum(w * lo_in, w * hi_in).sum(axis=0)
    hi = np.maximum(w * lo_in, w * hi_in).sum(axis=0)
    return lo, hi


def _element_constant(value: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return np.broadcast_to(np.asarray(value, dtype=np.float32), shape)


class _Group:
    """One concat input: MatMul -> const ops -> Transpose."""

    def __init__(self, matmul, pre: list, transpose, shape: tuple[int, int]):
        self.matmul, self.pre, self.transpose = matmul, pre, transpose
        self.channels, self.tokens = shape


def _group(model: ModelWrapper, tensor: str) -> _Group | None:
    transpose = model.find_producer(tensor)
    if transpose is None or transpose.op_type != "Transpose":
        return None
    perm = get_by_name(transpose.attribute, "perm")
    if perm is None or list(perm.ints) != [0, 2, 1]:
        return None
    if len(model.find_consumers(transpose.output[0]) or []) != 1:
        return None
    pre, start = _const_chain_back(model, transpose.input[0])
    matmul = model.find_producer(start)
    shape = model.get_tensor_shape(start)
    if matmul is None or matmul.op_type != "MatMul" or shape is None or len(shape) != 3:
        return None
    if len(model.find_consumers(start) or []) != 1:
        return None
    return _Group(matmul, pre, transpose, (shape[1], shape[2]))


def _evaluate(ops: list[tuple[str, np.ndarray]], x: np.ndarray) -> np.ndarray:
    """The graph's float32 arithmetic, op by op, on integers ``x`` (elements on axis 0)."""
    v = x.astype(np.float32)
    for op, const in ops:
        c = const.reshape(const.shape + (1,) * (v.ndim - const.ndim))
        v = (v * c) if op == "Mul" else (v + c)
        v = v.astype(np.float32)
    return v


def element_thresholds(
    ops: list[tuple[str, np.ndarray]],
    thresholds: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
) -> np.ndarray | None:
    """Integer thresholds ``T[e, k]``: for every integer ``x`` in ``[lo[e], hi[e]]``,
    ``x >= T[e, k]`` exactly when ``f_e(x) >= thresholds[e, k]``, where ``f_e`` applies
    ``ops`` (per-element constants) in float32. None if some ``f_e`` decreases."""
    lo = lo.astype(np.int64)
    hi = hi.astype(np.int64)
    scale = np.ones(len(lo), dtype=np.float64)
    for op, const in ops:
        if op == "Mul":
            scale = scale * const.astype(np.float64)
    if np.any(scale < 0):
        return None
    k = thresholds.shape[1]
    left = np.repeat(lo[:, None], k, axis=1)  # f(left - 1) < theta (or left == lo)
    right = np.repeat(hi[:, None] + 1, k, axis=1)  # f(right) >= theta (or right == hi + 1)
    while np.any(left < right):
        mid = (left + right) // 2
        ok = _evaluate(ops, mid) >= thresholds
        right = np.where(ok & (left < right), mid, right)
        left = np.where(~ok & (left < right), mid + 1, left)
    return left.astype(np.float32)


class AbsorbTokenLinearIntoElementThresholds(Transformation):
    """Per-token factors of grouped token mixing absorbed into per-element thresholds."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        for node in model.graph.node:
            if node.op_type == "MultiThreshold" and self._rewrite(model, node):
                model = model.transform(InferShapes())
                return model.transform(InferDataTypes()), True
        return model, False

    def _rewrite(self, model: ModelWrapper, mt) -> bool:
        thresholds = model.get_initializer(mt.input[1])
        if thresholds is None:
            return False
        if self._absorb_late_ops(model, mt, thresholds):
            return True
        post, mover_out = _const_chain_back(model, mt.input[0])
        mover = model.find_producer(mover_out)
        if mover is None or len(model.find_consumers(mover_out) or []) != 1:
            return False
        if mover.op_type == "Concat":
            axis = get_by_name(mover.attribute, "axis")
            if axis is None or axis.i not in (-1, 2):
                return False
            sources = list(mover.input)
        elif mover.op_type == "Transpose":
            sources = [mover_out]
        else:
            return False
        if any(model.get_initializer(s) is not None for s in sources):
            return False
        groups = [_group(model, s) for s in sources]
        if any(g is None for g in groups) or not post and not any(g.pre for g in groups):
            return False
        shape = model.get_tensor_shape(mover_out)
        if shape is None or len(shape) != 3:
            return False
        tokens, channels = shape[1], shape[2]
        if thresholds.shape[0] not in (1, channels):
            return False
        new_thresholds = []
        offset = 0
        for g in groups:
            found = self._group_thresholds(model, g, post, thresholds, offset, tokens, channels)
            if found is None:
                return False
            new_thresholds.append(found)
            offset += g.channels
        if offset != channels:
            return False
        self._replace(model, mt, post, mover, groups, new_thresholds)
        return True

    @staticmethod
    def _absorb_late_ops(model: ModelWrapper, mt, thresholds) -> bool:
        """Constant ops that streamlining moved in front of a per-element threshold after the
        rewrite (a zero point's bias, moved past the ``MatMul``): absorbed the same way."""
        flat = model.find_producer(mt.input[0])
        if flat is None or flat.op_type != "Reshape":
            return False
        shape = model.get_tensor_shape(mt.input[0])
        if shape is None or len(shape) != 3 or shape[1] != 1 or thresholds.shape[0] != shape[2]:
            return False
        ops_nodes, start = _const_chain_back(model, flat.input[0])
        if not ops_nodes or len(model.find_consumers(flat.input[0]) or []) != 1:
            return False
        matmul = model.find_producer(start)
        start_shape = model.get_tensor_shape(start)
        bounds = matmul_column_bounds(model, matmul)
        if bounds is None or start_shape is None or len(start_shape) != 3:
            return False
        if len(model.find_consumers(start) or []) != 1:
            return False
        n = int(np.prod(start_shape))
        ops = [
            (node.op_type, _element_constant(model.get_initializer(node.input[1]), start_shape))
            for node in ops_nodes
        ]
        ops = [(op, np.ascontiguousarray(c).reshape(n)) for op, c in ops]
        lo, hi = (np.tile(b, start_shape[1]) for b in bounds)
        found = element_thresholds(ops, thresholds.astype(np.float32), lo, hi)
        if found is None:
            return False
        flat.input[0] = start
        for node in ops_nodes:
            model.graph.node.remove(node)
        model.set_initializer(mt.input[1], found)
        return True

    @staticmethod
    def _group_thresholds(model, g: _Group, post, thresholds, offset, tokens, channels):
        if g.tokens != tokens:
            return None
        bounds = matmul_column_bounds(model, g.matmul)
        if bounds is None:
            return None
        cg, n = g.channels, g.channels * tokens
        ops = []
        for node in g.pre:  # layout [1, Cg, T]
            const = _element_constant(model.get_initializer(node.input[1]), (1, cg, tokens))
            ops.append((node.op_type, const.reshape(n)))
        for node in post:  # layout [1, T, C]: this group's channels, back to [1, Cg, T]
            const = _element_constant(model.get_initializer(node.input[1]), (1, tokens, channels))
            part = const[:, :, offset : offset + cg].transpose(0, 2, 1)
            ops.append((node.op_type, np.ascontiguousarray(part).reshape(n)))
        per_channel = np.broadcast_to(thresholds, (channels, thresholds.shape[1]))
        theta = np.repeat(per_channel[offset : offset + cg], tokens, axis=0).astype(np.float32)
        lo = np.tile(bounds[0], cg)
        hi = np.tile(bounds[1], cg)
        return element_thresholds(ops, theta, lo, hi)

    @staticmethod
    def _replace(model: ModelWrapper, mt, post, mover, groups, new_thresholds) -> None:
        graph = model.graph
        attrs = {
            a.name: helper.get_attribute_value(a) for a in mt.attribute if a.name != "data_layout"
        }
        out_dt = model.get_tensor_datatype(mt.output[0])
        for k, (g, thr) in enumerate(zip(groups, new_thresholds, strict=True)):
            x = g.matmul.output[0]
            n = g.channels * g.tokens
            flat, counted, back = (model.make_new_valueinfo_name() for _ in range(3))
            flat_shape, back_shape = (model.make_new_valueinfo_name() for _ in range(2))
            thr_name = model.make_new_valueinfo_name()
            # [1, 1, n], not [1, n]: FINN's RemoveCNVtoFCFlatten drops a 2-D reshape between
            # two HW layers, and the thresholds would then see [1, Cg, T]
            model.set_initializer(flat_shape, np.array([1, 1, n], dtype=np.int64))
            model.set_initializer(back_shape, np.array([1, g.channels, g.tokens], dtype=np.int64))
            model.set_initializer(thr_name, thr)
            index = list(graph.node).index(g.transpose)
            new_nodes = [
                helper.make_node("Reshape", [x, flat_shape], [flat], name=f"{mt.name}_flat{k}"),
                helper.make_node(
                    "MultiThreshold",
                    [flat, thr_name],
                    [counted],
                    domain=mt.domain,
                    name=f"{mt.name}_{k}",
                    data_layout="NWC",
                    **attrs,
                ),
                helper.make_node(
                    "Reshape", [counted, back_shape], [back], name=f"{mt.name}_back{k}"
                ),
            ]
            for j, new in enumerate(new_nodes):
                graph.node.insert(index + j, new)
            g.transpose.input[0] = back
            for node in g.pre:
                graph.node.remove(node)
            model.set_tensor_datatype(counted, out_dt)
            model.set_tensor_datatype(back, out_dt)
        for node in post:
            graph.node.remove(node)
        mover.output[0] = mt.output[0]
        graph.node.remove(mt)
