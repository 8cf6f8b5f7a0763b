"""The folding with the highest estimated frames/s that fits a resource budget.

Throughput of a dataflow pipeline is set by its slowest layer, so the search starts from the
smallest folding (PE = SIMD = 1 everywhere) and repeatedly relieves the bottleneck: it raises
that layer's PE or SIMD to the next value FINN allows (a divisor of the dimension it folds,
:func:`legal_values`), choosing the move that costs the least budget, and stops when the
bottleneck can no longer be raised within the budget (or is fully parallel). Then it trims:
every layer that runs faster than the final bottleneck needs is lowered again, one legal value
at a time, while it stays within the bottleneck's cycles and the move frees budget (the
frames/s stay, the resources shrink). Every candidate is
costed with :mod:`qmlp_brevitas.finn.layer_costs` (FINN's estimates and the project's models),
not built, together with what the build inserts for that folding
(:func:`~qmlp_brevitas.finn.layer_costs.node_stream_costs`: a data-width converter wherever a
layer's output stream and its consumer's input stream differ in width, and the residual bypass
FIFOs, whose width and depth follow the join's folding). A move re-costs the layer and the
converters and FIFOs on its own inputs and on its consumers' inputs. The caller confirms the
chosen folding with a real build.

The search works on the folded graph before FINN's transpose decomposition (the graph a FINN
folding config applies to), where each token transpose is one ``Shuffle`` layer.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from ..errors import CheckFailedError, ConfigError
from .domains import is_hw_layer
from .layer_costs import LayerCost, fits, layer_cost, node_stream_costs
from .parts import RESOURCES

PE_DIMENSION = ("NumChannels",)
MAX_STEPS = 5000
# Searches (each confirmed by a build) before a budget the built design keeps exceeding fails.
MAX_CONFIRM_ROUNDS = 4


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def legal_values(inst) -> dict[str, list[int]]:
    """PE/SIMD values FINN accepts for the layer (as FINN's ``SetFolding`` chooses them)."""
    op = inst.onnx_node.op_type
    base = op.removesuffix("_hls").removesuffix("_rtl")
    attrs = {a for a in ("PE", "SIMD") if _has(inst, a)}
    out: dict[str, list[int]] = {}
    if base == "MVAU":
        out["SIMD"] = _divisors(int(inst.get_nodeattr("MW")))
        out["PE"] = _divisors(int(inst.get_nodeattr("MH")))
    elif base in ("StreamingSplit", "StreamingConcat"):
        channels = [int(c) for c in inst.get_nodeattr("ChannelsPerStream")]
        out["SIMD"] = [d for d in _divisors(min(channels)) if all(c % d == 0 for c in channels)]
    elif base == "ConvolutionInputGenerator":
        out["SIMD"] = _divisors(int(inst.get_nodeattr("IFMChannels")))
    elif base == "Shuffle":
        ins, outs = inst.get_nodeattr("in_shape"), inst.get_nodeattr("out_shape")
        last = [int(ins[-1]), int(outs[-1])]
        out["SIMD"] = [d for d in _divisors(min(last)) if all(c % d == 0 for c in last)]
    elif "PE" in attrs:
        try:
            channels = int(inst.get_nodeattr("NumChannels"))
        except (AttributeError, KeyError):
            channels = int(inst.get_normal_output_shape()[-1])
        out["PE"] = _divisors(channels)
    elif "SIMD" in attrs:
        out["SIMD"] = _divisors(int(inst.get_normal_input_shape()[-1]))
    return out


def _has(inst, attr: str) -> bool:
    try:
        inst.get_nodeattr(attr)
    except (AttributeError, KeyError):
        return False
    return True


class BudgetTooSmallError(ConfigError):
    """Even the smallest folding exceeds the budget; ``totals`` are its modelled resources,
    ``over`` the resources it exceeds."""

    def __init__(self, totals: dict[str, float], budget: dict[str, float]):
        self.totals, self.budget = totals, budget
        self.over = [r for r in budget if totals[r] > budget[r]]
        super().__init__(
            "even the smallest folding does not fit the budget: "
            + ", ".join(f"{r} {totals[r]:,.0f} > {budget[r]:,.0f}" for r in self.over)
            + "; give a larger --budget"
        )


class BudgetNotMetError(CheckFailedError):
    """The built design still exceeds the budget after ``rounds`` searches, each within a
    tighter budget; ``built`` are the last build's totals, ``over`` the resources it exceeds."""

    def __init__(self, built: dict[str, float], budget: dict[str, float], rounds: list[dict]):
        self.built, self.budget, self.rounds = built, budget, rounds
        self.over = [r for r in budget if built[r] > budget[r] + 1e-9]
        super().__init__(
            f"the built design exceeds the budget after {len(rounds)} searches: "
            + ", ".join(f"{r} {built[r]:,.0f} > {budget[r]:,.0f}" for r in self.over)
            + "; give a larger --budget"
        )


@dataclass
class SearchResult:
    """The chosen folding, its modelled performance and cost, and what stopped the search."""

    folding: dict[str, dict[str, int]]
    max_cycles: int
    estimated_fps: float
    bottleneck: str
    totals: dict[str, float]
    budget: dict[str, float]
    steps: int
    limited_by: str
    trace: list[dict] = field(default_factory=list)
    inserted: dict[str, float] = field(default_factory=dict)
    trimmed: int = 0  # moves back down that kept the frames/s and freed budget

    def folding_config(self) -> dict:
        """A FINN folding config (``--folding``) with these PE/SIMD values."""
        return {"Defaults": {}, **self.folding}


def _pressure(delta: dict[str, float], budget: dict[str, float]) -> float:
    """The largest share of the budget a move takes (0 for a move that frees resources)."""
    shares = [delta[r] / budget[r] for r in budget if budget[r] and delta[r] > 0]
    return max(shares, default=0.0)


def _sum(costs, resource: str) -> float:
    return sum(c.resources[resource] for c in costs)


def search_folding(
    model,
    fpgapart: str,
    clock_ns: float,
    budget: dict[str, float],
    fixed_costs: list[LayerCost] | None = None,
    progress=None,
) -> SearchResult:
    """Greedy bottleneck relief within ``budget`` on a copy of ``model`` (see module docstring).

    The totals count every layer, the DWCs and bypass FIFOs the folding needs, and
    ``fixed_costs``: anything else that counts against the budget and does not change with the
    folding (not the converters or FIFOs of :func:`~.layer_costs.stream_costs`, which the
    search costs itself).
    """
    from qonnx.custom_op.registry import getCustomOp

    model = copy.deepcopy(model)
    nodes = {n.name: n for n in model.graph.node if is_hw_layer(n.domain)}
    insts = {name: getCustomOp(node) for name, node in nodes.items()}
    legal = {name: legal_values(inst) for name, inst in insts.items()}
    consumers = {
        name: [c.name for t in node.output for c in model.find_consumers(t) if c.name in nodes]
        for name, node in nodes.items()
    }
    for name, inst in insts.items():
        for attr in legal[name]:
            inst.set_nodeattr(attr, 1)
    costs = {name: layer_cost(inst, fpgapart) for name, inst in insts.items()}
    streams = {name: node_stream_costs(model, node, fpgapart) for name, node in nodes.items()}
    fixed = {r: _sum(fixed_costs or [], r) for r in RESOURCES}

    def totals() -> dict[str, float]:
        layers = list(costs.values()) + [c for s in streams.values() for c in s]
        return {r: fixed[r] + _sum(layers, r) for r in RESOURCES}

    def streams_around(name: str) -> dict[str, list[LayerCost]]:
        return {n: node_stream_costs(model, nodes[n], fpgapart) for n in [name, *consumers[name]]}

    def cost_move(name: str, attr: str, value: int):
        """The layer's cost at ``attr = value``, the converters and FIFOs around it then, and
        the change of the totals; the layer keeps its folding."""
        inst = insts[name]
        now = int(inst.get_nodeattr(attr))
        inst.set_nodeattr(attr, value)
        new, new_streams = layer_cost(inst, fpgapart), streams_around(name)
        inst.set_nodeattr(attr, now)
        before = [costs[name], *(c for n in new_streams for c in streams[n])]
        after = [new, *(c for st in new_streams.values() for c in st)]
        delta = {r: _sum(after, r) - _sum(before, r) for r in RESOURCES}
        return new, new_streams, delta

    current = totals()
    if not fits(current, budget):
        raise BudgetTooSmallError(current, budget)
    trace, limited_by, steps = [], "", 0
    while steps < MAX_STEPS:
        name = max(costs, key=lambda n: costs[n].cycles)
        inst, cost = insts[name], costs[name]
        options = []
        for attr, values in legal[name].items():
            now = int(inst.get_nodeattr(attr))
            larger = [v for v in values if v > now]
            if not larger:
                continue
            new, new_streams, delta = cost_move(name, attr, larger[0])
            if new.cycles >= cost.cycles:
                continue
            after = {r: current[r] + delta[r] for r in RESOURCES}
            options.append((_pressure(delta, budget), attr, larger[0], new, new_streams, after))
        if not options:
            limited_by = f"{name} ({cost.op_type}) is at its largest folding ({cost.folding})"
            break
        options.sort(key=lambda o: o[0])
        fitting = [o for o in options if fits(o[5], budget)]
        if not fitting:
            _, attr, value, _, _, after = options[0]
            over = [r for r in budget if after[r] > budget[r]]
            limited_by = (
                f"{name} ({cost.op_type}, {cost.cycles} cycles): raising {attr} to {value} "
                f"would need {', '.join(f'{r} {after[r]:,.0f} > {budget[r]:,.0f}' for r in over)}"
            )
            break
        _, attr, value, new, new_streams, after = fitting[0]
        inst.set_nodeattr(attr, value)
        costs[name], current = new, after
        streams.update(new_streams)
        steps += 1
        trace.append({"layer": name, attr: value, "cycles": new.cycles})
        if progress is not None:
            progress(steps, new.cycles)
    # Trim: greedy relief leaves layers faster than the final bottleneck needs. Lower each one
    # (next smaller legal value) while it stays within the bottleneck's cycles and the move
    # frees budget: the same frames/s for fewer resources.
    max_cycles = max(c.cycles for c in costs.values())
    trimmed, changed = 0, True
    while changed:
        changed = False
        for name in sorted(costs, key=lambda n: -costs[n].resources["LUT"]):
            inst = insts[name]
            for attr, values in legal[name].items():
                while True:
                    now = int(inst.get_nodeattr(attr))
                    smaller = [v for v in values if v < now]
                    if not smaller:
                        break
                    new, new_streams, delta = cost_move(name, attr, smaller[-1])
                    after = {r: current[r] + delta[r] for r in RESOURCES}
                    frees = sum(delta[r] / budget[r] for r in budget if budget[r]) < 0
                    if new.cycles > max_cycles or not frees or not fits(after, budget):
                        break
                    inst.set_nodeattr(attr, smaller[-1])
                    costs[name], current = new, after
                    streams.update(new_streams)
                    trimmed += 1
                    changed = True
                    trace.append({"layer": name, attr: smaller[-1], "cycles": new.cycles})
    bottleneck = max(costs, key=lambda n: costs[n].cycles)
    max_cycles = costs[bottleneck].cycles
    folding = {name: {a: int(insts[name].get_nodeattr(a)) for a in legal[name]} for name in insts}
    inserted = [c for s in streams.values() for c in s]
    return SearchResult(
        folding={k: v for k, v in folding.items() if v},
        max_cycles=max_cycles,
        estimated_fps=1e9 / (clock_ns * max_cycles),
        bottleneck=bottleneck,
        totals=totals(),
        budget=dict(budget),
        steps=steps,
        limited_by=limited_by,
        trace=trace,
        trimmed=trimmed,
        inserted={r: _sum(inserted, r) for r in RESOURCES},
    )


def tightened_budget(
    search_budget: dict[str, float],
    budget: dict[str, float],
    searched: dict[str, float],
    built: dict[str, float],
) -> dict[str, float]:
    """The next search's budget after a build exceeded ``budget``: each resource the build
    exceeds loses what the build cost beyond the search's estimate (``built - searched``), so
    that a build with the same model error fits; always strictly below the last search's
    budget there (the search kept ``searched`` within it, and the build exceeded it)."""
    out = dict(search_budget)
    for r in budget:
        if built[r] > budget[r] + 1e-9:
            out[r] = min(search_budget[r], budget[r] - (built[r] - searched[r]))
    return out


def search_and_confirm(
    search,
    build,
    budget: dict[str, float],
    max_rounds: int = MAX_CONFIRM_ROUNDS,
    log=None,
) -> tuple[SearchResult, dict, list[dict]]:
    """Search, build, and search again within a tighter budget while the build exceeds
    ``budget`` (:func:`tightened_budget`), at most ``max_rounds`` times.

    ``search(search_budget)`` returns a :class:`SearchResult`, ``build(result)`` the summary of
    the build of its folding (with the build's ``totals``). Returns the last search, the last
    build's summary, and one record per round (the budget searched within, the search's totals
    and frames/s, the built totals, whether they fit). Raises :class:`BudgetNotMetError` (its
    ``rounds`` and the last ``summary`` attached) when the last build still exceeds the budget.
    """
    search_budget, rounds = dict(budget), []
    while True:
        result = search(search_budget)
        summary = build(result)
        built = {r: float(summary["totals"][r]) for r in budget}
        ok = fits(built, budget)
        rounds.append(
            {
                "search_budget": dict(search_budget),
                "search_totals": dict(result.totals),
                "search_estimated_fps": result.estimated_fps,
                "built_totals": built,
                "built_estimated_fps": summary.get("estimated_fps"),
                "fits": ok,
            }
        )
        if ok:
            return result, summary, rounds
        if len(rounds) >= max_rounds:
            error = BudgetNotMetError(built, budget, rounds)
            error.summary, error.result = summary, result
            raise error
        search_budget = tightened_budget(search_budget, budget, result.totals, built)
        if log is not None:
            over = [r for r in budget if built[r] > budget[r] + 1e-9]
            log(
                "folding search: the build exceeds the budget ("
                + ", ".join(f"{r} {built[r]:,.0f} > {budget[r]:,.0f}" for r in over)
                + "); searching again within "
                + ", ".join(f"{r} {search_budget[r]:,.0f}" for r in over)
            )
