"""No single delivery can wedge a trigger: a 1,200-character delivery id, a condition that
would run for seconds, a target the server refuses. After each, a normal delivery starts
its run within 10 s, and ``/status`` answers 200 throughout."""

from __future__ import annotations

import json
import uuid

from temporalio.client import WorkflowExecutionStatus

from tests.conftest import Stack, eventually
from tests.helpers import github_body, github_trigger, post_github
from triggers.core.events import MAX_KEY_CHARS, bound_key, run_workflow_id


async def _status(s: Stack, tid: str) -> dict[str, object]:
    r = await s.http.get(f"/api/triggers/{tid}/status", headers=s.alice)
    assert r.status_code == 200, r.text
    data: dict[str, object] = r.json()
    return data


async def _runs_within_10s(s: Stack, tid: str, delivery: str) -> None:
    r = await post_github(s.http, tid, delivery=delivery)
    assert r.status_code == 202, r.text
    handle = s.client.get_workflow_handle(run_workflow_id(tid, delivery))

    async def started() -> bool:
        await _status(s, tid)
        return (await handle.describe()).status is not None

    await eventually(started, timeout=10)


async def test_long_delivery_ids_are_bounded(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    tid = (await s.create_trigger(github_trigger(name="long ids")))["id"]
    for n in (MAX_KEY_CHARS, MAX_KEY_CHARS + 1, 1_200, 12_000):
        delivery = f"d{n}-" + "x" * (n - len(f"d{n}-"))
        r = await post_github(s.http, tid, delivery=delivery)
        assert r.status_code == 202, r.text
        key = r.json()["event_key"]
        assert key == bound_key(delivery)
        assert len(key) <= MAX_KEY_CHARS if n <= MAX_KEY_CHARS else key != delivery
        assert len(r.json()["run_id"]) < 1000
        handle = s.client.get_workflow_handle(run_workflow_id(tid, key))
        await eventually(lambda h=handle: _described(h), timeout=10)  # type: ignore[misc]
        # The same long id again is the same event: no second run.
        again = await post_github(s.http, tid, delivery=delivery)
        assert again.json()["event_key"] == key
    await _runs_within_10s(s, tid, "normal-after-long")
    st = await _status(s, tid)
    assert st["runs_started"] == 5


async def _described(handle: object) -> bool:
    desc = await handle.describe()  # type: ignore[attr-defined]
    return desc.status is not None


async def test_heavy_condition_errors_for_that_event_only(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    body = github_trigger(name="heavy")
    body["condition"] = "event.data.items.all(x, x >= 0)"
    tid = (await s.create_trigger(body))["id"]
    # ~199 KB of small numbers: under the body limit, far over the evaluation budget.
    heavy = json.dumps({"items": [1] * 99_000}, separators=(",", ":")).encode()
    assert 190_000 < len(heavy) < 256 * 1024
    r = await post_github(s.http, tid, delivery="heavy-1", body=heavy)
    assert r.status_code == 202, r.text

    async def errored() -> bool:
        st = await _status(s, tid)
        return bool(st["filtered"].get("error") == 1)  # type: ignore[attr-defined]

    await eventually(errored, timeout=10)
    st = await _status(s, tid)
    errors = st["condition_errors"]
    assert isinstance(errors, list) and errors[-1]["event_id"] == "heavy-1"
    assert "budget" in errors[-1]["error"]
    # The next, normal event passes the same condition and starts its run within 10 s.
    light = github_body(items=[1, 2, 3])
    r = await post_github(s.http, tid, delivery="light-1", body=light)
    assert r.status_code == 202
    handle = s.client.get_workflow_handle(run_workflow_id(tid, "light-1"))
    await eventually(lambda: _described(handle), timeout=10)
    desc = await s.client.get_workflow_handle(f"trigger:{tid}").describe()
    assert desc.status == WorkflowExecutionStatus.RUNNING


async def test_refused_target_is_recorded_and_the_trigger_goes_on(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    body = github_trigger(name="refused")
    tid = (await s.create_trigger(body))["id"]
    # A target the API accepts but the server refuses: the trigger workflow must not send
    # the start (a refused command fails its workflow task on every retry).
    from sqlmodel import select

    from triggers.infra.db import make_engine, session_factory
    from triggers.infra.models import TaskQueueGrant, Trigger

    engine = make_engine(s.settings.resolved_database_url)
    async with session_factory(engine)() as session:
        row = (await session.exec(select(Trigger).where(Trigger.id == uuid.UUID(tid)))).one()
        row.target = {"kind": "workflow", "workflow_type": "Nope", "task_queue": "/_sys/x"}
        session.add(row)
        # Allowed as far as the API is concerned: only the server refuses the name.
        session.add(TaskQueueGrant(task_queue="/_sys/x", user_id=row.user_id))
        await session.commit()
    await engine.dispose()
    r = await s.http.patch(f"/api/triggers/{tid}", json={"name": "refused 2"}, headers=s.alice)
    assert r.status_code == 200, r.text
    r = await post_github(s.http, tid, delivery="refused-1")
    assert r.status_code == 202

    async def recorded() -> bool:
        st = await _status(s, tid)
        return st["failed_starts"] == 1

    await eventually(recorded, timeout=10)
    st = await _status(s, tid)
    failure = st["start_failures"][-1]  # type: ignore[index]
    assert failure["event_key"] == "refused-1" and "/_sys/" in failure["error"]
    r = await s.http.patch(
        f"/api/triggers/{tid}", json={"target": {"kind": "run"}}, headers=s.alice
    )
    assert r.status_code == 200, r.text
    await _runs_within_10s(s, tid, "after-refused")
    assert (await _status(s, tid))["failed_starts"] == 1


async def test_json_depth_is_bounded(sqlite_stack: Stack) -> None:
    from triggers.providers.webhook import MAX_JSON_DEPTH

    s = sqlite_stack
    tid = (await s.create_trigger(github_trigger(name="deep")))["id"]

    def nested(depth: int) -> bytes:
        return ("[" * (depth - 1) + "{}" + "]" * (depth - 1)).encode()

    for depth, code in ((MAX_JSON_DEPTH, 202), (MAX_JSON_DEPTH + 1, 400)):
        r = await post_github(s.http, tid, delivery=f"deep-{depth}", body=nested(depth))
        assert r.status_code == code, (depth, r.text)
    for depth in (10 * MAX_JSON_DEPTH, 10_000):
        r = await post_github(s.http, tid, delivery=f"deep-{depth}", body=nested(depth))
        assert r.status_code == 400 and "nests deeper" in r.json()["detail"], r.text
    # The connection and the trigger are fine afterwards.
    await _runs_within_10s(s, tid, "shallow-after-deep")
