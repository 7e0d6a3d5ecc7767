"""Graph runs end to end: the API, the trigger workflow, RunWorkflow executing the graph on
a real Temporal server, its ``http_request`` activity calling a real local HTTP server."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.worker import Replayer, Worker

from tests.conftest import Stack, eventually
from tests.graphs import allow_local, graph_trigger, http_node
from tests.helpers import github_body, github_trigger, outcome, post_github, result_of
from tests.local_http import LocalServer
from tests.user_workflows import GraphChild
from triggers.core.events import run_workflow_id
from workflows.run import RunWorkflow


@pytest.fixture
async def graph_stack(src_stack: Stack) -> Stack:
    """The API and a worker on the test's database (the http_request activity reads the
    owner's network allowlist there)."""
    return src_stack


def branching_graph(base: str) -> dict[str, Any]:
    return {
        "nodes": [
            {
                "id": "ours",
                "type": "filter",
                "condition": 'item.repository.full_name == "acme/app"',
            },
            {"id": "main", "type": "if", "condition": 'item.ref == "refs/heads/main"'},
            http_node("deploy", f"{base}/deploy", {"ref": "item.ref", "env": "'production'"}),
            http_node("preview", f"{base}/preview", {"ref": "item.ref", "env": "'preview'"}),
            {"id": "settle", "type": "delay", "duration": "0.2s"},
            {"id": "note", "type": "log", "message": '"deploy answered " + string(item.status)'},
        ],
        "edges": [
            {"source": "ours", "target": "main"},
            {"source": "main", "target": "deploy", "branch": "true"},
            {"source": "main", "target": "preview", "branch": "false"},
            {"source": "deploy", "target": "settle"},
            {"source": "settle", "target": "note"},
        ],
    }


