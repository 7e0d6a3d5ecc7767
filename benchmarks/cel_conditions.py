"""Time CEL compile and evaluation for a typical condition and a small plan, and what the
evaluation budget costs (``triggers.core.cel_budget``) next to celpy's own interpreter and to a
``sys.settrace`` budget; prints JSON.

Run from the repository root: ``.venv/bin/python -m benchmarks.cel_conditions [--n 2000]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import celpy
from celpy import celtypes

from triggers.core.conditions import (
    EVALUATION_BUDGET_SECONDS,
    TriggerInfo,
    compile_expression,
    decide_run,
    evaluate_condition,
    event_activation,
)
from triggers.core.events import Event
from triggers.core.graph import items_of, parse_graph, plan

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


def compare_us(
    variants: dict[str, Callable[[], Any]], n: int, rounds: int = 15
) -> dict[str, float]:
    """Median CPU microseconds a call of each variant, rounds interleaved so that load from
    elsewhere on the machine falls on all of them alike."""
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for fn in variants.values():
        fn()
    for _ in range(rounds):
        for name, fn in variants.items():
            start = time.thread_time()
            for _ in range(n):
                fn()
            samples[name].append((time.thread_time() - start) / n * 1e6)
    return {name: round(statistics.median(v), 1) for name, v in samples.items()}


def under_trace(fn: Callable[[], Any], tracer: Callable[[], Any]) -> Callable[[], Any]:
    """``fn`` with a global trace function installed for the call (the settrace budget)."""

    def traced() -> Any:
        sys.settrace(tracer())
        try:
            return fn()
        finally:
            sys.settrace(None)

    return traced


def noop_tracer() -> Any:
    def trace(frame: FrameType, event: str, arg: Any) -> None:
        return None

    return trace


def clock_tracer() -> Any:
    """What a settrace budget does: the thread's CPU clock on every call."""
    deadline = time.thread_time() + 10

    def trace(frame: FrameType, event: str, arg: Any) -> None:
        if time.thread_time() > deadline:
            raise RuntimeError("over budget")
        return None

    return trace


def celpy_constructors(value: Any) -> Any:
    """The conversion as it was: celpy's own constructors (~6 us an int)."""
    if isinstance(value, dict):
        return celtypes.MapType(
            {celpy_constructors(k): celpy_constructors(v) for k, v in value.items()}
        )
    if isinstance(value, list):
        return celtypes.ListType([celpy_constructors(v) for v in value])
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    if isinstance(value, int):
        return celtypes.IntType(value)
    return celtypes.StringType(value) if isinstance(value, str) else value


def cpu_ms(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.thread_time()
    result = fn()
    return result, round((time.thread_time() - start) * 1000, 1)


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
    stock_env = celpy.Environment()  # celpy's interpreter without our budget checks
    stock = stock_env.program(stock_env.compile(CONDITION))
    rounds_n = max(n // 20, 20)
    budget = EVALUATION_BUDGET_SECONDS

    def evaluate() -> Any:
        return compiled._program.evaluate(activation)

    eval_cost = compare_us(
        {
            "celpy_interpreter": lambda: stock.evaluate(activation),
            "ours_no_budget": evaluate,
            "ours_with_budget": lambda: decide_run(
                CONDITION, None, EVENT, TRIGGER, budget_seconds=budget
            ),
            "ours_decide_run_no_budget": lambda: decide_run(CONDITION, None, EVENT, TRIGGER),
            "settrace_noop": under_trace(evaluate, noop_tracer),
            "settrace_clock_each_call": under_trace(evaluate, clock_tracer),
        },
        rounds_n,
    )
    base = eval_cost["celpy_interpreter"]
    decide_base = eval_cost["ours_decide_run_no_budget"]
    big = Event(**{**EVENT.__dict__, "data": {"items": list(range(10_000, 43_000))}})
    heavy, heavy_ms = cpu_ms(
        lambda: decide_run(
            "event.data.items.all(x, x >= 0)", None, big, TRIGGER, budget_seconds=budget
        )
    )
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
        "budget_seconds": budget,
        # CPU us a call, medians of interleaved rounds: the evaluation alone (prepared
        # activation) with each mechanism, and decide_run (converts the event) with and
        # without a budget.
        "evaluate_cpu_us": eval_cost,
        "overhead_pct": {
            "ours_no_budget_vs_celpy": round((eval_cost["ours_no_budget"] / base - 1) * 100, 1),
            "decide_run_budget_vs_none": round(
                (eval_cost["ours_with_budget"] / decide_base - 1) * 100, 1
            ),
            "settrace_noop_vs_celpy": round((eval_cost["settrace_noop"] / base - 1) * 100, 1),
            "settrace_clock_vs_celpy": round(
                (eval_cost["settrace_clock_each_call"] / base - 1) * 100, 1
            ),
        },
        "body_199kb_of_ints": {
            "json_bytes": len(json.dumps(big.data, separators=(",", ":"))),
            "to_cel_ms": cpu_ms(lambda: event_activation(big, TRIGGER))[1],
            "celpy_constructors_ms": cpu_ms(lambda: celpy_constructors(big.data))[1],
            "heavy_condition_result": heavy.outcome.error,
            "heavy_condition_cpu_ms": heavy_ms,
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
