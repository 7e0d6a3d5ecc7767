"""The pure decisions shared by the trigger workflow and the dry run."""

from __future__ import annotations

import uuid

from api.dryrun import try_events
from triggers.core.conditions import (
    ConditionOutcome,
    TriggerInfo,
    compile_expression,
    decide,
    decide_run,
    evaluate_condition,
)
from triggers.core.events import Event
from triggers.infra.models import Trigger

INFO = TriggerInfo(id="t-1", name="shop", provider="webhook")


def event(data: object, id: str = "e-1") -> Event:
    return Event(id=id, key=id, source="s", type="t", time="2024-01-01T00:00:00Z", data=data)


def test_decide_equals_evaluate_condition() -> None:
    for expr in ('event.data.ref == "main"', "event.data.n > 1", "event.data.ref"):
        for data in ({"ref": "main"}, {"ref": "dev"}, {"n": 3}, None):
            ev = event(data)
            expected = evaluate_condition(compile_expression(expr), ev, INFO)
            assert decide(expr, ev, INFO) == expected
    assert decide(None, event(None), INFO) == ConditionOutcome("passed", None, "e-1")


def test_an_expression_that_does_not_compile_is_an_error() -> None:
    outcome = decide("a +", event({}), INFO)
    assert outcome.result == "error" and "line 1" in (outcome.error or "")


def test_decide_run_maps_the_input_of_passing_events_only() -> None:
    mapping = '{"ref": event.data.ref, "who": trigger.name}'
    ok = decide_run("has(event.data.ref)", mapping, event({"ref": "r"}), INFO)
    assert ok.would_start and ok.mapped and ok.input == {"ref": "r", "who": "shop"}
    dropped = decide_run("has(event.data.ref)", mapping, event({}), INFO)
    assert not dropped.would_start and not dropped.mapped
    assert dropped.outcome.result == "dropped"
    failed = decide_run(None, mapping, event({}), INFO)
    assert failed.outcome.result == "error" and not failed.would_start
    assert (failed.outcome.error or "").startswith("input mapping:")
    plain = decide_run(None, None, event({}), INFO)
    assert plain.would_start and not plain.mapped


def test_graph_targets_show_their_plan() -> None:
    graph = {
        "nodes": [
            {"id": "big", "type": "filter", "condition": "item.amount > 100"},
            {"id": "say", "type": "log", "message": "'big ' + item.id"},
        ],
        "edges": [{"source": "big", "target": "say"}],
    }
    trigger = Trigger(
        id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        name="orders",
        provider="webhook",
        condition={"expression": "size(event.data) > 0"},
        target={"kind": "graph", "graph": graph},
    )
    orders = [{"id": "a", "amount": 5}, {"id": "c", "amount": 150}]
    (passed, dropped) = try_events(trigger, [(event(orders), False), (event([], "e-2"), False)])
    assert passed.would_start and passed.graph is not None
    assert passed.graph.executed == ["big", "say"]
    assert passed.graph.nodes[0].items_out == [{"id": "c", "amount": 150}]
    (call,) = passed.graph.calls
    assert call.node_id == "say" and call.type == "log"
    assert not dropped.would_start and dropped.graph is None
    assert dropped.condition.result == "dropped"
