"""qonnx's graph look-ups in constant time, with the same results, for the length of a build.

qonnx's ``ModelWrapper`` finds a tensor's initializer, value info, data-type annotation and
producer by scanning the graph's protobuf lists (``get_by_name``, ``get_initializer``,
``get_tensor_shape``, ``find_producer``): linear in the graph size per look-up, so a pass that
looks up every tensor is quadratic. On the default Q-MLP graph (about 250 nodes, 700 tensors)
those scans were most of the build's time (profiled: ``find_producer``, ``get_by_name`` and
``get_initializer`` alone took over half of it, mostly from ``SortGraph``, ``InferDataTypes``,
the tensor renaming and ``GiveUniqueParameterTensors`` that run after every transformation).

:func:`fast_graph_lookups` installs, inside a ``with`` block, drop-in versions that remember
where a name was found (its position in its protobuf list) and check, on the next look-up, that
the element at that position still has that name; a stale position or a name not seen yet scans
the list as before and refreshes the positions. A look-up therefore returns what qonnx's scan
returns, for every graph qonnx accepts (one element per name: qonnx raises on duplicates, and
a full scan still does). ``SortGraph``, ``GiveUniqueParameterTensors`` and
``SortCommutativeInputsInitializerLast`` get versions that index the graph once per pass
instead of once per node; they produce the same graph (the tests compare whole builds).
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterator

import onnx.numpy_helper as np_helper
import qonnx.util.basic as qonnx_util
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation import general
from toposort import toposort_flatten

# Short lists (a node's attributes, an annotation's entries) are scanned as before.
MIN_INDEXED_LENGTH = 24
CACHE_SIZE = 64

# (id(container), field) -> (container, first position of each name, length, first and last
# name at the scan)
_positions: OrderedDict[tuple[int, str], tuple] = OrderedDict()
_original_get_by_name = qonnx_util.get_by_name


def _remember(container, field: str, index: dict[str, int], names: list[str]) -> None:
    key = (id(container), field)
    # The entry keeps the container alive, so its id cannot be reused while it is cached.
    ends = (names[0], names[-1]) if names else (None, None)
    _positions[key] = (container, index, len(names), *ends)
    _positions.move_to_end(key)
    while len(_positions) > CACHE_SIZE:
        _positions.popitem(last=False)


def _reindex(container, field: str) -> tuple[list[str], dict[str, int]]:
    names = [getattr(x, field) for x in container]
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        index.setdefault(name, i)
    _remember(container, field, index, names)
    return names, index


def _unchanged(container, field: str, entry: tuple) -> bool:
    """Whether ``container`` still has the length and end names it had at its last scan.

    Elements are appended at the end, removed, or renamed through ``rename_tensor`` (which
    keeps the positions up to date); an append or a removal changes the length or an end.
    """
    _, _, length, first, last = entry
    if len(container) != length:
        return False
    return length == 0 or (
        getattr(container[0], field) == first and getattr(container[-1], field) == last
    )


def _position(container, name: str, field: str, unique: bool) -> int | None:
    """Position of the element named ``name`` in ``container`` (the first one), or None.

    ``unique``: raise like qonnx's ``get_by_name`` when a scan finds the name twice.
    """
    entry = _positions.get((id(container), field))
    if entry is not None and entry[0] is container:
        i = entry[1].get(name)
        if i is not None:
            if i < len(container) and getattr(container[i], field) == name:
                return i
        elif _unchanged(container, field, entry):
            return None
    names, index = _reindex(container, field)
    if unique and name in index and names.count(name) > 1:
        raise Exception("Found multiple get_by_name matches, undefined behavior")
    return index.get(name)


def _forget(container, field: str) -> None:
    _positions.pop((id(container), field), None)


def get_by_name(container, name: str, name_field: str = "name"):
    """``qonnx.util.basic.get_by_name`` with remembered positions."""
    if len(container) < MIN_INDEXED_LENGTH:
        return _original_get_by_name(container, name, name_field)
    i = _position(container, name, name_field, unique=True)
    return None if i is None else container[i]


def get_initializer(self: ModelWrapper, tensor_name: str, return_dtype: bool = False):
    """``ModelWrapper.get_initializer`` with remembered positions."""
    inits = self._model_proto.graph.initializer
    i = _position(inits, tensor_name, "name", unique=False)
    if i is None:
        return (None, None) if return_dtype else None
    value = np_helper.to_array(inits[i])
    return (value, inits[i].data_type) if return_dtype else value


def get_tensor_valueinfo(self: ModelWrapper, tensor_name: str):
    """``ModelWrapper.get_tensor_valueinfo``: graph inputs, outputs, then value_info."""
    graph = self._model_proto.graph
    for container in (graph.input, graph.output, graph.value_info):
        vi = get_by_name(container, tensor_name)
        if vi is not None:
            return vi
    return None


def get_tensor_shape(self: ModelWrapper, tensor_name: str, fix_missing_init_shape: bool = False):
    """``ModelWrapper.get_tensor_shape`` with remembered positions."""
    vi = get_tensor_valueinfo(self, tensor_name)
    if vi is not None:
        return [x.dim_value for x in vi.type.tensor_type.shape.dim]
    tensor_init, tensor_init_dtype = self.get_initializer(tensor_name, return_dtype=True)
    if tensor_init is None:
        return None
    if fix_missing_init_shape:
        self.set_tensor_shape(tensor_name, tensor_init.shape, dtype=tensor_init_dtype)
    return list(tensor_init.shape)


def find_producer(self: ModelWrapper, tensor_name: str):
    """``ModelWrapper.find_producer``: the first node with ``tensor_name`` among its outputs."""
    nodes = self._model_proto.graph.node
    entry = _positions.get((id(nodes), "output"))
    if entry is not None and entry[0] is nodes:
        i = entry[1].get(tensor_name)
        if i is not None and i < len(nodes) and tensor_name in nodes[i].output:
            return nodes[i]
    index: dict[str, int] = {}
    for i, node in enumerate(nodes):
        for out in node.output:
            index.setdefault(out, i)
    _remember(nodes, "output", index, [])
    i = index.get(tensor_name)
    return None if i is None else nodes[i]


def _rename_in_lists(graph, old_name: str, new_name: str) -> None:
    """The list part of qonnx's ``rename_tensor``: the element named ``old_name`` in each of
    the graph's inputs, outputs, value_info, initializers and annotations, positions kept."""
    for container, field in (
        (graph.input, "name"),
        (graph.output, "name"),
        (graph.value_info, "name"),
        (graph.initializer, "name"),
        (graph.quantization_annotation, "tensor_name"),
    ):
        item = get_by_name(container, old_name, field)
        if item is not None:
            setattr(item, field, new_name)
            entry = _positions.get((id(container), field))
            if entry is not None and entry[0] is container:
                i = entry[1].pop(old_name, None)
                if i is not None and new_name not in entry[1]:
                    entry[1][new_name] = i
                if i in (0, len(container) - 1):
                    _forget(container, field)


