"""Time CEL compile and evaluation for a typical condition and a small plan; prints JSON.

Run from the repository root: ``.venv/bin/python -m benchmarks.cel_conditions [--n 2000]``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

from triggers.conditions import (
    TriggerInfo,
    compile_expression,
    evaluate_condition,
    event_activation,
)
from triggers.events import Event
from triggers.graph import items_of, parse_graph, plan

CONDITION = (
    'event.data.ref == "refs/heads/main" && event.headers["x-github-event"] == "push"'
    ' && event.data.commits.exists(c, c.message.contains("deploy"))'
)
EVENT = Event(
    id="d-1",
    key="d-1",
    source="github",
    type="push",
    time="2024-05-01T12:30:00Z",
    data={
        "ref": "refs/heads/main",
        "repository": {"full_name": "acme/app", "private": False},
        "commits": [{"id": f"c{i}", "message": "fix" if i else "deploy now"} for i in range(5)],
    },
    headers={"x-github-event": "push", "content-type": "application/json"},
)
TRIGGER = TriggerInfo("t-1", "deploys", "webhook")
GRAPH = {
    "nodes": [
        {"id": "f", "type": "filter", "condition": "item.amount > 0"},
        {"id": "big", "type": "if", "condition": "item.amount >= 100"},
        {"id": "a", "type": "set", "values": {"size": "'big'"}},
        {"id": "b", "type": "set", "values": {"size": "'small'"}},
        {"id": "log", "type": "log", "message": "'order ' + item.id"},
    ],
    "edges": [
        {"source": "f", "target": "big"},
        {"source": "big", "target": "a", "branch": "true"},
        {"source": "big", "target": "b", "branch": "false"},
        {"source": "a", "target": "log"},
        {"source": "b", "target": "log"},
    ],
}


def per_call_us(fn: Callable[[], Any], n: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return round((time.perf_counter() - start) / n * 1e6, 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    n = parser.parse_args().n
    uncached = compile_expression.__wrapped__
    compiled = compile_expression(CONDITION)
    activation = event_activation(EVENT, TRIGGER)
    orders = Event(**{**EVENT.__dict__, "data": [{"id": str(i), "amount": i} for i in range(10)]})
    graph = parse_graph(GRAPH)
    assert evaluate_condition(compiled, EVENT, TRIGGER).result == "passed"
    report = {
        "condition": CONDITION,
        "n": n,
        "compile_us": per_call_us(lambda: uncached(CONDITION), max(n // 10, 10)),
        "compile_cached_us": per_call_us(lambda: compile_expression(CONDITION), n),
        "evaluate_us": per_call_us(lambda: compiled.evaluate(activation), n),
        "evaluate_condition_us": per_call_us(
            lambda: evaluate_condition(compiled, EVENT, TRIGGER), n
        ),
        "plan_10_items_5_nodes_us": per_call_us(
            lambda: plan(graph, items_of(orders), orders, TRIGGER), max(n // 20, 10)
        ),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
