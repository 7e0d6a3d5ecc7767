"""A graph's ``http_request`` nodes go out through the network allowlist of whoever last
changed where they send requests (``target_principal_id``), not simply the owner's: an
editor who edits the graph cannot reach the owner's allowlisted hosts through it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError

from tests.conftest import Stack, eventually
from tests.helpers import github_trigger, post_github
from tests.local_http import LocalServer
from tests.test_graph_e2e import cel, outcome, result_of
from tests.test_source_runtime import src_stack  # noqa: F401  (fixture)
from triggers.core import graph_destinations
from triggers.core.events import run_workflow_id
from triggers.infra.db import make_engine

API = "/api/triggers"


@pytest.fixture
async def listeners() -> AsyncIterator[tuple[LocalServer, LocalServer]]:
    """The owner's endpoint, and a local one the owner allows but never chose."""
    owners, private = LocalServer(), LocalServer()
    await owners.start()
    await private.start()
    yield owners, private
    await owners.stop()
    await private.stop()


def call_graph(url: str, *, delay: bool = False) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = [
        {"id": "call", "type": "http_request", "method": "POST", "url": cel(url), "body": "item"}
    ]
    edges: list[dict[str, str]] = []
    if delay:
        nodes.insert(0, {"id": "wait", "type": "delay", "duration": "3s"})
        edges.append({"source": "wait", "target": "call"})
    return {"kind": "graph", "graph": {"nodes": nodes, "edges": edges}}


async def allow(s: Stack, user: dict[str, str], entries: list[str]) -> None:
    r = await s.http.put("/api/me/network-allowlist", json={"entries": entries}, headers=user)
    assert r.status_code == 200, r.text


async def retarget(s: Stack, tid: str, target: dict[str, Any], user: dict[str, str]) -> str:
    """PATCH the target; the target principal the answer shows."""
    r = await s.http.patch(f"{API}/{tid}", json={"target": target}, headers=user)
    assert r.status_code == 200, r.text
    principal: str = r.json()["target_principal_id"]
    return principal


async def refusal(s: Stack, tid: str, delivery: str) -> ApplicationError:
    handle = s.client.get_workflow_handle(run_workflow_id(tid, delivery))

    async def failed() -> BaseException | None:
        try:
            await handle.result()
        except WorkflowFailureError as err:
            return err.cause
        return None

    cause = await eventually(failed, timeout=30)
    assert isinstance(cause, ApplicationError) and cause.type == "NodeFailed"
    return cause


async def delivered(s: Stack, tid: str, delivery: str) -> None:
    assert (await post_github(s.http, tid, delivery=delivery)).status_code == 202


async def setup(s: Stack, url: str, **graph: Any) -> tuple[str, str, str]:
    """Alice allows 127.0.0.1 and shares a graph trigger calling ``url`` with Bob as editor;
    Bob allows nothing. Returns the trigger's, Alice's and Bob's ids."""
    await allow(s, s.alice, ["127.0.0.1"])
    bob = (await s.http.get("/api/me", headers=s.bob)).json()["id"]
    created = await s.create_trigger({**github_trigger(), "target": call_graph(url, **graph)})
    tid, alice = created["id"], created["owner_id"]
    assert created["target_principal_id"] == alice
    share = {"user": "bob", "role": "editor"}
    r = await s.http.put(f"{API}/{tid}/shares", json=share, headers=s.alice)
    assert r.status_code == 200, r.text
    return tid, alice, bob


