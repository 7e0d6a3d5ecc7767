"""What a webhook's 202 says about the run: ``run_id`` is the run the event starts if it
passes the trigger's condition, and ``would_start`` says whether it did."""

from __future__ import annotations

from typing import Any

from tests.conftest import Stack, eventually
from tests.helpers import github_body, github_trigger, post_github, runs_of


async def _post(s: Stack, tid: str, delivery: str, **data: Any) -> dict[str, Any]:
    r = await post_github(s.http, tid, delivery=delivery, body=github_body(**data))
    assert r.status_code == 202, r.text
    answer: dict[str, Any] = r.json()
    return answer


async def test_the_answer_says_whether_the_run_will_exist(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    body = github_trigger() | {
        "condition": 'event.data.ref == "refs/heads/main" && event.data.n > 0'
    }
    tid = (await s.create_trigger(body))["id"]

    passed = await _post(s, tid, "w-main", n=1)
    dropped = await _post(s, tid, "w-dev", ref="refs/heads/dev", n=1)
    failed = await _post(s, tid, "w-error")  # no data.n: the condition fails, drops it
    again = await _post(s, tid, "w-main", n=1)
    assert passed | {"run_id": None} == {
        "event_id": "w-main",
        "event_key": "w-main",
        "run_id": None,
        "duplicate": False,
        "would_start": True,
        "captured": False,
    }
    assert passed["run_id"] == f"run:{tid}:w-main"
    assert (dropped["would_start"], dropped["run_id"]) == (False, f"run:{tid}:w-dev")
    assert failed["would_start"] is False
    assert (again["duplicate"], again["would_start"]) == (True, None)

    async def settled() -> bool:
        r = await s.http.get(f"/api/triggers/{tid}/status", headers=s.alice)
        st = r.json()
        return bool(st["filtered"] == {"passed": 1, "dropped": 1, "error": 1})

    await eventually(settled)

    async def one_run() -> list[str]:
        return await runs_of(s.client, tid)

    # Only the run the answer promised exists; the dropped events' IDs never do.
    assert await eventually(one_run) == [passed["run_id"]]


async def test_without_a_condition_every_event_would_start(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    tid = (await s.create_trigger(github_trigger()))["id"]
    assert (await _post(s, tid, "w-any"))["would_start"] is True


async def test_openapi_says_what_run_id_is(sqlite_stack: Stack) -> None:
    doc = (await sqlite_stack.http.get("/openapi.json")).json()
    fields = doc["components"]["schemas"]["WebhookAccepted"]["properties"]
    assert "if it passes the trigger's condition" in fields["run_id"]["description"]
    assert "would_start" in fields["run_id"]["description"]
    assert "condition" in fields["would_start"]["description"]