def _rename_in_node(n, old_name: str, new_name: str) -> None:
    """The node part of qonnx's ``rename_tensor``: the first use among inputs and outputs."""
    if old_name in n.input:
        n.input[list(n.input).index(old_name)] = new_name
    if old_name in n.output:
        n.output[list(n.output).index(old_name)] = new_name


def rename_tensor(self: ModelWrapper, old_name: str, new_name: str) -> None:
    """``ModelWrapper.rename_tensor``: the same renaming, with remembered positions kept."""
    graph = self.graph
    _rename_in_lists(graph, old_name, new_name)
    for n in graph.node:
        _rename_in_node(n, old_name, new_name)
    _forget(graph.node, "output")


class _Renamer:
    """qonnx's ``rename_tensor`` repeated over a pass, with the nodes that use each name indexed
    once: a rename visits only the nodes that use the old name (those are the only ones
    qonnx's sweep over all nodes changes)."""

    def __init__(self, model: ModelWrapper):
        self.graph = model.graph
        self.users: dict[str, list[int]] = {}
        for i, n in enumerate(self.graph.node):
            for name in dict.fromkeys([*n.input, *n.output]):
                self.users.setdefault(name, []).append(i)

    def rename(self, old_name: str, new_name: str) -> None:
        _rename_in_lists(self.graph, old_name, new_name)
        nodes = self.graph.node
        still, moved = [], []
        for i in self.users.pop(old_name, []):
            n = nodes[i]
            _rename_in_node(n, old_name, new_name)
            moved.append(i)
            if old_name in n.input or old_name in n.output:
                still.append(i)
        if still:
            self.users[old_name] = still
        if moved:
            merged = set(self.users.get(new_name, [])) | set(moved)
            self.users[new_name] = sorted(merged)
        _forget(nodes, "output")


