"""Planning a graph run step by step (``triggers.core.graph_steps``), without Temporal: kept
planners and fresh ones give the same steps, and planning is bounded."""

from __future__ import annotations

from typing import Any

from triggers.contracts.names import GRAPH_LIMIT
from triggers.contracts.run import NodeDone, PlanGraphInput, PlanGraphResult
from triggers.core.conditions import TriggerInfo
from triggers.core.events import Event
from triggers.core.graph import MAX_NODE_ITEMS, Planner, items_of, parse_graph, plan
from triggers.core.graph_steps import plan_step

TRIGGER = TriggerInfo(id="t1", name="steps", provider="webhook")
GRAPH: dict[str, Any] = {
    "nodes": [
        {"id": "say", "type": "log", "message": '"got " + string(item.i)'},
        {"id": "call", "type": "http_request", "url": "'https://example.com/' + string(item.i)"},
        {"id": "ok", "type": "filter", "condition": "item.status == 200"},
        {"id": "wait", "type": "delay", "duration": 1},
        {"id": "done", "type": "log", "message": '"done " + string(item.status)'},
    ],
    "edges": [
        {"source": "say", "target": "call"},
        {"source": "call", "target": "ok"},
        {"source": "ok", "target": "wait"},
        {"source": "wait", "target": "done"},
    ],
}


def event(items: list[Any]) -> Event:
    return Event(id="e1", key="e1", source="s", type="t", time="2024-05-01T00:00:00Z", data=items)


def step_of(
    inp: PlanGraphInput, planner: Planner | None = None, *, budget_seconds: float | None = None
) -> tuple[PlanGraphResult, Planner | None]:
    """A step as the activity answers it (the core's step in the contract's result)."""
    step, kept = plan_step(inp, planner, budget_seconds=budget_seconds)
    return PlanGraphResult.of(step), kept


def run_steps(items: list[Any], *, keep: bool) -> list[PlanGraphResult]:
    """Every step of a run, answering each http call with status 200 for even items."""
    inp = PlanGraphInput(graph=GRAPH, event=event(items), trigger=TRIGGER)
    planner: Planner | None = None
    steps = []
    while True:
        step, kept = step_of(inp, planner if keep else None)
        planner = kept
        steps.append(step)
        if step.waiting is None or step.error:
            return steps
        mine = [c for c in step.calls if c.node_id == step.waiting]
        produced = (
            [{"status": 200 if c.item_index % 2 == 0 else 500} for c in mine]
            if step.waiting == "call"
            else None
        )
        inp.done = [*inp.done, NodeDone(step.waiting, produced)]
        inp.calls_made += len(step.calls)
        inp.outcomes_known += len(step.outcomes)


def test_steps_stop_at_the_nodes_the_run_waits_for() -> None:
    steps = run_steps([{"i": i} for i in range(3)], keep=True)
    assert [s.waiting for s in steps] == ["call", "wait", None]
    first = steps[0]
    assert [(c.node_id, c.item_index) for c in first.calls] == [
        ("say", 0), ("say", 1), ("say", 2), ("call", 0), ("call", 1), ("call", 2)
    ]  # fmt: skip
    assert [o.node_id for s in steps for o in s.outcomes] == ["say", "call", "ok", "wait", "done"]
    ok = next(o for o in steps[1].outcomes if o.node_id == "ok")
    assert (ok.items_in, ok.items_out) == (3, 2)
    assert [c.args["message"] for c in steps[2].calls] == ["done 200", "done 200"]


def test_a_fresh_planner_gives_the_same_steps_as_a_kept_one() -> None:
    items = [{"i": i} for i in range(4)]
    assert run_steps(items, keep=False) == run_steps(items, keep=True)
    # And the calls are those of the whole plan with the same results.
    produced = [{"status": 200 if i % 2 == 0 else 500} for i in range(4)]
    whole = plan(parse_graph(GRAPH), items_of(event(items)), event(items), TRIGGER,
                 results={"call": produced})  # fmt: skip
    assert [c for s in run_steps(items, keep=True) for c in s.calls] == whole.calls


def test_a_node_taking_too_many_items_fails_the_run_naming_it() -> None:
    step, kept = step_of(
        PlanGraphInput(graph=GRAPH, event=event(list(range(MAX_NODE_ITEMS + 1))), trigger=TRIGGER)
    )
    assert kept is None and step.error_type == GRAPH_LIMIT
    assert step.error == (
        f"node 'say': {MAX_NODE_ITEMS + 1} items reach it; a node takes at most "
        f"{MAX_NODE_ITEMS} in a run"
    )


def test_a_step_over_its_cpu_budget_fails_the_run_naming_the_node() -> None:
    items = [{"i": i} for i in range(2000)]
    step, kept = step_of(
        PlanGraphInput(graph=GRAPH, event=event(items), trigger=TRIGGER), budget_seconds=0.01
    )
    assert kept is None and step.error_type == GRAPH_LIMIT
    # Named at the node being planned; the budget can also run out while the event's items
    # are converted, before any node (a loaded machine, a collection), and then names none.
    assert step.error in (
        "planning the graph exceeded its budget (0.01 s CPU) at node 'say'",
        "planning the graph exceeded its budget (0.01 s CPU)",
    )
