"""Where a graph target's ``http_request`` nodes send their requests, as far as the
trigger's stored documents decide it: what a user must have chosen for the requests to go
out through their network allowlist (``Trigger.target_principal_id``).

A node's URL is a CEL expression. What decides its value is the expression itself and,
when it reads ``item``, every node upstream of it (a ``set`` assigns the item's fields, an
earlier ``http_request`` or ``start_workflow`` replaces the item, a ``filter`` or ``if``
picks which items arrive) with the edges between them; when it reads ``trigger``, the
trigger's name (an editor may rename a trigger). A CEL expression can only read a variable
it names, so looking for the names in its text errs on the safe side only.

Values the event brings (``event``, and ``item``, which starts as the event's data) are
decided by whoever sends the events: see :func:`reads_events`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def graph_of(target: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    target = target or {}
    graph = target.get("graph")
    if target.get("kind") != "graph" or not isinstance(graph, Mapping):
        return None
    return graph


def _http_nodes(graph: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {
        str(node.get("id")): node
        for node in graph.get("nodes") or []
        if isinstance(node, Mapping) and node.get("type") == "http_request"
    }


def _upstream(graph: Mapping[str, Any], node_id: str) -> set[str]:
    parents: dict[str, set[str]] = {}
    for edge in graph.get("edges") or []:
        if isinstance(edge, Mapping):
            parents.setdefault(str(edge.get("target")), set()).add(str(edge.get("source")))
    seen: set[str] = set()
    todo = [node_id]
    while todo:
        for parent in parents.get(todo.pop(), ()):
            if parent not in seen:
                seen.add(parent)
                todo.append(parent)
    return seen


def destinations(target: Mapping[str, Any] | None, *, trigger_name: str) -> dict[str, str]:
    """Per ``http_request`` node id: a canonical text of everything that decides where its
    requests go. Two targets send their requests to the same places if these are equal."""
    graph = graph_of(target)
    if graph is None:
        return {}
    nodes = {str(n.get("id")): n for n in graph.get("nodes") or [] if isinstance(n, Mapping)}
    found: dict[str, str] = {}
    for node_id, node in _http_nodes(graph).items():
        url = str(node.get("url", ""))
        decides: dict[str, Any] = {"url": url}
        if "item" in url:
            above = _upstream(graph, node_id)
            decides["upstream"] = sorted(
                json.dumps(nodes.get(n), sort_keys=True, default=str) for n in above
            )
            decides["edges"] = sorted(
                json.dumps(e, sort_keys=True, default=str)
                for e in graph.get("edges") or []
                if isinstance(e, Mapping) and str(e.get("target")) in above | {node_id}
            )
        if "trigger" in url:
            decides["trigger_name"] = trigger_name
        found[node_id] = json.dumps(decides, sort_keys=True, default=str)
    return found


def moved(before: Mapping[str, str], after: Mapping[str, str]) -> bool:
    """Does ``after`` send a request somewhere ``before`` did not decide? A new node or a
    node whose destination changed; removing a node sends nothing anywhere new."""
    return any(before.get(node_id) != text for node_id, text in after.items())


def reads_events(target: Mapping[str, Any] | None) -> bool:
    """Does some ``http_request`` node's URL depend on the events (``event`` or ``item``)?
    Then whoever chooses the events (where a source reads, a webhook's signing secret)
    chooses where its requests go too."""
    graph = graph_of(target)
    if graph is None:
        return False
    return any(
        "event" in str(node.get("url", "")) or "item" in str(node.get("url", ""))
        for node in _http_nodes(graph).values()
    )
