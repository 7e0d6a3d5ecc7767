"""Hostile input to ``/api``: every answer is a 4xx (or 503) with a message, never a 500.

Strings the databases cannot store (NUL, lone surrogates) are refused wherever they are (body,
query, path) with a 422 whose ``loc`` ends at the value and whose message does not quote it;
nothing is stored. Each case runs on SQLite and PostgreSQL: PostgreSQL is the one that
refused NUL with a 500.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import uuid
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from api.app import create_app
from tests.conftest import Stack
from tests.helpers import SECRET, github_trigger, post_github
from tests.live_server import serve
from triggers.infra.settings import Settings

API = "/api/triggers"
NUL, LONE = "a\x00b", "x\ud800y"  # lone surrogate: valid JSON (\ud800), not Unicode text
JSON = {"content-type": "application/json"}


def gh(**fields: Any) -> dict[str, Any]:
    return {**github_trigger(), **fields}


def wf(**fields: Any) -> dict[str, Any]:
    return {"kind": "workflow", "workflow_type": "W", "task_queue": "q", **fields}


def raw(body: Any) -> bytes:
    """JSON as a client sends it: a lone surrogate goes out as the escape ``\\ud800``."""
    return json.dumps(body).encode()


def create_cases(bad: str) -> list[tuple[dict[str, Any], list[str | int]]]:
    """Create bodies with ``bad`` in one place each, and the location the 422 must name."""
    graph = {"nodes": [{"id": "n", "type": "log", "message": bad}]}
    return [
        (gh(name=bad), ["body", "name"]),
        (gh(condition=f'event.type == "{bad}"'), ["body", "condition"]),
        (gh(config={"preset": "github", "prefix": bad}), ["body", "config", "prefix"]),
        (
            gh(config={"preset": "github", "forward_headers": ["x", bad]}),
            ["body", "config", "forward_headers", 1],
        ),
        (gh(config={"preset": "github", bad: 1}), ["body", "config"]),  # a key
        (gh(secrets={"signing_secret": bad}), ["body", "secrets", "signing_secret"]),
        (gh(target=wf(workflow_type=bad)), ["body", "target", "workflow_type"]),
        (gh(target=wf(task_queue=bad)), ["body", "target", "task_queue"]),
        (gh(target=wf(input=f'"{bad}"')), ["body", "target", "input"]),
        (
            gh(target={"kind": "graph", "graph": graph}),
            ["body", "target", "graph", "nodes", 0, "message"],
        ),
        ({**gh(), "provider": bad}, ["body", "provider"]),
    ]


@pytest.mark.parametrize("bad", [NUL, LONE], ids=["nul", "lone-surrogate"])
async def test_unstorable_text_is_a_422_naming_the_field(stack: Stack, bad: str) -> None:
    s = stack
    headers = {**s.alice, **JSON}
    for body, loc in create_cases(bad):
        r = await s.http.post(API, content=raw(body), headers=headers)
        assert r.status_code == 422, (loc, r.text)
        assert [e["loc"] for e in r.json()["detail"]] == [loc], (loc, r.text)
        assert "\\u0000" not in r.text and "\\ud800" not in r.text  # the value is not quoted

    tid = (await s.create_trigger(github_trigger()))["id"]
    url = f"{API}/{tid}"
    other: list[tuple[str, str, Any, list[str | int]]] = [
        ("PATCH", url, {"name": bad}, ["body", "name"]),
        ("PATCH", url, {"condition": f'"{bad}" == ""'}, ["body", "condition"]),
        (
            "PATCH",
            url,
            {"config": {"preset": "github", "prefix": bad}},
            ["body", "config", "prefix"],
        ),
        ("PATCH", url, {"secrets": {"signing_secret": bad}}, ["body", "secrets", "signing_secret"]),
        ("PATCH", url, {"target": wf(task_queue=bad)}, ["body", "target", "task_queue"]),
        ("PUT", f"{url}/shares", {"user": bad, "role": "viewer"}, ["body", "user"]),
        (
            "PUT",
            "/api/me/network-allowlist",
            {"entries": ["10.0.0.0/8", bad]},
            ["body", "entries", 1],
        ),
        ("POST", f"{url}/test", {"events": [{"id": bad}]}, ["body", "events", 0, "id"]),
        (
            "POST",
            f"{url}/test",
            {"events": [{"id": "e", "data": {"deep": [bad]}}]},
            ["body", "events", 0, "data", "deep", 0],
        ),
        (
            "POST",
            f"{url}/test",
            {"events": [{"id": "e", "headers": {"x-h": bad}}]},
            ["body", "events", 0, "headers", "x-h"],
        ),
    ]
    for method, path, body, loc in other:
        r = await s.http.request(method, path, content=raw(body), headers=headers)
        assert r.status_code == 422, (method, path, loc, r.text)
        assert [e["loc"] for e in r.json()["detail"]] == [loc], (loc, r.text)

    # Query and path parameters (a real client sends a lone surrogate only percent-encoded,
    # which the server decodes to U+FFFD, so NUL is the case here).
    r = await s.http.get(API, params={"provider": NUL}, headers=s.alice)
    assert [e["loc"] for e in r.json()["detail"]] == [["query", "provider"]], r.text
    r = await s.http.delete(f"{url}/shares/a%00b", headers=s.alice)
    assert [e["loc"] for e in r.json()["detail"]] == [["path", "user_name"]], r.text

    # Nothing was stored: one trigger, unchanged; the allowlist as it was.
    listed = (await s.http.get(API, headers=s.alice)).json()
    assert listed["total"] == 1 and listed["items"][0]["config_version"] == 1
    assert (await s.http.get("/api/me", headers=s.alice)).json()["network_allowlist"] == []
    assert (await s.http.get(f"{url}/shares", headers=s.alice)).json() == []


async def test_a_secret_that_cannot_be_encoded_is_refused_at_create(stack: Stack) -> None:
    """A lone surrogate in a signing secret was stored, and every delivery then was a 500
    (the HMAC needs the secret's bytes). Now the create is refused; a valid one works."""
    s = stack
    r = await s.http.post(
        API, content=raw(github_trigger(secret=f"{SECRET}\udfff")), headers={**s.alice, **JSON}
    )
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "secrets", "signing_secret"]
    assert SECRET not in r.text
    assert (await s.http.get(API, headers=s.alice)).json()["total"] == 0
    tid = (await s.create_trigger(github_trigger()))["id"]  # positive control
    assert (await post_github(s.http, tid, delivery="d-1")).status_code == 202


