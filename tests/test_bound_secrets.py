"""Secrets stay bound to where the owner put them: an editor cannot send them elsewhere, and
a source goes out through the network allowlist of whoever chose where it goes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import BaseModel
from starlette.responses import JSONResponse

from tests.conftest import Stack, eventually
from tests.local_http import LocalServer
from tests.test_source_runtime import src_stack, status_of  # noqa: F401  (fixture)
from triggers.providers import get_provider

OWNER_SECRET = "owner-token-5d1e-never-elsewhere"
EDITOR_SECRET = "editor-token-a7c3"
API = "/api/triggers"


@pytest.fixture
async def servers() -> AsyncIterator[tuple[LocalServer, LocalServer]]:
    """The owner's API and the editor's listener, both on 127.0.0.1."""
    owners, editors = (LocalServer(handler=lambda _r: JSONResponse({"data": []})) for _ in "ab")
    await owners.start()
    await editors.start()
    yield owners, editors
    await owners.stop()
    await editors.stop()


def poll_config(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "url": url,
        "headers": {"Authorization": "Bearer {{secrets.token}}"},
        "items": "$.data[*]",
        "interval": "1s",
        **extra,
    }


async def allow(s: Stack, user: dict[str, str], entries: list[str]) -> None:
    r = await s.http.put("/api/me/network-allowlist", json={"entries": entries}, headers=user)
    assert r.status_code == 200, r.text


async def more_polls(server: LocalServer, n: int = 2) -> None:
    """Wait for ``n`` more requests than the server has now: polls that happened."""
    target = len(server.requests) + n

    async def reached() -> bool:
        return len(server.requests) >= target

    await eventually(reached, timeout=30)


async def test_an_editor_cannot_send_the_owners_secret_elsewhere(
    src_stack: Stack,  # noqa: F811
    servers: tuple[LocalServer, LocalServer],
) -> None:
    s = src_stack
    owners, editors = servers
    # Both allow the listener: only the rule on destinations can stop the editor.
    await allow(s, s.alice, ["127.0.0.1"])
    await allow(s, s.bob, ["127.0.0.1"])
    created = await s.create_trigger(
        {
            "name": "poll",
            "provider": "http_poll",
            "config": poll_config(f"{owners.url}/items"),
            "secrets": {"token": OWNER_SECRET},
        }
    )
    tid, url = created["id"], f"{API}/{created['id']}"
    assert created["network_principal_id"] == created["owner_id"]
    r = await s.http.put(f"{url}/shares", json={"user": "bob", "role": "editor"}, headers=s.alice)
    assert r.status_code == 200
    await more_polls(owners, 1)
    assert owners.requests[-1].headers["authorization"] == f"Bearer {OWNER_SECRET}"

    # Each way of moving the secret is refused, naming the field, echoing nothing.
    attempts = [
        (poll_config(f"{editors.url}/steal"), "url"),
        (poll_config(editors.url.replace("127.0.0.1", "localhost") + "/steal"), "url"),
        (
            {**poll_config(f"{owners.url}/items"), "headers": {"X-Echo": "{{secrets.token}}"}},
            "headers",
        ),
    ]
    for config, field in attempts:
        r = await s.http.patch(url, json={"config": config}, headers=s.bob)
        assert r.status_code == 403, r.text
        (detail,) = r.json()["detail"]
        assert detail["loc"] == ["body", "config", field]
        assert "token" in detail["msg"] and OWNER_SECRET not in r.text
    # Giving some secrets is not enough: every secret the trigger keeps.
    r = await s.http.patch(
        url,
        json={"config": poll_config(f"{editors.url}/steal"), "secrets": {"other": "x"}},
        headers=s.bob,
    )
    assert r.status_code == 403, r.text
    row = (await s.http.get(url, headers=s.alice)).json()
    assert row["config"]["url"] == f"{owners.url}/items" and row["config_version"] == 1

    # What does not move the secret stays an editor's to change: the loop restarts on it.
    r = await s.http.patch(
        url, json={"config": poll_config(f"{owners.url}/items", max_pages=3)}, headers=s.bob
    )
    assert r.status_code == 200, r.text
    assert r.json()["network_principal_id"] == created["owner_id"]
    # Polls that would have reached the listener had any change gone through.
    await more_polls(owners, 2)
    assert editors.requests == []
    assert all(q.headers["authorization"] == f"Bearer {OWNER_SECRET}" for q in owners.requests)
    st = await status_of(s, tid)
    assert st["status"] == "active" and st["config_version"] == 2


async def test_an_editor_with_their_own_secrets_goes_through_their_own_allowlist(
    src_stack: Stack,  # noqa: F811
    servers: tuple[LocalServer, LocalServer],
) -> None:
    s = src_stack
    owners, editors = servers
    await allow(s, s.alice, ["127.0.0.1"])
    bob = (await s.http.get("/api/me", headers=s.bob)).json()
    created = await s.create_trigger(
        {
            "name": "poll",
            "provider": "http_poll",
            "config": poll_config(f"{owners.url}/items"),
            "secrets": {"token": OWNER_SECRET},
        }
    )
    tid, url = created["id"], f"{API}/{created['id']}"
    await s.http.put(f"{url}/shares", json={"user": "bob", "role": "editor"}, headers=s.alice)

    # Bob gives the secret again: the trigger is his to point, through his allowlist,
    # which does not allow 127.0.0.1 although Alice's does.
    r = await s.http.patch(
        url,
        json={"config": poll_config(f"{editors.url}/mine"), "secrets": {"token": EDITOR_SECRET}},
        headers=s.bob,
    )
    assert r.status_code == 200, r.text
    assert r.json()["network_principal_id"] == bob["id"]

    async def failed() -> dict[str, Any] | None:
        st = await status_of(s, tid)
        return st if st["status"] == "failed" and st["config_version"] == 2 else None

    st = await eventually(failed, timeout=30)
    assert "allowlist" in st["last_error"] and "127.0.0.1" in st["last_error"]
    assert editors.requests == []  # refused before any connection

    # Once Bob allows it himself, it polls his listener, with his token only.
    await allow(s, s.bob, ["127.0.0.1"])
    assert (await s.http.post(f"{url}/disable", headers=s.bob)).status_code == 200
    assert (await s.http.post(f"{url}/enable", headers=s.bob)).status_code == 200
    await more_polls(editors, 2)
    assert {q.headers["authorization"] for q in editors.requests} == {f"Bearer {EDITOR_SECRET}"}

    # The owner points it back: her allowlist again.
    r = await s.http.patch(
        url,
        json={"config": poll_config(f"{owners.url}/again"), "secrets": {"token": OWNER_SECRET}},
        headers=s.alice,
    )
    assert r.status_code == 200 and r.json()["network_principal_id"] == created["owner_id"]

    async def back() -> bool:
        return any(q.path == "/again" for q in owners.requests)

    await eventually(back, timeout=30)
    assert all(OWNER_SECRET not in str(q.headers) for q in editors.requests)


def _check(provider: str, before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    info = get_provider(provider)

    def model(config: dict[str, Any]) -> BaseModel:
        return info.config_model.model_validate(config)

    return info.changed_destinations(model(before), model(after))


def test_destination_fields_are_declared_per_provider() -> None:
    base = poll_config("https://api.example.com/items")
    plain = {**base, "headers": {**base["headers"], "Accept": "application/json"}}
    assert _check("http_poll", base, plain) == []  # a header without a secret
    renamed = {**base, "headers": {"authorization": "Bearer {{secrets.token}}"}}
    assert _check("http_poll", base, renamed) == []  # the same header, spelled otherwise
    assert _check("http_poll", base, {**base, "url": "http://api.example.com/items"}) == ["url"]
    other = {**base, "headers": {"Authorization": "Token {{secrets.token}}"}}
    assert _check("http_poll", base, other) == ["headers"]
    sql = {
        "url": "postgresql+asyncpg://app@db.example.com/shop",
        "query": "SELECT id, n FROM t WHERE n >= :cursor ORDER BY n",
        "cursor_column": "n",
        "id_column": "id",
        "initial_cursor": 0,
    }
    assert _check("sql_poll", sql, {**sql, "interval": "5s"}) == []
    assert _check("sql_poll", sql, {**sql, "url": sql["url"].replace("db.", "evil.")}) == ["url"]
    # A webhook sends its secret nowhere; cron has none.
    hook = {"preset": "apikey", "signature_header": "X-Token"}
    assert _check("webhook", hook, {**hook, "signature_header": "X-Other"}) == []
    assert _check("cron", {"every": "1s"}, {"every": "2s"}) == []
    # A provider that declares nothing (test_list, like an older plugin): all of it counts.
    assert _check("test_list", {"items": ["a"]}, {"items": ["a"], "interval": 2}) == ["interval"]
