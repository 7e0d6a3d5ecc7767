"""The run graph document: its models, its bounds and its validation (``parse_graph``).

A graph is a DAG of nodes (``triggers.core.nodes``) joined by edges; ``triggers.core.graph``
plans it over an event's items. Bounds, so that every graph the API accepts can be planned: at most
``MAX_NODES`` nodes, ``MAX_EDGES`` edges, ``MAX_GRAPH_BYTES`` of JSON and ``MAX_VISITS``
node visits per item (checked by ``parse_graph`` when a graph is saved); at run time a node
takes at most ``MAX_NODE_ITEMS`` items.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from triggers.core.cel_errors import ExpressionError
from triggers.core.conditions import compile_expression
from triggers.core.nodes import NODE_TYPES, Node

MAX_NODES = 200
MAX_EDGES = 4 * MAX_NODES
# The graph rides in the trigger workflow's input and in every run's input: far below
# Temporal's 2 MiB payload limit, and still room for 200 nodes of ~600 characters each.
MAX_GRAPH_BYTES = 128 * 1024
# Node visits an item can make: for each node, the number of paths from an entry node to it
# (a node with two parents that share a parent gets each item twice). A chain of MAX_NODES
# makes 200; branches that split and merge again multiply, up to 2**100 in a graph of 200.
MAX_VISITS = 1_000
# Items one node may take in one run (an event's list, times the paths that reach it).
MAX_NODE_ITEMS = 10_000


class Edge(BaseModel):
    """Items leave ``source`` for ``target``; from an ``if`` node, only its ``branch``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str
    target: str
    branch: Literal["true", "false"] | None = None


class Graph(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    nodes: list[Node] = Field(min_length=1, max_length=MAX_NODES)
    edges: list[Edge] = Field(default_factory=list, max_length=MAX_EDGES)


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


def parse_graph(data: Any, *, bounded: bool = True) -> Graph:
    """Build and validate a graph from JSON data; every error names its node.

    ``bounded``: also check its size (``MAX_GRAPH_BYTES``) and node visits (``MAX_VISITS``),
    as the API does when a graph is saved. A run checks only what it needs to run a graph
    saved earlier (its planning has a budget and ``MAX_NODE_ITEMS`` of its own).

    Raises:
        GraphError: the first problem found.
    """
    if bounded:
        size = len(json.dumps(data, separators=(",", ":")))
        if size > MAX_GRAPH_BYTES:
            msg = f"the graph's JSON is {size} bytes; a graph is at most {MAX_GRAPH_BYTES} bytes"
            raise GraphError(None, msg)
    try:
        graph = Graph.model_validate(data)
    except ValidationError as exc:
        raise _from_pydantic(data, exc.errors(include_input=False)[0]) from None
    validate_graph(graph)
    if bounded:
        _check_visits(graph)
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
    order_of(graph)


def order_of(graph: Graph) -> list[Node]:
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


def _check_visits(graph: Graph) -> None:
    """At most ``MAX_VISITS`` node visits per item (paths from an entry node, summed)."""
    paths = {node.id: 0 for node in graph.nodes}
    targets = {edge.target for edge in graph.edges}
    children: dict[str, list[str]] = {node.id: [] for node in graph.nodes}
    for edge in graph.edges:
        children[edge.source].append(edge.target)
    total = 0
    for node in order_of(graph):
        if node.id not in targets:
            paths[node.id] = 1
        total += paths[node.id]
        if total > MAX_VISITS:
            index = next(i for i, n in enumerate(graph.nodes) if n.id == node.id)
            msg = (
                f"each item reaches this node along {paths[node.id]} paths: the graph makes "
                f"more than {MAX_VISITS} node visits per item (a visit is one path from a "
                "node without incoming edges to a node); merge fewer branches"
            )
            raise GraphError(node.id, msg, ("nodes", index))
        for child in children[node.id]:
            paths[child] += paths[node.id]


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