def unique_tensor_names_apply(self, model):
    """``GiveUniqueTensorNames.apply`` (``tensor_<i>`` in qonnx's order), renaming via
    :class:`_Renamer`."""
    renamer = _Renamer(model)
    for i, name in enumerate(model.get_all_tensor_names()):
        renamer.rename(name, f"tensor_{i}")
    return (model, False)


def readable_tensor_names_apply(self, model):
    """``GiveReadableTensorNames.apply``: the same names in the same order, renaming via
    :class:`_Renamer`."""
    model = model.transform(general.GiveUniqueTensorNames())
    renamer = _Renamer(model)
    for n in model.graph.node:
        assert n.name != "", "Found empty node name"
        for out_num, o in enumerate(list(n.output)):
            renamer.rename(o, f"{n.name}_out{out_num}")
        init_in_num = 0
        for i in list(n.input):
            if model.get_initializer(i) is not None:
                renamer.rename(i, f"{n.name}_param{init_in_num}")
                init_in_num += 1
    for i, inp in enumerate(model.graph.input):
        renamer.rename(inp.name, "global_in" if i == 0 else f"global_in_{i}")
    for i, outp in enumerate(model.graph.output):
        renamer.rename(outp.name, "global_out" if i == 0 else f"global_out_{i}")
    return (model, False)


def sort_graph_apply(self, model):
    """``SortGraph.apply`` with the producers indexed once: the same topological order."""
    graph = model.graph
    if len(graph.node) == 1:
        return (model, False)
    node_list = list(graph.node)
    producer: dict[str, int] = {}
    for idx, n in enumerate(node_list):
        for out in n.output:
            producer.setdefault(out, idx)
    sources = {x.name for x in graph.initializer} | {x.name for x in graph.input}
    dependencies: dict[int, set[int]] = {}
    for idx, n in enumerate(node_list):
        preds = [producer[name] for name in n.input if name in producer]
        if not preds:
            # qonnx keeps a node without predecessors only if an input is a graph input or
            # an initializer; other such nodes (floating, or without inputs) are dropped
            if any(name in sources for name in n.input):
                dependencies[idx] = set()
            continue
        dependencies[idx] = set(preds)
    order = toposort_flatten(dependencies)
    sorted_nodes = [node_list[i] for i in order]
    copies = [type(n)() for n in sorted_nodes]
    for copy, n in zip(copies, sorted_nodes, strict=True):
        copy.CopyFrom(n)
    del graph.node[:]
    graph.node.extend(copies)
    _forget(graph.node, "output")
    return (model, False)


def unique_parameter_tensors_apply(self, model):
    """``GiveUniqueParameterTensors.apply`` with the initializer names indexed once."""
    graph = model.graph
    initializers = {x.name for x in graph.initializer}
    seen: set[str] = set()
    for n in graph.node:
        for input_idx, node_input in enumerate(list(n.input)):
            if node_input not in initializers:
                continue
            if node_input not in seen:
                seen.add(node_input)
                continue
            new_param_name = model.make_new_valueinfo_name()
            model.set_initializer(new_param_name, model.get_initializer(node_input))
            model.set_tensor_datatype(new_param_name, model.get_tensor_datatype(node_input))
            n.input[input_idx] = new_param_name
    return (model, False)


def commutative_inputs_apply(self, model):
    """``SortCommutativeInputsInitializerLast.apply`` with the initializer names indexed once."""
    initializers = {x.name for x in model.graph.initializer}
    modified = False
    for node in model.graph.node:
        if node.op_type not in self.SUPPORTED_COMMUTATIVE_OPS:
            continue
        dynamics = [i for i in node.input if i not in initializers]
        inputs = dynamics + [i for i in node.input if i not in dynamics]
        for i, name in enumerate(inputs):
            if node.input[i] != name:
                modified = True
            node.input[i] = name
    return model, modified