async def test_filter_if_and_http_request_per_branch(
    graph_stack: Stack, ok_server: LocalServer
) -> None:
    s = graph_stack
    await allow_local(s)
    tid = (await s.create_trigger(graph_trigger(branching_graph(ok_server.url))))["id"]
    stored = (await s.http.get(f"/api/triggers/{tid}", headers=s.alice)).json()
    assert stored["target"]["kind"] == "graph" and len(stored["target"]["graph"]["nodes"]) == 6

    assert (await post_github(s.http, tid, delivery="g-main")).status_code == 202
    main = await result_of(s.client, tid, "g-main")
    assert [(r.path, json.loads(r.body)) for r in ok_server.requests] == [
        ("/deploy", {"ref": "refs/heads/main", "env": "production"})
    ]
    assert outcome(main, "deploy") == {"in": 1, "out": 1, "calls": 1}
    assert outcome(main, "preview") == {"in": 0, "out": 0, "calls": 0}
    # The log node saw the response, not the event: the deploy's answer flowed on.
    assert outcome(main, "settle") == {"in": 1, "out": 1, "calls": 1}
    assert outcome(main, "note") == {"in": 1, "out": 1, "calls": 1}
    assert main.calls == 3
    # The graph run replays: planning in the workflow is deterministic.
    history = await s.client.get_workflow_handle(run_workflow_id(tid, "g-main")).fetch_history()
    await Replayer(workflows=[RunWorkflow]).replay_workflow(history)
    timers = [e for e in history.events if e.HasField("timer_started_event_attributes")]
    assert [t.user_metadata.summary.data.decode() for t in timers] == ['"settle"']

    feature = github_body(ref="refs/heads/feature")
    assert (await post_github(s.http, tid, delivery="g-feat", body=feature)).status_code == 202
    feat = await result_of(s.client, tid, "g-feat")
    assert [(r.method, r.path, json.loads(r.body)) for r in ok_server.requests[1:]] == [
        ("POST", "/preview", {"ref": "refs/heads/feature", "env": "preview"})
    ]
    assert outcome(feat, "deploy")["calls"] == 0 and outcome(feat, "preview")["calls"] == 1
    assert outcome(feat, "note") == {"in": 0, "out": 0, "calls": 0}

    # Each http_request activity carries its node id as its summary in the history.
    history = await s.client.get_workflow_handle(run_workflow_id(tid, "g-feat")).fetch_history()
    summaries = [
        e.user_metadata.summary.data.decode()
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    assert summaries == ['"preview"']


async def test_filter_dropping_every_item_ends_without_calls(
    graph_stack: Stack, ok_server: LocalServer
) -> None:
    s = graph_stack
    await allow_local(s)
    graph = branching_graph(ok_server.url)
    graph["nodes"][0]["condition"] = 'item.repository.full_name == "someone/else"'
    tid = (await s.create_trigger(graph_trigger(graph)))["id"]
    assert (await post_github(s.http, tid, delivery="g-none")).status_code == 202
    result = await result_of(s.client, tid, "g-none")
    assert ok_server.requests == []
    assert result.calls == 0
    assert outcome(result, "ours") == {"in": 1, "out": 0, "calls": 0}
    assert all(n.items_in == 0 for n in (result.nodes or []) if n.node_id != "ours")
    desc = await s.client.get_workflow_handle(run_workflow_id(tid, "g-none")).describe()
    assert desc.status == WorkflowExecutionStatus.COMPLETED


async def test_private_address_without_allowlist_fails_the_run_naming_the_node(
    graph_stack: Stack, ok_server: LocalServer
) -> None:
    s = graph_stack
    tid = (await s.create_trigger(graph_trigger(branching_graph(ok_server.url))))["id"]
    assert (await post_github(s.http, tid, delivery="g-blocked")).status_code == 202
    handle = s.client.get_workflow_handle(run_workflow_id(tid, "g-blocked"))

    async def failed() -> BaseException | None:
        try:
            await handle.result()
        except WorkflowFailureError as err:
            return err.cause
        return None

    cause = await eventually(failed)
    assert isinstance(cause, ApplicationError) and cause.type == "NodeFailed"
    assert cause.message.startswith("node 'deploy': requests to 127.0.0.1 are refused")
    assert "loopback" in cause.message and "allowlist" in cause.message
    assert ok_server.requests == []


async def test_http_request_retries_5xx_and_passes_4xx_on(
    graph_stack: Stack, ok_server: LocalServer
) -> None:
    s = graph_stack
    await allow_local(s)
    answers = iter([500, 503, 404])

    def handler(_r: Request) -> Response:
        return JSONResponse({"n": len(ok_server.requests)}, status_code=next(answers))

    ok_server.handler = handler
    graph = {
        "nodes": [
            http_node("call", f"{ok_server.url}/flaky", {"x": "1"}, retries=2),
            {
                "id": "after",
                "type": "filter",
                "condition": "item.status == 404 && item.body.n == 3",
            },
            {"id": "note", "type": "log", "message": "'got it'"},
        ],
        "edges": [{"source": "call", "target": "after"}, {"source": "after", "target": "note"}],
    }
    tid = (await s.create_trigger(graph_trigger(graph)))["id"]
    assert (await post_github(s.http, tid, delivery="g-retry")).status_code == 202
    result = await result_of(s.client, tid, "g-retry")
    assert [r.path for r in ok_server.requests] == ["/flaky"] * 3
    assert outcome(result, "after") == {"in": 1, "out": 1, "calls": 0}
    assert outcome(result, "note")["calls"] == 1


async def test_start_workflow_node_starts_a_user_workflow(
    graph_stack: Stack, ok_server: LocalServer
) -> None:
    s = graph_stack
    await allow_local(s)
    queue = f"user-{uuid.uuid4().hex[:6]}"
    graph = {
        "nodes": [
            {
                "id": "start",
                "type": "start_workflow",
                "workflow_type": "GraphChild",
                "task_queue": queue,
                "input": '{"ref": item.ref}',
            },
            http_node("report", f"{ok_server.url}/report", {"child": "item"}),
        ],
        "edges": [{"source": "start", "target": "report"}],
    }
    await s.claim_queues(queue)
    tid = (await s.create_trigger(graph_trigger(graph)))["id"]
    async with Worker(s.client, task_queue=queue, workflows=[GraphChild]):
        assert (await post_github(s.http, tid, delivery="g-child")).status_code == 202
        result = await result_of(s.client, tid, "g-child")
    child_id = f"{run_workflow_id(tid, 'g-child')}:start:0"
    desc = await s.client.get_workflow_handle(child_id).describe()
    assert desc.workflow_type == "GraphChild" and desc.task_queue == queue
    assert desc.status == WorkflowExecutionStatus.COMPLETED
    # The child's result became the item the next node sent.
    assert [json.loads(r.body) for r in ok_server.requests] == [
        {"child": {"deployed": "refs/heads/main", "by": "GraphChild"}}
    ]
    assert outcome(result, "start") == {"in": 1, "out": 1, "calls": 1}


INVALID = [
    pytest.param(
        {"nodes": [{"id": "mystery", "type": "teleport"}]},
        "node 'mystery': unknown node type",
        id="unknown-type",
    ),
    pytest.param(
        {
            "nodes": [
                {"id": "a", "type": "log", "message": "'a'"},
                {"id": "b", "type": "log", "message": "'b'"},
            ],
            "edges": [{"source": "a", "target": "b"}, {"source": "b", "target": "a"}],
        },
        "node 'a': cycle: a -> b -> a",
        id="cycle",
    ),
    pytest.param(
        {
            "nodes": [{"id": "a", "type": "log", "message": "'a'"}],
            "edges": [{"source": "a", "target": "ghost"}],
        },
        "node 'ghost': edge 'a' -> 'ghost': 'ghost' is not a node",
        id="dangling-edge",
    ),
    pytest.param(
        {"nodes": [{"id": "keep", "type": "filter", "condition": "item.ref =="}]},
        "node 'keep': condition:",
        id="bad-cel",
    ),
]


@pytest.mark.parametrize(("graph", "message"), INVALID)
async def test_invalid_graphs_answer_422_naming_the_node(
    graph_stack: Stack, graph: dict[str, Any], message: str
) -> None:
    s = graph_stack
    r = await s.http.post("/api/triggers", json=graph_trigger(graph), headers=s.alice)
    assert r.status_code == 422, r.text
    [err] = r.json()["detail"]
    assert err["loc"][:3] == ["body", "target", "graph"] and err["msg"].startswith(message)

    # The same check on update; the stored target is left alone.
    tid = (await s.create_trigger(github_trigger()))["id"]
    r = await s.http.patch(
        f"/api/triggers/{tid}",
        json={"target": {"kind": "graph", "graph": graph}},
        headers=s.alice,
    )
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["msg"].startswith(message)
    stored = (await s.http.get(f"/api/triggers/{tid}", headers=s.alice)).json()
    assert stored["target"]["kind"] == "run"
