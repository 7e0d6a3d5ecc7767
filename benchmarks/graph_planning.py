"""What planning a run graph costs: per node visit (one node, one item), for a chain of
``log`` nodes and for the largest graph the API accepts; and what the earlier planning
(the whole graph planned again after every node, all in one workflow task) cost. Prints JSON.

The figures are this thread's CPU time (``time.thread_time``), medians over ``--rounds``.
A workflow task that runs longer than 2 s trips the SDK's deadlock detector: the old
planning of a chain of ``log`` nodes (no await between them) did all of its plans in one
task.

Run from the repository root: ``.venv/bin/python -m benchmarks.graph_planning [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from tests.graphs import largest_graph
from triggers.contracts.run import NodeDone, PlanGraphInput
from triggers.core.conditions import TriggerInfo
from triggers.core.events import Event
from triggers.core.graph import Graph, items_of, parse_graph, plan
from triggers.core.graph_steps import plan_step

TRIGGER = TriggerInfo("t-1", "bench", "webhook")
DEADLOCK_SECONDS = 2.0


def chain(n: int) -> dict[str, Any]:
    return {
        "nodes": [
            {"id": f"n{i}", "type": "log", "message": f'"step {i}: " + string(item.i)'}
            for i in range(n)
        ],
        "edges": [{"source": f"n{i}", "target": f"n{i + 1}"} for i in range(n - 1)],
    }


def event(items: int) -> Event:
    data = [{"i": i, "repository": {"full_name": "acme/app"}} for i in range(items)]
    return Event(id="e", key="e", source="s", type="t", time="2024-05-01T00:00:00Z", data=data)


def cpu(fn: Callable[[], Any], rounds: int) -> float:
    fn()  # compile caches warm
    times = []
    for _ in range(rounds):
        start = time.thread_time()
        fn()
        times.append(time.thread_time() - start)
    return statistics.median(times)


def run_steps(graph: dict[str, Any], ev: Event) -> int:
    """Every planning step of a run, as the worker makes them (the planner kept between
    steps); the answer to each waited-for node is its items, unchanged. Node visits."""
    inp = PlanGraphInput(graph=graph, event=ev, trigger=TRIGGER)
    planner = None
    visits = 0
    while True:
        step, planner = plan_step(inp, planner)
        visits += sum(len(run.items_in) for run in step.finished)
        if step.waiting is None:
            return visits
        inp.done = [*inp.done, NodeDone(step.waiting, None)]
        inp.calls_made += len(step.calls)
        inp.outcomes_known += len(step.finished)


def old_planning(graph: Graph, ev: Event) -> None:
    """The earlier loop: plan everything, make the first node's calls, plan again."""
    done: set[str] = set()
    while True:
        current = plan(graph, items_of(ev), ev, TRIGGER)
        pending = [c for c in current.calls if c.node_id not in done]
        if not pending:
            return
        done.add(pending[0].node_id)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--items", type=int, default=5)
    args = p.parse_args()
    ev = event(args.items)
    out: dict[str, Any] = {"items": args.items, "rounds": args.rounds, "chains": []}
    for n in (10, 30, 100, 200):
        graph = chain(n)
        visits = run_steps(graph, ev)
        now = cpu(lambda graph=graph: run_steps(graph, ev), args.rounds)
        one_plan = cpu(lambda graph=graph: plan(parse_graph(graph), items_of(ev), ev, TRIGGER), 1)
        row: dict[str, Any] = {
            "log_nodes": n,
            "node_visits": visits,
            "plan_cpu_s": round(now, 4),
            "per_visit_us": round(now / visits * 1e6, 1),
            # The old loop planned the whole graph n + 1 times in one workflow task.
            "old_one_task_cpu_s_estimated": round(one_plan * (n + 1), 2),
        }
        if n <= 30:
            parsed = parse_graph(graph)
            old = cpu(lambda parsed=parsed: old_planning(parsed, ev), 1)
            row["old_one_task_cpu_s_measured"] = round(old, 2)
        row["old_over_deadlock_limit"] = row["old_one_task_cpu_s_estimated"] > DEADLOCK_SECONDS
        out["chains"].append(row)
    big = largest_graph()
    visits = run_steps(big, ev)
    now = cpu(lambda: run_steps(big, ev), args.rounds)
    out["largest_graph"] = {
        "nodes": len(big["nodes"]),
        "edges": len(big["edges"]),
        "json_bytes": len(json.dumps(big, separators=(",", ":"))),
        "node_visits": visits,
        "plan_cpu_s": round(now, 4),
        "per_visit_us": round(now / visits * 1e6, 1),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
