"""The run graph: validation errors that name the node, and the pure plan over items."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from typing import Any

import pytest
from fastapi.exceptions import RequestValidationError

from api.validation import clean_errors, graph_or_422
from triggers.core.conditions import ConditionOutcome, TriggerInfo, compile_expression
from triggers.core.events import Event
from triggers.core.graph import (
    Call,
    Graph,
    GraphError,
    ItemError,
    dry_run,
    items_of,
    parse_graph,
    plan,
    validate_graph,
)

TRIGGER = TriggerInfo(id="t-1", name="shop", provider="webhook")
ORDERS = [
    {"id": "a", "amount": 5},
    {"id": "b", "amount": 0},
    {"id": "c", "amount": 150},
    {"id": "d"},
]
EVENT = Event(
    id="evt-1",
    key="evt-1",
    source="shop",
    type="orders.created",
    time="2024-01-01T00:00:00Z",
    data=ORDERS,
)


def node(id: str, type: str, **config: Any) -> dict[str, Any]:
    return {"id": id, "type": type, **config}


def edge(source: str, target: str, branch: str | None = None) -> dict[str, Any]:
    return {"source": source, "target": target, **({"branch": branch} if branch else {})}


def graph_error(data: Any) -> GraphError:
    with pytest.raises(GraphError) as caught:
        parse_graph(data)
    return caught.value


def always(id: str) -> dict[str, Any]:
    return node(id, "filter", condition="true")


# -- validation ---------------------------------------------------------------------------


def test_unknown_or_missing_node_type_names_the_node() -> None:
    err = graph_error({"nodes": [always("ok"), node("mystery", "teleport")]})
    assert (err.node_id, err.loc) == ("mystery", ("nodes", 1, "type"))
    assert err.message == (
        "unknown node type; known: filter, if, set, http_request, start_workflow, delay, log"
    )
    assert str(err).startswith("node 'mystery': unknown node type")
    err = graph_error({"nodes": [{"id": "untyped", "condition": "true"}]})
    assert (err.node_id, err.loc, err.message) == (
        "untyped",
        ("nodes", 0, "type"),
        "node type is missing",
    )


def test_config_errors_name_the_node_and_field() -> None:
    err = graph_error({"nodes": [node("f", "filter", condition="true", extra=1)]})
    assert (err.node_id, err.loc, err.message) == (
        "f",
        ("nodes", 0, "extra"),
        "extra: Extra inputs are not permitted",
    )
    err = graph_error({"nodes": [node("w", "delay", duration="soon")]})
    assert (err.node_id, err.loc) == ("w", ("nodes", 0, "duration"))
    assert err.message == "duration: duration must be seconds or a text like '90s' or '1h30m'"
    err = graph_error({"nodes": [node("s", "set", values={"a..b": "1"})]})
    assert (err.node_id, err.message) == (
        "s",
        "values: field names are non-empty, dot-separated names",
    )
    err = graph_error({"nodes": [node("h", "http_request", url="'u'", method="FETCH")]})
    assert (err.node_id, err.loc) == ("h", ("nodes", 0, "method"))


def test_a_bad_expression_names_the_node_field_and_position() -> None:
    data = {
        "nodes": [
            always("first"),
            node("tag", "set", values={"ok": "1", "broken": "item.a +"}),
        ],
        "edges": [edge("first", "tag")],
    }
    err = graph_error(data)
    assert (err.node_id, err.loc, err.position) == ("tag", ("nodes", 1, "values", "broken"), (1, 8))
    assert err.message.startswith(
        "values.broken: line 1, column 8: Syntax error: unexpected end of expression"
    )
    body = node("h", "http_request", url="'https://x'", body={"n": "item.n *"})
    assert graph_error({"nodes": [body]}).loc == ("nodes", 0, "body", "n")
    assert graph_error({"nodes": [node("l", "log", message="'a' +")]}).node_id == "l"


def test_a_cycle_names_a_node_on_it() -> None:
    data = {
        "nodes": [always("entry"), always("a"), always("b"), always("c")],
        "edges": [edge("entry", "a"), edge("a", "b"), edge("b", "c"), edge("c", "a")],
    }
    err = graph_error(data)
    assert (err.node_id, err.message, err.loc) == ("a", "cycle: a -> b -> c -> a", ("nodes", 1))
    err = graph_error({"nodes": [always("self")], "edges": [edge("self", "self")]})
    assert (err.node_id, err.message) == ("self", "cycle: self -> self")


def test_a_dangling_edge_names_the_missing_node() -> None:
    err = graph_error({"nodes": [always("a")], "edges": [edge("a", "ghost")]})
    assert (err.node_id, err.loc) == ("ghost", ("edges", 0, "target"))
    assert err.message == "edge 'a' -> 'ghost': 'ghost' is not a node"
    err = graph_error({"nodes": [always("a")], "edges": [edge("phantom", "a")]})
    assert (err.node_id, err.loc) == ("phantom", ("edges", 0, "source"))


def test_if_edges_need_a_branch_and_an_if_needs_edges() -> None:
    cond = node("big", "if", condition="item.amount > 100")
    err = graph_error({"nodes": [cond, always("x")], "edges": [edge("big", "x")]})
    assert (err.node_id, err.loc) == ("big", ("edges", 0, "branch"))
    assert err.message == "edges from an if node need a branch, 'true' or 'false'"
    err = graph_error({"nodes": [cond]})
    assert (err.node_id, err.message) == ("big", "if node has no 'true' or 'false' edge")
    err = graph_error({"nodes": [always("a"), always("b")], "edges": [edge("a", "b", "true")]})
    assert (err.node_id, err.message) == ("a", "only edges from an if node have a branch")


def test_duplicate_ids_and_edges_are_rejected() -> None:
    err = graph_error({"nodes": [always("a"), always("a")]})
    assert (err.node_id, err.loc, err.message) == ("a", ("nodes", 1, "id"), "duplicate node id")
    data = {"nodes": [always("a"), always("b")], "edges": [edge("a", "b"), edge("a", "b")]}
    assert graph_error(data).message == "duplicate edge to 'b'"


def test_invalid_graph_answers_422_naming_the_node() -> None:
    with pytest.raises(RequestValidationError) as caught:
        graph_or_422({"nodes": [always("a"), node("b", "frobnicate")]})
    assert clean_errors(caught.value.errors()) == [
        {
            "loc": ["body", "graph", "nodes", 1, "type"],
            "msg": "node 'b': unknown node type; known: filter, if, set, http_request, "
            "start_workflow, delay, log",
            "type": "graph",
        }
    ]


# -- the plan -----------------------------------------------------------------------------

BRANCHY = {
    "nodes": [
        node("positive", "filter", condition="item.amount > 0"),
        node("big", "if", condition="item.amount >= 100"),
        node("tag_big", "set", values={"size": "'big'", "meta.by": "trigger.name"}),
        node("tag_small", "set", values={"size": "'small'", "double": "item.amount * 2"}),
    ],
    "edges": [
        edge("positive", "big"),
        edge("big", "tag_big", "true"),
        edge("big", "tag_small", "false"),
    ],
}


def test_filter_then_if_then_two_set_branches() -> None:
    p = plan(parse_graph(BRANCHY), items_of(EVENT), EVENT, TRIGGER)
    assert [run.node_id for run in p.nodes] == ["positive", "big", "tag_big", "tag_small"]
    positive = p.node("positive")
    assert positive.items_in == ORDERS
    assert positive.outputs == {"out": [ORDERS[0], ORDERS[2]]}
    # The item without "amount" fails the filter: an error for that item, which goes no further.
    assert positive.errors == [ItemError(3, "no such member in mapping: 'amount'")]
    assert p.node("big").outputs == {"true": [ORDERS[2]], "false": [ORDERS[0]]}
    assert p.node("tag_big").outputs == {
        "out": [{"id": "c", "amount": 150, "size": "big", "meta": {"by": "shop"}}]
    }
    assert p.node("tag_small").items_out == [
        {"id": "a", "amount": 5, "size": "small", "double": 10}
    ]
    assert p.calls == [] and p.error is None and p.event_id == "evt-1"
    assert p.executed == ["positive", "big", "tag_big", "tag_small"]
    assert EVENT.data == ORDERS and "size" not in ORDERS[2]  # the input was not changed


def test_a_filter_that_drops_everything_stops_the_graph() -> None:
    data = {
        "nodes": [
            node("none", "filter", condition="item.amount > 1000"),
            node("tag", "set", values={"x": "1"}),
            node("notify", "log", message="'never'"),
        ],
        "edges": [edge("none", "tag"), edge("tag", "notify")],
    }
    p = plan(parse_graph(data), items_of(EVENT), EVENT, TRIGGER)
    assert p.node("none").items_out == [] and p.node("none").items_in == ORDERS
    assert p.node("tag").items_in == [] and p.node("notify").items_in == []
    assert p.executed == ["none"]
    assert p.calls == []


def test_set_sees_the_incoming_item_and_reports_bad_items() -> None:
    swap = parse_graph({"nodes": [node("swap", "set", values={"a": "item.b", "b": "item.a"})]})
    items = [{"a": 1, "b": 2}, "not a map", {"a": 3}]
    run = plan(swap, items, EVENT, TRIGGER).node("swap")
    assert run.items_out == [{"a": 2, "b": 1}]
    assert run.errors == [
        ItemError(1, "set needs a map item, not string"),
        ItemError(2, "no such member in mapping: 'b'"),
    ]
    nested = parse_graph({"nodes": [node("n", "set", values={"x.y": "1", "s.t": "2"})]})
    run = plan(nested, [{"x": {"z": 0}, "s": "flat"}], EVENT, TRIGGER).node("n")
    assert run.errors == [ItemError(0, "set 's.t': 's' is not a map")]


SIDE_EFFECTS = {
    "nodes": [
        node(
            "call",
            "http_request",
            method="POST",
            url="'https://api.example.com/orders/' + item.id",
            headers={"x-event": "event.type"},
            body={"total": "item.amount * 2", "who": "trigger.name"},
            timeout_seconds=5,
            retries=2,
        ),
        node(
            "raw", "http_request", url="'https://api.example.com/raw'", body="string(item.amount)"
        ),
        node(
            "child", "start_workflow", workflow_type="Fulfil", task_queue="q", input="{'o': item}"
        ),
        node("wait", "delay", duration="1h30m"),
        node("say", "log", message="'order ' + item.id", level="warning"),
    ],
    "edges": [
        edge("call", "raw"),
        edge("raw", "child"),
        edge("child", "wait"),
        edge("wait", "say"),
    ],
}


def test_side_effect_nodes_record_the_calls_they_would_make() -> None:
    items = [{"id": "a", "amount": 5}]
    p = plan(parse_graph(SIDE_EFFECTS), items, EVENT, TRIGGER)
    assert p.calls == [
        Call(
            "call",
            "http_request",
            0,
            {
                "method": "POST",
                "url": "https://api.example.com/orders/a",
                "headers": {"x-event": "orders.created"},
                "body": {"total": 10, "who": "shop"},
                "timeout_seconds": 5.0,
                "retries": 2,
            },
        ),
        Call(
            "raw",
            "http_request",
            0,
            {
                "method": "GET",
                "url": "https://api.example.com/raw",
                "headers": {},
                "body": "5",
                "timeout_seconds": 30.0,
                "retries": 0,
            },
        ),
        Call(
            "child",
            "start_workflow",
            0,
            {"workflow_type": "Fulfil", "task_queue": "q", "input": {"o": items[0]}},
        ),
        Call("wait", "delay", 0, {"seconds": 5400.0}),
        Call("say", "log", 0, {"level": "warning", "message": "order a"}),
    ]
    # Side-effect nodes pass their items on unchanged in the plan.
    assert p.node("say").items_out == items


def test_a_side_effect_whose_inputs_fail_is_an_item_error_and_no_call() -> None:
    g = parse_graph({"nodes": [node("say", "log", message="item.amount")]})
    run = plan(g, [{"amount": 1}], EVENT, TRIGGER)
    assert run.calls == []
    assert run.node("say").errors == [ItemError(0, "message must give a string, not int")]


def test_known_results_replace_what_a_side_effect_node_passes_on() -> None:
    data = {
        "nodes": [
            node("fetch", "http_request", url="'https://api.example.com/x'"),
            node("keep", "filter", condition="item.status == 200"),
        ],
        "edges": [edge("fetch", "keep")],
    }
    responses = [{"status": 200, "body": "ok"}, {"status": 500}]
    p = plan(parse_graph(data), [{"id": 1}], EVENT, TRIGGER, results={"fetch": responses})
    assert len(p.calls) == 1
    assert p.node("fetch").items_out == responses
    assert p.node("keep").items_out == [{"status": 200, "body": "ok"}]


def test_items_join_in_parent_order_then_edge_order() -> None:
    data = {
        "nodes": [
            node("merge", "log", message="'m'"),
            node("odd", "filter", condition="item % 2 == 1"),
            node("even", "filter", condition="item % 2 == 0"),
        ],
        "edges": [edge("even", "merge"), edge("odd", "merge")],
    }
    p = plan(parse_graph(data), [1, 2, 3, 4], EVENT, TRIGGER)
    # Topological ties break by position in "nodes": odd runs before even.
    assert [run.node_id for run in p.nodes] == ["odd", "even", "merge"]
    assert p.node("merge").items_in == [1, 3, 2, 4]


def test_the_plan_is_deterministic() -> None:
    g = parse_graph(BRANCHY)
    first = plan(g, items_of(EVENT), EVENT, TRIGGER)
    again = plan(parse_graph(json.loads(json.dumps(BRANCHY))), items_of(EVENT), EVENT, TRIGGER)
    assert first == again
    assert json.dumps(asdict(first)) == json.dumps(asdict(again))
    side = parse_graph(SIDE_EFFECTS)
    assert plan(side, ORDERS[:1], EVENT, TRIGGER) == plan(side, ORDERS[:1], EVENT, TRIGGER)


def test_items_are_the_data_list_or_the_data() -> None:
    assert items_of(EVENT) == ORDERS
    assert items_of(replace(EVENT, data={"one": 1})) == [{"one": 1}]
    assert items_of(replace(EVENT, data=None)) == [None]


def test_data_that_is_not_json_makes_a_plan_error() -> None:
    odd = replace(EVENT, data=[{1, 2}])
    p = plan(parse_graph(BRANCHY), items_of(odd), odd, TRIGGER)
    assert (p.error, p.nodes, p.calls) == ("event: a set cannot be given to an expression", [], [])


def test_dry_run_uses_the_condition_then_the_plan() -> None:
    g = parse_graph(BRANCHY)
    dropped = dry_run(EVENT, TRIGGER, condition=compile_expression("event.type == 'x'"), graph=g)
    assert (dropped.would_start, dropped.plan) == (False, None)
    assert dropped.condition == ConditionOutcome("dropped", None, "evt-1")
    failed = dry_run(EVENT, TRIGGER, condition=compile_expression("event.nope"), graph=g)
    assert failed.condition == ConditionOutcome(
        "error", "no such member in mapping: 'nope'", "evt-1"
    )
    assert failed.would_start is False
    passed = dry_run(EVENT, TRIGGER, condition=compile_expression("size(event.data) == 4"), graph=g)
    assert passed.would_start is True
    assert passed.plan == plan(g, items_of(EVENT), EVENT, TRIGGER)
    assert dry_run(EVENT, TRIGGER, condition=None, graph=None).plan is None


def test_validate_graph_accepts_a_built_graph() -> None:
    g = Graph.model_validate(BRANCHY)
    validate_graph(g)
    assert g.nodes[1].type == "if"
