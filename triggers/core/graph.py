"""The run graph: a DAG of nodes over the event's items, its validation, and its plan.

Items: the event's ``data`` if it is a list, else ``[data]`` (so ``None`` data is one item,
``None``). Nodes with no incoming edge receive every item; an item then flows along edges.
A node with several incoming edges receives the items of its parents in the order the
parents run (topological, ties broken by the order of ``nodes``), each parent's items in
the order of ``edges``.

``plan`` is pure and deterministic: it evaluates ``filter``, ``if`` and ``set`` nodes and,
for the side-effect nodes (``http_request``, ``start_workflow``, ``delay``, ``log``),
records the call each item *would* make, with its inputs evaluated. The dry run shows that
plan; the real run performs its calls. A side-effect node passes its items on unchanged,
unless ``results`` gives what that node really produced (an HTTP response, say): the real
run plans again with it to get what the nodes after it do.
"""

from __future__ import annotations

import copy
import heapq
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from triggers.core.conditions import (
    Compiled,
    ConditionOutcome,
    EvaluationError,
    ExpressionError,
    TriggerInfo,
    compile_expression,
    evaluate_condition,
    event_activation,
    to_cel,
)
from triggers.core.events import Event
from triggers.core.nodes import (
    NODE_TYPES,
    SIDE_EFFECT_TYPES,
    FilterNode,
    IfNode,
    Node,
    SetNode,
)

MAX_NODES = 200


