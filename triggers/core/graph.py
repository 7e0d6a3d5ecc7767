"""The run graph: a DAG of nodes over the event's items, and its plan.

Items: the event's ``data`` if it is a list, else ``[data]`` (so ``None`` data is one item,
``None``). Nodes with no incoming edge receive every item; an item then flows along edges.
A node with several incoming edges receives the items of its parents in the order the
parents run (topological, ties broken by the order of ``nodes``), each parent's items in
the order of ``edges``.

``plan`` is pure and deterministic: it evaluates ``filter``, ``if`` and ``set`` nodes and,
for the side-effect nodes (``http_request``, ``start_workflow``, ``delay``, ``log``),
records the call each item *would* make, with its inputs evaluated. The dry run shows that
plan; the real run performs its calls. A side-effect node passes its items on unchanged,
unless ``results`` gives what that node really produced (an HTTP response, say).

The real run uses a :class:`Planner`: it plans each node once, in topological order, and
stops at a node whose calls must be made before the nodes after it can be planned; once
they are made, ``finish`` hands it what they produced and planning goes on. Planning a
graph is linear in its node visits (each node, once per item that reaches it).

The graph document, its bounds and its validation are ``triggers.core.graph_schema``
(re-exported here).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from triggers.core.cel_budget import current as current_budget
from triggers.core.cel_errors import EvaluationError
from triggers.core.cel_values import to_cel
from triggers.core.conditions import (
    Compiled,
    ConditionOutcome,
    TriggerInfo,
    evaluate_condition,
    event_activation,
)
from triggers.core.events import Event
from triggers.core.graph_schema import (
    MAX_EDGES,
    MAX_GRAPH_BYTES,
    MAX_NODE_ITEMS,
    MAX_NODES,
    MAX_VISITS,
    Edge,
    Graph,
    GraphError,
    order_of,
    parse_graph,
    validate_graph,
)
from triggers.core.nodes import SIDE_EFFECT_TYPES, FilterNode, IfNode, Node, SetNode

__all__ = [
    "MAX_EDGES",
    "MAX_GRAPH_BYTES",
    "MAX_NODE_ITEMS",
    "MAX_NODES",
    "MAX_VISITS",
    "Call",
    "DryRun",
    "Edge",
    "Graph",
    "GraphError",
    "ItemError",
    "NodeRun",
    "Plan",
    "PlanError",
    "Planner",
    "dry_run",
    "items_of",
    "parse_graph",
    "plan",
    "validate_graph",
]


# -- the plan -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemError:
    """An item a node could not handle (``index`` into the node's ``items_in``); the item
    goes no further."""

    index: int
    message: str


@dataclass(frozen=True)
class Call:
    """A side effect the run performs for one item, with its evaluated inputs."""

    node_id: str
    type: str
    item_index: int
    args: dict[str, Any]


@dataclass(frozen=True)
class NodeRun:
    """One node in the plan. ``outputs`` maps ``"out"`` (or ``"true"`` and ``"false"`` for
    an ``if``) to the items sent along those edges."""

    node_id: str
    type: str
    items_in: list[Any]
    outputs: dict[str, list[Any]]
    errors: list[ItemError] = field(default_factory=list)

    @property
    def items_out(self) -> list[Any]:
        return [item for items in self.outputs.values() for item in items]


@dataclass(frozen=True)
class Plan:
    """Every node in topological order, and the calls the run makes, in that order."""

    event_id: str
    nodes: list[NodeRun]
    calls: list[Call]
    # The event itself could not be given to expressions (data that is not JSON).
    error: str | None = None

    @property
    def executed(self) -> list[str]:
        """The nodes that received at least one item."""
        return [run.node_id for run in self.nodes if run.items_in]

    def node(self, node_id: str) -> NodeRun:
        return next(run for run in self.nodes if run.node_id == node_id)


def items_of(event: Event) -> list[Any]:
    """The items a graph runs over: ``data`` if it is a list, else ``[data]``."""
    return list(event.data) if isinstance(event.data, list) else [event.data]


def plan(
    graph: Graph,
    items: list[Any],
    event: Event,
    trigger: TriggerInfo,
    *,
    results: Mapping[str, list[Any]] | None = None,
) -> Plan:
    """Walk ``graph`` over ``items`` without side effects (see the module docstring).

    Raises:
        GraphError: the graph has a cycle or a dangling edge (``validate_graph`` first).
    """
    planner = Planner(graph, items, event, trigger)
    known = results or {}
    try:
        while (waiting := planner.advance(lambda run, _calls: run.node_id in known)) is not None:
            planner.finish(known[waiting.node_id])
    except PlanError as err:
        return Plan(event.id, planner.runs, planner.calls, str(err))
    return Plan(event.id, planner.runs, planner.calls)


class PlanError(Exception):
    """The run cannot go on: the event cannot be given to expressions (``kind`` "event"),
    or a node would take more than ``MAX_NODE_ITEMS`` items ("limit")."""

    def __init__(self, message: str, kind: Literal["event", "limit"]) -> None:
        super().__init__(message)
        self.kind = kind


class Planner:
    """Plans ``graph`` over ``items`` node by node, in topological order, once each.

    ``advance(stop)`` plans nodes until one for which ``stop(run, calls)`` is true and
    returns it: its calls are in ``calls``, and what it passes on waits for ``finish``.
    ``runs`` holds the finished nodes, ``calls`` every call planned so far, in order, and
    ``finished_waits`` the nodes ``finish`` was called for.
    """

    def __init__(self, graph: Graph, items: list[Any], event: Event, trigger: TriggerInfo):
        self.order = order_of(graph)
        self.runs: list[NodeRun] = []
        self.calls: list[Call] = []
        self.waiting: NodeRun | None = None
        self.finished_waits: list[str] = []
        self.position = 0
        self._targets: dict[str, list[Edge]] = {node.id: [] for node in graph.nodes}
        for edge in graph.edges:
            self._targets[edge.source].append(edge)
        entry = {node.id for node in graph.nodes} - {edge.target for edge in graph.edges}
        self._inbox: dict[str, list[Any]] = {
            node.id: copy.deepcopy(items) if node.id in entry else [] for node in graph.nodes
        }
        self._base: dict[str, Any] | None = None
        self._error: str | None = None
        try:
            self._base = event_activation(event, trigger)
        except EvaluationError as err:
            self._error = f"event: {err}"

    @property
    def current(self) -> str | None:
        """The node being planned (or last planned)."""
        return self.order[self.position - 1].id if self.position else None

    def advance(self, stop: Callable[[NodeRun, list[Call]], bool]) -> NodeRun | None:
        """Plan up to the next node ``stop`` picks; ``None`` once every node is planned.

        Raises:
            PlanError: see the class.
        """
        if self._error is not None:
            raise PlanError(self._error, "event")
        assert self._base is not None and self.waiting is None
        while self.position < len(self.order):
            node = self.order[self.position]
            self.position += 1
            items = self._inbox.pop(node.id)
            if len(items) > MAX_NODE_ITEMS:
                raise PlanError(
                    f"node {node.id!r}: {len(items)} items reach it; a node takes at most "
                    f"{MAX_NODE_ITEMS} in a run",
                    "limit",
                )
            calls: list[Call] = []
            run = _run_node(node, items, self._base, calls)
            self.calls.extend(calls)
            if node.type in SIDE_EFFECT_TYPES and stop(run, calls):
                self.waiting = run
                return run
            self._finish(run)
        return None

    def finish(self, produced: list[Any] | None) -> None:
        """The waiting node's calls are made: ``produced`` is what its items became
        (``None``: they pass on as they came)."""
        assert self.waiting is not None
        run, self.waiting = self.waiting, None
        self.finished_waits.append(run.node_id)
        if produced is not None:
            run = replace(run, outputs={"out": list(produced)})
        self._finish(run)

    def _finish(self, run: NodeRun) -> None:
        self.runs.append(run)
        for edge in self._targets[run.node_id]:
            self._inbox[edge.target].extend(run.outputs[edge.branch or "out"])


def _run_node(node: Node, items: list[Any], base: dict[str, Any], calls: list[Call]) -> NodeRun:
    outputs: dict[str, list[Any]] = {"true": [], "false": []} if node.type == "if" else {"out": []}
    errors: list[ItemError] = []
    budget = current_budget()
    for index, item in enumerate(items):
        if budget is not None:
            budget.poll()
        try:
            activation = {**base, "item": to_cel(item)}
            if isinstance(node, FilterNode | IfNode):
                passed = node.test(activation)
                if isinstance(node, IfNode):
                    outputs["true" if passed else "false"].append(item)
                elif passed:
                    outputs["out"].append(item)
            elif isinstance(node, SetNode):
                outputs["out"].append(node.apply(item, activation))
            else:
                calls.append(Call(node.id, node.type, index, node.call_args(activation)))
                outputs["out"].append(item)
        except EvaluationError as err:
            errors.append(ItemError(index, str(err)))
    return NodeRun(node.id, node.type, list(items), outputs, errors)


# -- the dry run ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DryRun:
    """What would happen to one event: the condition's outcome, and the plan if it passes."""

    event_id: str
    condition: ConditionOutcome
    would_start: bool
    plan: Plan | None


def dry_run(
    event: Event, trigger: TriggerInfo, *, condition: Compiled | None, graph: Graph | None
) -> DryRun:
    """Evaluate ``condition`` and plan ``graph`` exactly as a real run would, doing nothing."""
    outcome = evaluate_condition(condition, event, trigger)
    if outcome.result != "passed":
        return DryRun(event.id, outcome, False, None)
    planned = plan(graph, items_of(event), event, trigger) if graph is not None else None
    return DryRun(event.id, outcome, True, planned)
