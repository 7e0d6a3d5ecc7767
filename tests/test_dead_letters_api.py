"""``/api/triggers/{id}/dead-letters`` on SQLite and PostgreSQL, with Temporal and a worker:
owner or share only, paginated, raw base64; a redrive starts exactly one run, also when
repeated; still-poison is 422, a truncated value 409; the trigger's deletion takes them."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

import tests.stream_providers  # noqa: F401  (registers test_json_stream)
from tests.conftest import Stack, eventually
from tests.helpers import count_runs, github_trigger, runs_of, status_of
from triggers.core.events import run_workflow_id
from triggers.infra import dead_letters
from triggers.infra.models import DeadLetter
from triggers.providers.stream import DEAD_LETTER_RAW_LIMIT

API = "/api/triggers"


def _sessions(s: Stack) -> async_sessionmaker[AsyncSession]:
    assert s.app is not None
    sessions: async_sessionmaker[AsyncSession] = s.app.state.triggers.sessions
    return sessions


async def _stream_trigger(s: Stack, **config: Any) -> str:
    body = {"name": "stream", "provider": "test_json_stream", "config": config}
    return str((await s.create_trigger(body))["id"])


async def _record(s: Stack, tid: str, key: str, raw: bytes = b"{", **given: Any) -> None:
    await dead_letters.record(
        _sessions(s),
        trigger_id=tid,
        key=key,
        reason=given.get("reason", "not JSON"),
        headers=given.get("headers", {"content-type": "application/json"}),
        raw=raw,
        attempts=given.get("attempts", 1),
        meta=given.get("meta"),
        time=given.get("time"),
    )


async def _list(
    s: Stack, tid: str, *, user: dict[str, str] | None = None, params: dict[str, Any] | None = None
) -> Any:
    r = await s.http.get(f"{API}/{tid}/dead-letters", params=params, headers=user or s.alice)
    assert r.status_code == 200, r.text
    return r.json()


async def test_list_and_get_owner_or_share_only(stack: Stack) -> None:
    s = stack
    tid = await _stream_trigger(s)
    await _record(s, tid, "s/1", raw=b"\xff\x00not json", headers={"x-a": "1"})
    await _record(s, tid, "s/1", raw=b"\xff\x00not json", reason="again")
    page = await _list(s, tid)
    assert page["total"] == 1 and page["dropped"] == 0 and page["next_cursor"] is None
    (item,) = page["items"]
    assert item["key"] == "s/1" and item["reason"] == "again" and item["attempts"] == 2
    assert base64.b64decode(item["raw"]) == b"\xff\x00not json"
    assert item["raw_size"] == 10 and item["raw_truncated"] is False
    assert item["headers"] == {"x-a": "1"} and item["redriven_at"] is None
    one = await s.http.get(f"{API}/{tid}/dead-letters/{item['id']}", headers=s.alice)
    assert one.status_code == 200 and one.json() == item

    # A stranger cannot tell the trigger exists; a viewer reads but cannot redrive.
    for path in ("", f"/{item['id']}"):
        r = await s.http.get(f"{API}/{tid}/dead-letters{path}", headers=s.bob)
        assert r.status_code == 404, r.text
    r = await s.http.post(f"{API}/{tid}/dead-letters/{item['id']}/redrive", headers=s.bob)
    assert r.status_code == 404
    share = {"user": "carol", "role": "viewer"}
    r = await s.http.put(f"{API}/{tid}/shares", json=share, headers=s.alice)
    assert r.status_code == 200, r.text
    assert (await _list(s, tid, user=s.carol))["items"] == [item]
    r = await s.http.post(f"{API}/{tid}/dead-letters/{item['id']}/redrive", headers=s.carol)
    assert r.status_code == 403, r.text
    assert (await s.http.get(f"{API}/{tid}/dead-letters")).status_code == 401

    # Ids that are not UUIDs name their field; another trigger's dead letter is not found.
    r = await s.http.get(f"{API}/{tid}/dead-letters/nope", headers=s.alice)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["path", "dl_id"]
    r = await s.http.get(f"{API}/nope/dead-letters", headers=s.alice)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["path", "trigger_id"]
    other = await _stream_trigger(s)
    r = await s.http.get(f"{API}/{other}/dead-letters/{item['id']}", headers=s.alice)
    assert r.status_code == 404
    r = await s.http.get(f"{API}/{tid}/dead-letters/{uuid.uuid4()}", headers=s.alice)
    assert r.status_code == 404


async def test_pages_with_a_bounded_limit_and_a_cursor(stack: Stack) -> None:
    s = stack
    tid = await _stream_trigger(s)
    keys = [f"p/{i}" for i in range(7)]
    for key in keys:
        await _record(s, tid, key)
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(4):
        page = await _list(s, tid, params={"limit": 3, **({"cursor": cursor} if cursor else {})})
        assert page["total"] == 7 and page["limit"] == 3
        seen += [i["key"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == keys[::-1]
    # Out of range in UTC: a cursor anyone could make, not one this API gave.
    far = f"9999-12-31T23:59:59-14:00|{uuid.uuid4().hex}".encode()
    made = base64.urlsafe_b64encode(far).decode()
    bad = [{"limit": 0}, {"limit": 51}, {"cursor": "x" * 201}, {"cursor": "bm90IGl0"}]
    for params in [*bad, {"cursor": made}, {"cursor": "é"}]:
        r = await s.http.get(f"{API}/{tid}/dead-letters", params=params, headers=s.alice)
        assert r.status_code == 422, (params, r.text)
        assert r.json()["detail"][0]["loc"][0] == "query"
    assert len((await _list(s, tid, params={"limit": 50}))["items"]) == 7


async def test_the_bound_per_trigger_is_shown(stack: Stack, monkeypatch: Any) -> None:
    s = stack
    monkeypatch.setattr(dead_letters, "MAX_PER_TRIGGER", 5)
    tid = await _stream_trigger(s)
    for i in range(50):
        await _record(s, tid, f"f/{i:02d}")
    page = await _list(s, tid, params={"limit": 50})
    assert page["total"] == 5 and page["dropped"] == 45
    assert [i["key"] for i in page["items"]] == [f"f/{i:02d}" for i in range(49, 44, -1)]


async def _dead_letter_id(s: Stack, tid: str, key: str) -> str:
    page = await _list(s, tid, params={"limit": 50})
    return str(next(i["id"] for i in page["items"] if i["key"] == key))


async def test_redrive_starts_exactly_one_run(stack: Stack) -> None:
    s = stack
    tid = await _stream_trigger(s)
    # Delivered too often, say: the value itself is fine.
    await _record(
        s,
        tid,
        "orders/0/7",
        raw=json.dumps({"order": 7}).encode(),
        attempts=6,
        meta={"type": "order.placed"},
    )
    dl = await _dead_letter_id(s, tid, "orders/0/7")
    url = f"{API}/{tid}/dead-letters/{dl}/redrive"

    r = await s.http.post(url, headers=s.alice)
    assert r.status_code == 200, r.text
    body = r.json()
    run_id = run_workflow_id(tid, "orders/0/7")
    assert body["run_id"] == run_id and body["event_key"] == "orders/0/7"
    assert body["would_start"] is True and body["again"] is False
    assert body["dead_letter"]["redrive_run_id"] == run_id
    assert body["dead_letter"]["redriven_at"] is not None

    async def started() -> list[str]:
        return await runs_of(s.client, tid)

    assert await eventually(started) == [run_id]
    result = await s.client.get_workflow_handle(run_id).result()
    assert result["event_key"] == "orders/0/7"
    # The message's broker facts were kept: the redriven event is the one it would have made.
    assert result["event_type"] == "order.placed"

    again = await s.http.post(url, headers=s.alice)
    assert again.status_code == 200, again.text
    assert again.json()["run_id"] == run_id and again.json()["again"] is True

    async def both_taken() -> bool:
        st = await status_of(s, tid)
        return bool(st["events_received"] == 2 and st["pending"] == 0)

    await eventually(both_taken)
    st = await status_of(s, tid)
    # The trigger workflow saw the second as a repeat of the first: no second start.
    assert st["runs_started"] == 1 and st["duplicates"] == 1
    assert await count_runs(s.client, tid) == 1
    (item,) = (await _list(s, tid))["items"]
    assert item["redrive_run_id"] == run_id


async def test_redrive_uses_the_current_config_and_refuses_poison(stack: Stack) -> None:
    s = stack
    tid = await _stream_trigger(s, require="id")
    await _record(s, tid, "c/1", raw=b'{"name": "no id"}', reason="no field 'id'")
    await _record(s, tid, "c/2", raw=b"not json at all")
    one = await _dead_letter_id(s, tid, "c/1")
    two = await _dead_letter_id(s, tid, "c/2")
    for dl, why in ((one, "no field 'id'"), (two, "not JSON")):
        r = await s.http.post(f"{API}/{tid}/dead-letters/{dl}/redrive", headers=s.alice)
        assert r.status_code == 422, r.text
        (problem,) = r.json()["detail"]
        assert problem["loc"] == ["path", "dl_id"] and why in problem["msg"]
    assert await count_runs(s.client, tid) == 0

    r = await s.http.patch(f"{API}/{tid}", json={"config": {}}, headers=s.alice)
    assert r.status_code == 200, r.text
    r = await s.http.post(f"{API}/{tid}/dead-letters/{one}/redrive", headers=s.alice)
    assert r.status_code == 200, r.text
    r = await s.http.post(f"{API}/{tid}/dead-letters/{two}/redrive", headers=s.alice)
    assert r.status_code == 422  # still not JSON, whatever the config

    async def one_run() -> bool:
        return await count_runs(s.client, tid) == 1

    await eventually(one_run)


async def test_what_cannot_be_redriven_is_409(stack: Stack) -> None:
    s = stack
    tid = await _stream_trigger(s)
    await _record(s, tid, "t/1", raw=b"{" + b" " * (DEAD_LETTER_RAW_LIMIT * 10) + b"}")
    dl = await _dead_letter_id(s, tid, "t/1")
    r = await s.http.post(f"{API}/{tid}/dead-letters/{dl}/redrive", headers=s.alice)
    assert r.status_code == 409 and "cannot be redriven" in r.json()["detail"], r.text
    # At the bound the value is whole.
    await _record(s, tid, "t/2", raw=b"{" + b" " * (DEAD_LETTER_RAW_LIMIT - 2) + b"}")
    whole = await _dead_letter_id(s, tid, "t/2")
    r = await s.http.post(f"{API}/{tid}/dead-letters/{whole}/redrive", headers=s.alice)
    assert r.status_code == 200, r.text

    hook = str((await s.create_trigger(github_trigger()))["id"])
    await _record(s, hook, "h/1", raw=b"{}")
    dl = await _dead_letter_id(s, hook, "h/1")
    r = await s.http.post(f"{API}/{hook}/dead-letters/{dl}/redrive", headers=s.alice)
    assert r.status_code == 409 and "stream provider" in r.json()["detail"], r.text

    r = await s.http.post(f"{API}/{tid}/disable", headers=s.alice)
    assert r.status_code == 200, r.text
    r = await s.http.post(f"{API}/{tid}/dead-letters/{whole}/redrive", headers=s.alice)
    assert r.status_code == 409 and "disabled" in r.json()["detail"]


async def test_deleting_the_trigger_deletes_its_dead_letters(stack: Stack) -> None:
    s = stack
    tid = await _stream_trigger(s)
    for key in ("d/1", "d/2"):
        await _record(s, tid, key)
    r = await s.http.delete(f"{API}/{tid}", headers=s.alice)
    assert r.status_code == 204, r.text
    async with _sessions(s)() as session:
        left = await session.exec(
            select(DeadLetter).where(col(DeadLetter.trigger_id) == uuid.UUID(tid))
        )
        assert left.all() == []
    r = await s.http.get(f"{API}/{tid}/dead-letters", headers=s.alice)
    assert r.status_code == 404