_PATCHES = (
    (qonnx_util, "get_by_name", get_by_name),
    (ModelWrapper, "get_initializer", get_initializer),
    (ModelWrapper, "get_tensor_valueinfo", get_tensor_valueinfo),
    (ModelWrapper, "get_tensor_shape", get_tensor_shape),
    (ModelWrapper, "find_producer", find_producer),
    (ModelWrapper, "rename_tensor", rename_tensor),
    (general.GiveUniqueTensorNames, "apply", unique_tensor_names_apply),
    (general.GiveReadableTensorNames, "apply", readable_tensor_names_apply),
    (general.SortGraph, "apply", sort_graph_apply),
    (general.GiveUniqueParameterTensors, "apply", unique_parameter_tensors_apply),
    (general.SortCommutativeInputsInitializerLast, "apply", commutative_inputs_apply),
)


@contextlib.contextmanager
def fast_graph_lookups() -> Iterator[None]:
    """Use the constant-time look-ups inside the block; qonnx's own are restored after it."""
    saved = [(owner, name, owner.__dict__[name]) for owner, name, _ in _PATCHES]
    try:
        for owner, name, replacement in _PATCHES:
            setattr(owner, name, replacement)
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)
        _positions.clear()


def canonical_tensor_names(model: ModelWrapper) -> dict[str, str]:
    """Tensor names by position in the graph: ``<producer node>:out<i>`` for a node output,
    ``<first consumer>:in<j>`` for an initializer, ``graph_in<i>`` for a graph input. FINN's
    late steps give some tensors random names (``qonnx.util.basic.random_string``); these do
    not depend on them."""
    names: dict[str, str] = {}
    graph = model.graph
    for i, inp in enumerate(graph.input):
        names[inp.name] = f"graph_in{i}"
    for node in graph.node:
        for i, out in enumerate(node.output):
            names.setdefault(out, f"{node.name}:out{i}")
    for node in graph.node:
        for j, inp in enumerate(node.input):
            names.setdefault(inp, f"{node.name}:in{j}")
    return names


def _canonical_node(node, names: dict[str, str]) -> bytes:
    copy = type(node)()
    copy.CopyFrom(node)
    for i, name in enumerate(copy.input):
        copy.input[i] = names.get(name, name)
    for i, name in enumerate(copy.output):
        copy.output[i] = names.get(name, name)
    return copy.SerializeToString()


def _canonical_entries(container, field: str, names: dict[str, str]) -> dict[str, bytes]:
    out = {}
    for item in container:
        copy = type(item)()
        copy.CopyFrom(item)
        name = names.get(getattr(item, field), getattr(item, field))
        setattr(copy, field, name)
        out[name] = copy.SerializeToString()
    return out


def graph_differences(a: ModelWrapper, b: ModelWrapper) -> list[str]:
    """How two models' graphs differ, as readable lines ([] when they are the same graph).

    Compares the nodes in order (op type, name, domain, inputs, outputs, attributes), the
    initializers by value, and the value infos and annotations (shapes, data types, layouts),
    with tensors named by their place in the graph (:func:`canonical_tensor_names`); the order
    of the initializer and value-info lists has no meaning in ONNX and is not compared.
    """
    diffs = []
    na, nb = canonical_tensor_names(a), canonical_tensor_names(b)
    ga, gb = a.graph, b.graph
    if len(ga.node) != len(gb.node):
        diffs.append(f"{len(ga.node)} vs {len(gb.node)} nodes")
    for i, (x, y) in enumerate(zip(ga.node, gb.node, strict=False)):
        if _canonical_node(x, na) != _canonical_node(y, nb):
            diffs.append(f"node {i}: {x.name} ({x.op_type}) vs {y.name} ({y.op_type})")
    for label, field, xs, ys in (
        ("initializer", "name", ga.initializer, gb.initializer),
        ("value_info", "name", ga.value_info, gb.value_info),
        ("annotation", "tensor_name", ga.quantization_annotation, gb.quantization_annotation),
        ("input", "name", ga.input, gb.input),
        ("output", "name", ga.output, gb.output),
    ):
        xa, xb = _canonical_entries(xs, field, na), _canonical_entries(ys, field, nb)
        for name in sorted(set(xa) | set(xb)):
            if xa.get(name) != xb.get(name):
                diffs.append(f"{label} {name} differs")
    return diffs