async def test_json_depth_and_size_bounds(stack: Stack) -> None:
    s = stack
    headers = {**s.alice, **JSON}

    def nested(depth: int) -> Any:
        value: Any = "leaf"
        for _ in range(depth):
            value = [value]
        return value

    ok_body = gh(config={"preset": "github"})
    r = await s.http.post(f"{API}", content=raw(ok_body), headers=headers)
    tid = r.json()["id"]
    # A dry-run event's data: 31 levels below the data are fine, 32 are refused at the
    # level where the bound is crossed.
    fine = {"events": [{"id": "e", "data": nested(31)}]}
    r = await s.http.post(f"{API}/{tid}/test", content=raw(fine), headers=headers)
    assert r.status_code == 200, r.text
    deep = {"events": [{"id": "e", "data": nested(40)}]}
    r = await s.http.post(f"{API}/{tid}/test", content=raw(deep), headers=headers)
    assert r.status_code == 422, r.text
    (error,) = r.json()["detail"]
    assert error["loc"][:4] == ["body", "events", 0, "data"] and len(error["loc"]) == 4 + 32
    assert "deeper than 32" in error["msg"]
    # Deeper than the JSON parser goes (a RecursionError): 400, not 500.
    r = await s.http.post(
        f"{API}/{tid}/test", content=b'{"events": ' + b"[" * 100_000, headers=headers
    )
    assert r.status_code in (400, 422), r.text
    # Numbers too large to be a duration: the create is refused, not a 500.
    cron = {"name": "c", "provider": "cron", "config": {"every": "99999999999d"}}
    r = await s.http.post(API, json=cron, headers=s.alice)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "config", "every"]


async def test_405_lists_every_method_of_the_path(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    r = await s.http.request("PUT", API, headers=s.alice)
    assert r.status_code == 405 and r.json() == {"detail": "Method Not Allowed"}
    assert {m.strip() for m in r.headers["allow"].split(",")} >= {"GET", "POST"}
    r = await s.http.request("POST", f"{API}/{uuid.uuid4()}", headers=s.alice)
    assert {m.strip() for m in r.headers["allow"].split(",")} >= {"GET", "PATCH", "DELETE"}


async def test_a_database_that_does_not_answer_is_a_503(secret_keys: str) -> None:
    """Nothing listens on port 1: every /api call answers 503 with Retry-After."""
    settings = Settings(
        database_url="postgresql+asyncpg://postgres@127.0.0.1:1/none",
        secret_keys=SecretStr(secret_keys),
        temporal_address="127.0.0.1:1",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            for method, path in (("GET", API), ("GET", "/api/me"), ("POST", API)):
                r = await http.request(
                    method, path, headers={"Authorization": "Bearer tt_x"}, json=gh()
                )
                assert r.status_code == 503, r.text
                assert r.headers["retry-after"] == str(settings.retry_after_seconds)
                assert r.json() == {"detail": "the database is unavailable; retry later"}


def _exchange(base: str, calls: list[tuple[str, str, bytes | None, dict[str, str]]]) -> list[Any]:
    """Send ``calls`` over one keep-alive connection; for each: status, whether the server
    announced a close, and the local port (the same port means the same connection)."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    out = []
    try:
        for method, path, body, headers in calls:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            assert conn.sock is not None
            out.append((response.status, response.will_close, conn.sock.getsockname()[1]))
    finally:
        conn.close()
    return out


async def test_the_connection_stays_usable_after_errors(sqlite_stack: Stack) -> None:
    """On a real server, one keep-alive connection carries 4xx answers, a 500 from a route
    that crashes (added here: no real route should), and then a normal request."""
    s = sqlite_stack
    assert s.app is not None

    async def crash() -> None:
        raise RuntimeError("boom")

    s.app.add_api_route("/api/_crash", crash, methods=["GET"])
    auth = {**s.alice, **JSON}
    calls: list[tuple[str, str, bytes | None, dict[str, str]]] = [
        ("GET", f"{API}?provider=a%00", None, auth),
        ("POST", API, raw(gh(name=LONE)), auth),
        ("POST", API, b'{"name": ', auth),
        ("GET", f"{API}/{uuid.uuid4()}", None, auth),
        ("GET", API, None, {}),
        ("PUT", API, None, auth),
        ("GET", "/api/_crash", None, auth),
        ("GET", API, None, auth),
    ]
    async with serve(s.app) as base:
        got = await asyncio.to_thread(_exchange, base, calls)
    assert [g[0] for g in got] == [422, 422, 422, 404, 401, 405, 500, 200]
    assert not any(g[1] for g in got), got  # no answer announced a close
    assert len({g[2] for g in got}) == 1, got  # one connection throughout
