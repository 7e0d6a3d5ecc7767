"""Graphs and graph triggers the graph tests share."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import Stack
from tests.helpers import cel, github_trigger
from triggers.core.conditions import MAX_EXPRESSION_LENGTH
from triggers.core.graph import MAX_EDGES, MAX_GRAPH_BYTES, MAX_NODES


def graph_trigger(graph: dict[str, Any]) -> dict[str, Any]:
    body = github_trigger()
    body["target"] = {"kind": "graph", "graph": graph}
    return body


def http_node(node_id: str, url: str, body: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {
        "id": node_id,
        "type": "http_request",
        "method": "POST",
        "url": cel(url),
        "body": body,
        **extra,
    }


async def allow_local(s: Stack) -> None:
    r = await s.http.put(
        "/api/me/network-allowlist", json={"entries": ["127.0.0.1"]}, headers=s.alice
    )
    assert r.status_code == 200, r.text


def largest_graph() -> dict[str, Any]:
    """MAX_NODES nodes (set, filter, if, log, delay), MAX_EDGES edges, expressions that fill
    the graph up to MAX_GRAPH_BYTES, and as many node visits as a graph that size can have
    under MAX_VISITS: a chain of half the nodes, and the other half each merging 7 or 8
    nodes of the chain."""
    kinds = ["set", "filter", "if", "log", "delay"]
    nodes: list[dict[str, Any]] = []
    chain = MAX_NODES // 2
    for i in range(MAX_NODES):
        # No "if" among the merging nodes: each if needs edges out, which adds visits.
        kind = kinds[i % len(kinds)] if i < chain else kinds[i % 4 if i % 4 != 2 else 4]
        if kind == "delay" and i not in (4, MAX_NODES - 1):
            kind = "set"  # the dev server fires timers about a second late: two will do
        node: dict[str, Any] = {"id": f"n{i:03d}", "type": kind}
        if kind == "set":
            node["values"] = {f"f{i}": f"item.i + {i}"}
        elif kind in ("filter", "if"):
            node["condition"] = "item.i >= 0"
        elif kind == "log":
            node["message"] = f'"node {i} " + string(item.i)'
        else:
            node["duration"] = "0.01s"
        nodes.append(node)

    def edge(i: int, j: int) -> dict[str, Any]:
        out = {"source": f"n{i:03d}", "target": f"n{j:03d}"}
        return out | {"branch": "true"} if nodes[i]["type"] == "if" else out

    edges = [edge(i, i + 1) for i in range(chain - 1)]
    merges = [((j + 13 * m) % chain, j) for m in range(8) for j in range(chain, MAX_NODES)]
    edges += [edge(i, j) for i, j in merges[: MAX_EDGES - len(edges)]]
    graph = {"nodes": nodes, "edges": edges}
    for log in (n for n in nodes if n["type"] == "log"):
        pad = MAX_GRAPH_BYTES - len(json.dumps(graph, separators=(",", ":"))) - 7
        chunk = min(pad, MAX_EXPRESSION_LENGTH - len(log["message"]) - 7)
        if chunk <= 0:
            break
        log["message"] = f'"{"x" * chunk}" + ' + log["message"]  # 7 bytes more in JSON
    return graph
