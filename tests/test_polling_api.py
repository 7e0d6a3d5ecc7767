"""HTTP polling through the API and the worker: the owner's network allowlist, a refused
address surfacing as ``failed`` with a readable error, and new items becoming runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.responses import JSONResponse

from tests.conftest import Stack, eventually
from tests.helpers import count_runs, runs_of
from tests.local_http import LocalServer
from tests.test_source_runtime import src_stack, status_of  # noqa: F401  (fixture)


@pytest.fixture
async def items_server() -> AsyncIterator[tuple[LocalServer, list[dict[str, Any]]]]:
    items: list[dict[str, Any]] = [{"id": "a", "n": 1}, {"id": "b", "n": 2}]
    server = LocalServer(handler=lambda _r: JSONResponse({"data": items}))
    await server.start()
    yield server, items
    await server.stop()


async def test_allowlist_is_validated_per_entry(src_stack: Stack) -> None:  # noqa: F811
    s = src_stack
    r = await s.http.put(
        "/api/me/network-allowlist", json={"entries": ["127.0.0.1", "10.0.0.0/33"]}, headers=s.alice
    )
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "entries", 1]
    r = await s.http.put(
        "/api/me/network-allowlist", json={"entries": ["127.0.0.1", "file:/srv/x"]}, headers=s.alice
    )
    assert r.status_code == 200 and r.json()["network_allowlist"] == ["127.0.0.1", "file:/srv/x"]
    assert (await s.http.get("/api/me", headers=s.bob)).json()["network_allowlist"] == []


async def test_private_address_fails_until_allowed_then_polls(
    src_stack: Stack,  # noqa: F811
    items_server: tuple[LocalServer, list[dict[str, Any]]],
) -> None:
    s = src_stack
    server, items = items_server
    body = {
        "name": "poll",
        "provider": "http_poll",
        "config": {
            "url": f"{server.url}/items",
            "items": "$.data[*]",
            "id_field": "id",
            "interval": "1s",
            "start_from": "beginning",
        },
    }
    tid = (await s.create_trigger(body))["id"]

    async def failed() -> dict[str, Any] | None:
        st = await status_of(s, tid)
        return st if st["status"] == "failed" else None

    st = await eventually(failed)
    assert "127.0.0.1" in st["last_error"] and "allowlist" in st["last_error"]
    assert not server.requests  # refused before any connection
    row = (await s.http.get(f"/api/triggers/{tid}", headers=s.alice)).json()
    assert row["status"] == "failed"

    r = await s.http.put(
        "/api/me/network-allowlist", json={"entries": ["127.0.0.1"]}, headers=s.alice
    )
    assert r.status_code == 200
    # A failed source waits for a change; disabling and enabling the trigger is one.
    await s.http.post(f"/api/triggers/{tid}/disable", headers=s.alice)
    await s.http.post(f"/api/triggers/{tid}/enable", headers=s.alice)

    async def two() -> bool:
        return await count_runs(s.client, tid) == 2

    await eventually(two, timeout=30)
    items.append({"id": "c", "n": 3})

    async def three() -> bool:
        return await count_runs(s.client, tid) == 3

    await eventually(three, timeout=30)
    assert sorted(await runs_of(s.client, tid)) == [f"run:{tid}:{k}" for k in "abc"]
    st = await status_of(s, tid)
    assert st["status"] == "active" and st["cursor"] is not None


async def test_secret_names_any_case_and_a_refusal_that_says_the_rule(
    src_stack: Stack,  # noqa: F811
) -> None:
    s = src_stack
    config = {"url": "https://example.com/items", "headers": {"X-Key": "{{secrets.API_KEY}}"}}
    body = {"name": "p", "provider": "http_poll", "config": config}
    created = await s.create_trigger({**body, "secrets": {"API_KEY": "k-1"}})
    assert created["secret_names"] == ["API_KEY"]
    r = await s.http.post(
        "/api/triggers", json={**body, "secrets": {"api-key": "k-1"}}, headers=s.alice
    )
    assert r.status_code == 422
    (err,) = r.json()["detail"]
    assert err["loc"] == ["body", "secrets", "api-key"]
    assert "letters of either case, digits and _, starting with a letter" in err["msg"]
    assert "k-1" not in r.text