async def test_an_editors_graph_goes_through_the_editors_allowlist(
    src_stack: Stack,  # noqa: F811
    listeners: tuple[LocalServer, LocalServer],
) -> None:
    s = src_stack
    owners, private = listeners
    tid, alice, bob = await setup(s, f"{owners.url}/hook")
    await delivered(s, tid, "p-owner")
    assert outcome(await result_of(s.client, tid, "p-owner"), "call")["calls"] == 1
    assert [r.path for r in owners.requests] == ["/hook"]

    # A change elsewhere in the target is not a change of destination: still Alice's.
    graph = call_graph(f"{owners.url}/hook")
    graph["graph"]["nodes"].append({"id": "note", "type": "log", "message": "'hi'"})
    assert await retarget(s, tid, graph, s.bob) == alice

    # Bob points the request at a local address that Alice allows and he does not.
    assert await retarget(s, tid, call_graph(f"{private.url}/steal"), s.bob) == bob
    await delivered(s, tid, "p-editor")
    cause = await refusal(s, tid, "p-editor")
    assert cause.message.startswith("node 'call': requests to 127.0.0.1 are refused")
    assert "allowlist" in cause.message
    assert private.requests == [] and len(owners.requests) == 1

    # Bob allows it himself: his graph, his allowlist, through.
    await allow(s, s.bob, ["127.0.0.1"])
    await delivered(s, tid, "p-allowed")
    assert outcome(await result_of(s.client, tid, "p-allowed"), "call")["calls"] == 1
    assert [r.path for r in private.requests] == ["/steal"]

    # Alice points it back: her allowlist again, even once Bob's allows nothing.
    assert await retarget(s, tid, call_graph(f"{owners.url}/again"), s.alice) == alice
    await allow(s, s.bob, [])
    await delivered(s, tid, "p-back")
    assert outcome(await result_of(s.client, tid, "p-back"), "call")["calls"] == 1
    assert [r.path for r in owners.requests] == ["/hook", "/again"]
    assert len(private.requests) == 1


async def test_a_run_keeps_the_principal_of_the_graph_it_started_with(
    src_stack: Stack,  # noqa: F811
    listeners: tuple[LocalServer, LocalServer],
) -> None:
    """The owner changing the graph back while an editor's run waits does not lend that
    run's request (to the editor's URL) the owner's allowlist."""
    s = src_stack
    owners, private = listeners
    tid, alice, bob = await setup(s, f"{owners.url}/hook", delay=True)
    assert await retarget(s, tid, call_graph(f"{private.url}/steal", delay=True), s.bob) == bob
    await delivered(s, tid, "p-waiting")
    handle = s.client.get_workflow_handle(run_workflow_id(tid, "p-waiting"))

    async def waiting() -> bool:
        history = await handle.fetch_history()
        return any(e.HasField("timer_started_event_attributes") for e in history.events)

    await eventually(waiting, timeout=30)
    assert await retarget(s, tid, call_graph(f"{owners.url}/hook", delay=True), s.alice) == alice
    cause = await refusal(s, tid, "p-waiting")
    assert cause.message.startswith("node 'call': requests to 127.0.0.1 are refused")
    assert private.requests == [] and owners.requests == []


async def test_a_principal_that_is_gone_allows_public_addresses_only(
    src_stack: Stack,  # noqa: F811
    listeners: tuple[LocalServer, LocalServer],
) -> None:
    s = src_stack
    owners, private = listeners
    tid, _, bob = await setup(s, f"{owners.url}/hook")
    await allow(s, s.bob, ["127.0.0.1"])
    assert await retarget(s, tid, call_graph(f"{private.url}/steal"), s.bob) == bob
    engine = make_engine(s.settings.database_url)
    try:
        async with engine.begin() as conn:
            # Keys and shares go with him; the trigger's principal columns become NULL.
            await conn.execute(sa.text("DELETE FROM users WHERE name = 'bob'"))
    finally:
        await engine.dispose()
    row = (await s.http.get(f"{API}/{tid}", headers=s.alice)).json()
    assert row["target_principal_id"] is None and "/steal" in json.dumps(row["target"])
    # The running trigger still names Bob (nobody now); a disable and enable names no one:
    # both mean public addresses only, not the owner's allowlist, which allows 127.0.0.1.
    await delivered(s, tid, "p-gone")
    cause = await refusal(s, tid, "p-gone")
    assert cause.message.startswith("node 'call': requests to 127.0.0.1 are refused")
    assert (await s.http.post(f"{API}/{tid}/disable", headers=s.alice)).status_code == 200
    assert (await s.http.post(f"{API}/{tid}/enable", headers=s.alice)).status_code == 200
    await delivered(s, tid, "p-nobody")
    cause = await refusal(s, tid, "p-nobody")
    assert cause.message.startswith("node 'call': requests to 127.0.0.1 are refused")
    assert private.requests == [] and owners.requests == []


