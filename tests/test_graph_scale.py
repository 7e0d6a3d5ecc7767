"""Graphs at the size the API accepts: they run to the end on a real Temporal server.

Planning a node (its CEL over each item) costs about 0.2 ms CPU an item in celpy; a
workflow task that plans a whole graph (or, as before, re-plans it after every node)
trips the SDK's deadlock detector ("[TMPRL1101] Potential deadlock detected") and the run
never finishes. Planning runs in a local activity now. Saved histories of graph runs
(``tests/histories/run_graph_v1.json``: planning in the workflow, before the change;
``run_graph_v2.json``: in the local activity) replay in ``test_replay.py``; save a new one
(never edit old ones) with ``TRIGGERS_SAVE_HISTORY_AS=run_graph_vN.json pytest
tests/test_graph_scale.py -k fresh_graph``.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.worker import Replayer

from tests.conftest import Stack, eventually, stack_with_worker
from tests.graphs import allow_local, graph_trigger, http_node, largest_graph
from tests.helpers import post_github
from tests.local_http import LocalServer
from triggers.contracts.run import RunResult
from triggers.core.events import run_workflow_id
from triggers.core.graph import MAX_EDGES, MAX_GRAPH_BYTES, MAX_NODES, MAX_VISITS
from workflows.run import RunWorkflow
from workflows.trigger import TriggerWorkflow

HISTORIES = Path(__file__).parent / "histories"
ITEMS = [{"i": i, "repository": {"full_name": "acme/app"}} for i in range(5)]


@pytest.fixture
async def graph_stack(sqlite_url: str, client: Client, secret_keys: str) -> AsyncIterator[Stack]:
    """The API and a worker on the test's database (http_request reads the allowlist there)."""
    async with stack_with_worker(sqlite_url, client, secret_keys) as s:
        yield s


def log_chain(n: int) -> dict[str, Any]:
    return {
        "nodes": [
            {"id": f"n{i}", "type": "log", "message": f'"step {i}: " + string(item.i)'}
            for i in range(n)
        ],
        "edges": [{"source": f"n{i}", "target": f"n{i + 1}"} for i in range(n - 1)],
    }


async def run_graph(s: Stack, graph: dict[str, Any], delivery: str) -> Any:
    tid = (await s.create_trigger(graph_trigger(graph)))["id"]
    body = json.dumps(ITEMS).encode()
    assert (await post_github(s.http, tid, delivery=delivery, body=body)).status_code == 202
    return tid, await result_of_within(s, tid, delivery, timeout=120)


async def result_of_within(s: Stack, tid: str, delivery: str, *, timeout: float) -> RunResult:
    handle = s.client.get_workflow_handle(run_workflow_id(tid, delivery), result_type=RunResult)

    async def done() -> RunResult:
        return await handle.result()

    return await eventually(done, timeout=timeout, interval=0.2)


async def test_chain_of_200_log_nodes_over_5_items_completes(graph_stack: Stack) -> None:
    s = graph_stack
    tid, result = await run_graph(s, log_chain(MAX_NODES), "chain-200")
    assert [n.node_id for n in result.nodes] == [f"n{i}" for i in range(MAX_NODES)]
    assert all((n.items_in, n.items_out, n.calls) == (5, 5, 5) for n in result.nodes)
    assert result.calls == 5 * MAX_NODES
    history = await s.client.get_workflow_handle(run_workflow_id(tid, "chain-200")).fetch_history()
    # No workflow task failed on the way (a deadlock shows up as a failed task and a retry).
    assert not [e for e in history.events if e.HasField("workflow_task_failed_event_attributes")]
    await Replayer(workflows=[RunWorkflow]).replay_workflow(history)


async def test_largest_graph_the_api_accepts_runs(graph_stack: Stack) -> None:
    s = graph_stack
    graph = largest_graph()
    assert len(graph["nodes"]) == MAX_NODES and len(graph["edges"]) == MAX_EDGES
    compact = len(json.dumps(graph, separators=(",", ":")))
    assert MAX_GRAPH_BYTES - 100 < compact <= MAX_GRAPH_BYTES
    _tid, result = await run_graph(s, graph, "largest")
    assert len(result.nodes) == MAX_NODES
    # Every item passed every filter: each node got each item once per path to it.
    visits = sum(n.items_in for n in result.nodes)
    assert MAX_VISITS * len(ITEMS) * 0.8 < visits <= MAX_VISITS * len(ITEMS)
    assert all(n.errors == [] for n in result.nodes)


async def test_graphs_beyond_the_bounds_answer_422(graph_stack: Stack) -> None:
    s = graph_stack
    # Layers of two nodes, each linked to both of the next layer: an item reaches layer k
    # along 2**k paths, so the last nodes would get each item about 2**100 times.
    layers = MAX_NODES // 2
    nodes = [
        {"id": f"l{k}{side}", "type": "log", "message": "'x'"}
        for k in range(layers)
        for side in "ab"
    ]
    edges = [
        {"source": f"l{k}{a}", "target": f"l{k + 1}{b}"}
        for k in range(layers - 1)
        for a in "ab"
        for b in "ab"
    ]
    r = await s.http.post(
        "/api/triggers", json=graph_trigger({"nodes": nodes, "edges": edges}), headers=s.alice
    )
    assert r.status_code == 422, r.text
    msg = r.json()["detail"][0]["msg"]
    assert f"more than {MAX_VISITS} node visits" in msg, msg

    big = log_chain(3)
    big["nodes"][0]["message"] = json.dumps("x" * MAX_GRAPH_BYTES)
    r = await s.http.post("/api/triggers", json=graph_trigger(big), headers=s.alice)
    assert r.status_code == 422, r.text
    assert f"at most {MAX_GRAPH_BYTES} bytes" in r.json()["detail"][0]["msg"]


def history_graph(base: str) -> dict[str, Any]:
    """Every node kind over several items, for the saved-history replay."""
    return {
        "nodes": [
            {"id": "tag", "type": "set", "values": {"n": "item.i * 10"}},
            {"id": "some", "type": "filter", "condition": "item.i < 4"},
            {"id": "even", "type": "if", "condition": "item.i % 2 == 0"},
            http_node("call", f"{base}/even", {"n": "item.n"}),
            {"id": "odd", "type": "log", "message": '"odd " + string(item.i)'},
            {"id": "wait", "type": "delay", "duration": "0.1s"},
            {"id": "said", "type": "log", "message": '"answered " + string(item.status)'},
        ],
        "edges": [
            {"source": "tag", "target": "some"},
            {"source": "some", "target": "even"},
            {"source": "even", "target": "call", "branch": "true"},
            {"source": "even", "target": "odd", "branch": "false"},
            {"source": "call", "target": "wait"},
            {"source": "wait", "target": "said"},
        ],
    }


async def test_fresh_graph_run_history_replays(graph_stack: Stack, ok_server: LocalServer) -> None:
    s = graph_stack
    await allow_local(s)
    tid, result = await run_graph(s, history_graph(ok_server.url), "hist")
    assert [json.loads(r.body) for r in ok_server.requests] == [{"n": 0}, {"n": 20}]
    assert result.calls == 2 + 2 + 2 + 2
    history = await s.client.get_workflow_handle(run_workflow_id(tid, "hist")).fetch_history()
    await Replayer(workflows=[TriggerWorkflow, RunWorkflow]).replay_workflow(history)
    name = os.environ.get("TRIGGERS_SAVE_HISTORY_AS")
    if name:
        (HISTORIES / name).write_text(history.to_json())
