"""Errors of the FINN flow, with fields: a node FINN cannot map, and a build that stopped.

FINN's builder catches an error raised in a step and only logs its message (outside a pytest
session), so the fields of a node that did not map also go to the build folder
(``report/unmapped_nodes.json``, written by the step that finds it) and come back from there
into the :class:`BuildError`. Importing this module needs no FINN set-up.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from finn.util.exception import FINNUserError

from ..errors import EXIT_CHECK_FAILED, QMLPError


@dataclass(frozen=True)
class UnmappedNode:
    """A compute node that did not become a FINN hardware layer, and why."""

    node: str
    op_type: str
    reason: str

    def describe(self) -> str:
        return f"node {self.node} ({self.op_type}) cannot be mapped to a FINN hardware layer"


class UnmappedNodeError(QMLPError, FINNUserError, ValueError):
    """Compute nodes that did not become FINN hardware layers; fields of the first one."""

    def __init__(self, nodes: list[UnmappedNode]):
        if not nodes:
            raise ValueError("UnmappedNodeError needs at least one node")
        self.nodes = list(nodes)
        first = self.nodes[0]
        self.node, self.op_type, self.reason = first.node, first.op_type, first.reason
        others = [n.node for n in self.nodes[1:]]
        more = f" ({len(others)} more: {', '.join(others)})" if others else ""
        super().__init__(f"{first.describe()}: {first.reason}{more}")


def write_unmapped(path: str | Path, nodes: list[UnmappedNode]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([asdict(n) for n in nodes], indent=2) + "\n")


def read_unmapped(path: str | Path) -> list[UnmappedNode]:
    path = Path(path)
    return [UnmappedNode(**n) for n in json.loads(path.read_text())] if path.is_file() else []


class BuildError(QMLPError, RuntimeError):
    """A FINN build that did not finish: the step, the reason, and the nodes that did not map."""

    exit_code = EXIT_CHECK_FAILED

    def __init__(
        self,
        step: str,
        reason: str,
        log: Path | None = None,
        unmapped: list[UnmappedNode] | None = None,
    ):
        self.step, self.reason, self.log = step, reason, log
        self.unmapped = list(unmapped or [])
        where = f" (log: {log})" if log is not None else ""
        super().__init__(f"FINN build failed in {step}: {reason}{where}")
