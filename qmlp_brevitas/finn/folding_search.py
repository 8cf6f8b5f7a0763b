"""The folding with the highest estimated frames/s that fits a resource budget.

Throughput of a dataflow pipeline is set by its slowest layer, so the search starts from the
smallest folding (PE = SIMD = 1 everywhere) and repeatedly relieves the bottleneck: it raises
that layer's PE or SIMD to the next value FINN allows (a divisor of the dimension it folds,
:func:`legal_values`), choosing the move that costs the least budget, and stops when the
bottleneck can no longer be raised within the budget (or is fully parallel). Every candidate is
costed with :mod:`qmlp_brevitas.finn.layer_costs` (FINN's estimates and the project's models),
not built; the caller confirms the chosen folding with one real build.

The search works on the folded graph before FINN's transpose decomposition (the graph a FINN
folding config applies to), where each token transpose is one ``Shuffle`` layer.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from .layer_costs import LayerCost, fits, layer_cost
from .parts import RESOURCES
from .project_ops import is_hw_node

PE_DIMENSION = ("NumChannels",)
MAX_STEPS = 5000


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


class BudgetTooSmallError(ValueError):
    """Even the smallest folding exceeds the budget; ``totals`` are its modelled resources."""

    def __init__(self, totals: dict[str, float], budget: dict[str, float]):
        self.totals, self.budget = totals, budget
        self.over = [r for r in budget if totals[r] > budget[r]]
        super().__init__(
            "even the smallest folding does not fit the budget: "
            + ", ".join(f"{r} {totals[r]:,.0f} > {budget[r]:,.0f}" for r in self.over)
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

    def folding_config(self) -> dict:
        """A FINN folding config (``--folding``) with these PE/SIMD values."""
        return {"Defaults": {}, **self.folding}


def _pressure(delta: dict[str, float], budget: dict[str, float]) -> float:
    """The largest share of the budget a move takes (0 for a move that frees resources)."""
    shares = [delta[r] / budget[r] for r in budget if budget[r] and delta[r] > 0]
    return max(shares, default=0.0)


def search_folding(
    model,
    fpgapart: str,
    clock_ns: float,
    budget: dict[str, float],
    fixed_costs: list[LayerCost] | None = None,
    progress=None,
) -> SearchResult:
    """Greedy bottleneck relief within ``budget`` on a copy of ``model`` (see module docstring).

    ``fixed_costs``: costs that do not change with the folding but count against the budget
    (the residual FIFOs and width converters of :func:`~.layer_costs.stream_costs`).
    """
    from qonnx.custom_op.registry import getCustomOp

    model = copy.deepcopy(model)
    insts = {n.name: getCustomOp(n) for n in model.graph.node if is_hw_node(n)}
    legal = {name: legal_values(inst) for name, inst in insts.items()}
    for name, inst in insts.items():
        for attr in legal[name]:
            inst.set_nodeattr(attr, 1)
    costs = {name: layer_cost(inst, fpgapart) for name, inst in insts.items()}
    fixed = {r: sum(c.resources[r] for c in fixed_costs or []) for r in RESOURCES}

    def totals() -> dict[str, float]:
        return {r: fixed[r] + sum(c.resources[r] for c in costs.values()) for r in RESOURCES}

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
            inst.set_nodeattr(attr, larger[0])
            new = layer_cost(inst, fpgapart)
            inst.set_nodeattr(attr, now)
            if new.cycles >= cost.cycles:
                continue
            delta = {r: new.resources[r] - cost.resources[r] for r in RESOURCES}
            after = {r: current[r] + delta[r] for r in RESOURCES}
            options.append((_pressure(delta, budget), attr, larger[0], new, after))
        if not options:
            limited_by = f"{name} ({cost.op_type}) is at its largest folding ({cost.folding})"
            break
        options.sort(key=lambda o: o[0])
        fitting = [o for o in options if fits(o[4], budget)]
        if not fitting:
            _, attr, value, new, after = options[0]
            over = [r for r in budget if after[r] > budget[r]]
            limited_by = (
                f"{name} ({cost.op_type}, {cost.cycles} cycles): raising {attr} to {value} "
                f"would need {', '.join(f'{r} {after[r]:,.0f} > {budget[r]:,.0f}' for r in over)}"
            )
            break
        _, attr, value, new, after = fitting[0]
        inst.set_nodeattr(attr, value)
        costs[name], current = new, after
        steps += 1
        trace.append({"layer": name, attr: value, "cycles": new.cycles})
        if progress is not None:
            progress(steps, new.cycles)
    bottleneck = max(costs, key=lambda n: costs[n].cycles)
    max_cycles = costs[bottleneck].cycles
    folding = {name: {a: int(insts[name].get_nodeattr(a)) for a in legal[name]} for name in insts}
    return SearchResult(
        folding={k: v for k, v in folding.items() if v},
        max_cycles=max_cycles,
        estimated_fps=1e9 / (clock_ns * max_cycles),
        bottleneck=bottleneck,
        totals=current,
        budget=dict(budget),
        steps=steps,
        limited_by=limited_by,
        trace=trace,
    )