class Edge(BaseModel):
    """Items leave ``source`` for ``target``; from an ``if`` node, only its ``branch``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str
    target: str
    branch: Literal["true", "false"] | None = None


class Graph(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    nodes: list[Node] = Field(min_length=1, max_length=MAX_NODES)
    edges: list[Edge] = Field(default_factory=list, max_length=4 * MAX_NODES)


class GraphError(ValueError):
    """An invalid graph. ``node_id`` names the node to fix (``None`` when it has no id);
    ``loc`` is where in the graph document (``("nodes", 2, "condition")``)."""

    def __init__(
        self,
        node_id: str | None,
        message: str,
        loc: tuple[str | int, ...] = (),
        position: tuple[int, int] | None = None,
    ) -> None:
        super().__init__(message)
        self.node_id = node_id
        self.message = message
        self.loc = loc
        self.position = position

    def __str__(self) -> str:
        return self.message if self.node_id is None else f"node {self.node_id!r}: {self.message}"


# -- validation ---------------------------------------------------------------------------


def parse_graph(data: Any) -> Graph:
    """Build and validate a graph from JSON data; every error names its node.

    Raises:
        GraphError: the first problem found.
    """
    try:
        graph = Graph.model_validate(data)
    except ValidationError as exc:
        raise _from_pydantic(data, exc.errors(include_input=False)[0]) from None
    validate_graph(graph)
    return graph


def _from_pydantic(data: Any, err: Mapping[str, Any]) -> GraphError:
    loc = tuple(err["loc"])
    if len(loc) < 2 or loc[0] != "nodes" or not isinstance(loc[1], int):
        return GraphError(None, str(err["msg"]).removeprefix("Value error, "), loc)
    raw = data["nodes"][loc[1]] if isinstance(data, Mapping) else None
    raw_id = raw.get("id") if isinstance(raw, Mapping) else None
    node_id = raw_id if isinstance(raw_id, str) else None
    if err["type"] == "union_tag_invalid":
        known = ", ".join(NODE_TYPES)
        return GraphError(node_id, f"unknown node type; known: {known}", (*loc, "type"))
    if err["type"] == "union_tag_not_found":
        return GraphError(node_id, "node type is missing", (*loc, "type"))
    if len(loc) > 2 and loc[2] in NODE_TYPES:
        loc = (*loc[:2], *loc[3:])  # pydantic puts the union's tag in the path
    where = ".".join(str(p) for p in loc[2:])
    msg = str(err["msg"]).removeprefix("Value error, ")
    return GraphError(node_id, f"{where}: {msg}" if where else msg, loc)


def validate_graph(graph: Graph) -> None:
    """Node ids unique, every expression compiles, edges point at nodes, ``if`` edges have
    a branch and only ``if`` edges do, no duplicate edge, every ``if`` has an edge, no cycle.

    Raises:
        GraphError: the first problem, in that order.
    """
    seen: set[str] = set()
    for i, node in enumerate(graph.nodes):
        if node.id in seen:
            raise GraphError(node.id, "duplicate node id", ("nodes", i, "id"))
        seen.add(node.id)
        for path, expr in node.expressions():
            try:
                compile_expression(expr)
            except ExpressionError as err:
                where = ".".join(path)
                raise GraphError(
                    node.id, f"{where}: {err}", ("nodes", i, *path), err.position
                ) from None
    kinds = {node.id: node.type for node in graph.nodes}
    distinct: set[tuple[str, str, str | None]] = set()
    for i, edge in enumerate(graph.edges):
        for end in ("source", "target"):
            ref = getattr(edge, end)
            if ref not in kinds:
                msg = f"edge {edge.source!r} -> {edge.target!r}: {ref!r} is not a node"
                raise GraphError(ref, msg, ("edges", i, end))
        if kinds[edge.source] == "if" and edge.branch is None:
            msg = "edges from an if node need a branch, 'true' or 'false'"
            raise GraphError(edge.source, msg, ("edges", i, "branch"))
        if kinds[edge.source] != "if" and edge.branch is not None:
            msg = "only edges from an if node have a branch"
            raise GraphError(edge.source, msg, ("edges", i, "branch"))
        key = (edge.source, edge.target, edge.branch)
        if key in distinct:
            raise GraphError(edge.source, f"duplicate edge to {edge.target!r}", ("edges", i))
        distinct.add(key)
    sources = {edge.source for edge in graph.edges}
    for i, node in enumerate(graph.nodes):
        if node.type == "if" and node.id not in sources:
            raise GraphError(node.id, "if node has no 'true' or 'false' edge", ("nodes", i))
    _order(graph)


def _order(graph: Graph) -> list[Node]:
    """Topological order, ties broken by position in ``nodes`` (deterministic)."""
    index = {node.id: i for i, node in enumerate(graph.nodes)}
    indegree = dict.fromkeys(index, 0)
    children: dict[str, list[str]] = {node_id: [] for node_id in index}
    for edge in graph.edges:
        if edge.source not in index or edge.target not in index:
            raise GraphError(edge.target, "edge points at a node that does not exist")
        children[edge.source].append(edge.target)
        indegree[edge.target] += 1
    ready = [i for node_id, i in index.items() if indegree[node_id] == 0]
    heapq.heapify(ready)
    order: list[Node] = []
    while ready:
        node = graph.nodes[heapq.heappop(ready)]
        order.append(node)
        for child in children[node.id]:
            indegree[child] -= 1
            if indegree[child] == 0:
                heapq.heappush(ready, index[child])
    if len(order) < len(graph.nodes):
        raise _cycle(graph, {node_id for node_id, d in indegree.items() if d > 0}, children)
    return order


def _cycle(graph: Graph, stuck: set[str], children: dict[str, list[str]]) -> GraphError:
    """Name one cycle: walk from the first stuck node along stuck children until a repeat."""
    start = next(node.id for node in graph.nodes if node.id in stuck)
    path, node_id = [start], start
    while True:
        node_id = next(child for child in children[node_id] if child in stuck)
        if node_id in path:
            cycle = [*path[path.index(node_id) :], node_id]
            index = next(i for i, n in enumerate(graph.nodes) if n.id == node_id)
            return GraphError(node_id, f"cycle: {' -> '.join(cycle)}", ("nodes", index))
        path.append(node_id)


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
    order = _order(graph)
    try:
        base = event_activation(event, trigger)
    except EvaluationError as err:
        return Plan(event.id, [], [], f"event: {err}")
    targets = {node.id: [e for e in graph.edges if e.source == node.id] for node in graph.nodes}
    entry = {node.id for node in graph.nodes} - {edge.target for edge in graph.edges}
    inbox: dict[str, list[Any]] = {
        node.id: copy.deepcopy(items) if node.id in entry else [] for node in graph.nodes
    }
    runs: list[NodeRun] = []
    calls: list[Call] = []
    known = results or {}
    for node in order:
        run = _run_node(node, inbox[node.id], base, calls)
        if node.id in known and node.type in SIDE_EFFECT_TYPES:
            run = replace(run, outputs={"out": list(known[node.id])})
        runs.append(run)
        for edge in targets[node.id]:
            inbox[edge.target].extend(run.outputs[edge.branch or "out"])
    return Plan(event.id, runs, calls)


def _run_node(node: Node, items: list[Any], base: dict[str, Any], calls: list[Call]) -> NodeRun:
    outputs: dict[str, list[Any]] = {"true": [], "false": []} if node.type == "if" else {"out": []}
    errors: list[ItemError] = []
    for index, item in enumerate(items):
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
