"""Trigger conditions (CEL) through the API and the trigger workflow."""

from __future__ import annotations

from typing import Any

from tests.conftest import Stack, eventually
from tests.helpers import github_body, github_trigger, post_github, runs_of


async def status(s: Stack, tid: str) -> dict[str, Any]:
    data: dict[str, Any] = (await s.http.get(f"/api/triggers/{tid}/status", headers=s.alice)).json()
    return data


async def test_push_condition_keeps_only_main(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    body = github_trigger() | {"condition": 'event.data.ref == "refs/heads/main"'}
    trigger = await s.create_trigger(body)
    tid = trigger["id"]
    assert trigger["condition"] == 'event.data.ref == "refs/heads/main"'
    for delivery, ref in (
        ("p1", "refs/heads/main"),
        ("p2", "refs/heads/dev"),
        ("p3", "refs/tags/v1.0"),
        ("p4", "refs/heads/main"),
    ):
        r = await post_github(s.http, tid, delivery=delivery, body=github_body(ref=ref))
        assert r.status_code == 202

    async def settled() -> dict[str, Any] | None:
        st = await status(s, tid)
        # Counted before the child start returns: wait for the starts too.
        done = sum(st["filtered"].values()) == 4 and st["pending"] == 0
        done = done and st["runs_started"] == 2
        return st if done else None

    st = await eventually(settled)
    assert st["filtered"] == {"passed": 2, "dropped": 2}
    assert st["runs_started"] == 2
    assert sorted(await runs_of(s.client, tid)) == [f"run:{tid}:p1", f"run:{tid}:p4"]


async def test_condition_errors_drop_the_event_and_are_recorded(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    body = github_trigger() | {"condition": "event.data.n > 1"}
    tid = (await s.create_trigger(body))["id"]
    sends = (("no-n", github_body()), ("small", github_body(n=1)), ("big", github_body(n=5)))
    for delivery, payload in sends:
        assert (await post_github(s.http, tid, delivery=delivery, body=payload)).status_code == 202

    async def settled() -> dict[str, Any] | None:
        st = await status(s, tid)
        done = sum(st["filtered"].values()) == 3 and st["pending"] == 0
        return st if done and st["runs_started"] == 1 else None

    st = await eventually(settled)
    assert st["filtered"] == {"error": 1, "dropped": 1, "passed": 1}
    (err,) = st["condition_errors"]
    assert err["event_id"] == "no-n" and "n" in err["error"]
    assert await runs_of(s.client, tid) == [f"run:{tid}:big"]

    # Changing the condition applies to the next events.
    r = await s.http.patch(
        f"/api/triggers/{tid}", json={"condition": "has(event.data.n)"}, headers=s.alice
    )
    assert r.status_code == 200 and r.json()["condition"] == "has(event.data.n)"
    assert (await post_github(s.http, tid, delivery="n7", body=github_body(n=7))).status_code == 202

    async def two() -> bool:
        return len(await runs_of(s.client, tid)) == 2

    await eventually(two)


async def test_invalid_conditions_answer_422_with_position(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    for expr in ('event.data.ref == "main', "event.data.ref ==", "(1 + "):
        r = await s.http.post(
            "/api/triggers", json=github_trigger() | {"condition": expr}, headers=s.alice
        )
        assert r.status_code == 422, r.text
        (detail,) = r.json()["detail"]
        assert detail["loc"] == ["body", "condition"]
        assert "line 1, column" in detail["msg"]
    tid = (await s.create_trigger(github_trigger()))["id"]
    r = await s.http.patch(f"/api/triggers/{tid}", json={"condition": "a +"}, headers=s.alice)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "condition"]