def test_what_decides_where_a_graphs_requests_go() -> None:
    def graph(url: str, *, value: str = "'https://a.example/x'", log: str = "'hi'") -> Any:
        return {
            "kind": "graph",
            "graph": {
                "nodes": [
                    {"id": "pick", "type": "set", "values": {"url": value}},
                    {"id": "call", "type": "http_request", "url": url},
                    {"id": "note", "type": "log", "message": log},
                ],
                "edges": [
                    {"source": "pick", "target": "call"},
                    {"source": "call", "target": "note"},
                ],
            },
        }

    def moved(before: Any, after: Any, *, name: str = "t", new_name: str = "t") -> bool:
        return graph_destinations.moved(
            graph_destinations.destinations(before, trigger_name=name),
            graph_destinations.destinations(after, trigger_name=new_name),
        )

    fixed = graph(cel("https://a.example/x"))
    assert not moved(fixed, graph(cel("https://a.example/x"), log="'other'"))
    assert moved(fixed, graph(cel("https://b.example/x")))
    # A fixed URL does not care what is upstream; one built from the item does.
    assert not moved(fixed, graph(cel("https://a.example/x"), value="'http://127.0.0.1'"))
    from_item = graph("item.url")
    assert moved(from_item, graph("item.url", value="'http://127.0.0.1'"))
    assert not moved(from_item, graph("item.url", log="'other'"))  # downstream
    unwired = graph("item.url")
    unwired["graph"]["edges"] = unwired["graph"]["edges"][1:]
    assert moved(from_item, unwired)
    # A URL that reads the trigger's name moves with a rename.
    named = graph("'https://' + trigger.name + '.example/x'")
    assert moved(named, named, new_name="127.0.0.1:9")
    assert not moved(fixed, fixed, new_name="127.0.0.1:9")
    # A new http_request node is a new destination; removing one is not.
    more = graph(cel("https://a.example/x"))
    more["graph"]["nodes"].append({"id": "also", "type": "http_request", "url": cel("http://x")})
    assert moved(fixed, more) and not moved(more, fixed)
    assert moved({"kind": "run"}, fixed) and not moved(fixed, {"kind": "run"})
    assert graph_destinations.reads_events(graph("event.data.url"))
    assert graph_destinations.reads_events(from_item)
    assert not graph_destinations.reads_events(fixed)


async def test_an_editor_who_chooses_the_events_owns_urls_built_from_them(
    src_stack: Stack,  # noqa: F811
) -> None:
    """With the signing secret in hand an editor sends any event: a URL built from the
    event's data is then theirs, although the graph did not change."""
    s = src_stack
    tid, alice, bob = await setup(s, "https://example.com/hook")
    target = {"kind": "graph", "graph": {"nodes": [
        {"id": "call", "type": "http_request", "url": "item.repository.full_name"}
    ]}}  # fmt: skip
    assert await retarget(s, tid, target, s.alice) == alice
    # A secret given for a graph whose URLs are fixed changes nothing.
    fixed = call_graph("https://example.com/hook")
    other = await s.create_trigger({**github_trigger(), "target": fixed})
    await s.http.put(
        f"{API}/{other['id']}/shares", json={"user": "bob", "role": "editor"}, headers=s.alice
    )
    for trigger_id, expected in ((other["id"], alice), (tid, bob)):
        r = await s.http.patch(
            f"{API}/{trigger_id}", json={"secrets": {"signing_secret": "bobs"}}, headers=s.bob
        )
        assert r.status_code == 200, r.text
        assert r.json()["target_principal_id"] == expected
        assert "bobs" not in r.text
