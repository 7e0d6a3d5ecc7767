"""A signed webhook becomes exactly one durable run, end to end."""

from __future__ import annotations

import asyncio
import json
import uuid

from temporalio.client import WorkflowExecutionStatus
from temporalio.worker import Worker

from tests.conftest import Stack, eventually
from tests.helpers import count_runs, github_body, github_trigger, post_github, runs_of
from tests.user_workflows import UserDeploy
from triggers.core.events import run_workflow_id, trigger_workflow_id


async def test_signed_delivery_starts_one_run_with_the_event_as_input(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    trigger = await s.create_trigger(github_trigger())
    tid = trigger["id"]
    body = github_body(ref="refs/heads/main")

    r = await post_github(s.http, tid, delivery="delivery-1", body=body)

    assert r.status_code == 202, r.text
    assert r.json() == {
        "event_id": "delivery-1",
        "event_key": "delivery-1",
        "run_id": f"run:{tid}:delivery-1",
        "duplicate": False,
        "would_start": True,
        "captured": False,
    }

    async def listed() -> list[str]:
        return await runs_of(s.client, tid)

    assert await eventually(listed) == [f"run:{tid}:delivery-1"]
    handle = s.client.get_workflow_handle(run_workflow_id(tid, "delivery-1"))
    result = await handle.result()
    assert result["event_key"] == "delivery-1"
    assert result["event_type"] == "github.push"
    # The run's input is the event, as CloudEvents attributes plus data and headers.
    history = await handle.fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    (event,) = [json.loads(p.data) for p in started.input.payloads]
    assert event["data"] == {"ref": "refs/heads/main", "repository": {"full_name": "acme/app"}}
    assert event["type"] == "github.push"
    assert event["source"] == f"/webhooks/github/{tid}"
    assert event["subject"] == "acme/app"
    assert event["headers"]["x-github-event"] == "push"
    assert "x-hub-signature-256" not in event["headers"]
    desc = await handle.describe()
    assert desc.status == WorkflowExecutionStatus.COMPLETED
    assert (await desc.memo())["trigger_name"] == "gh"


async def test_same_delivery_sequentially_gives_one_run(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    tid = (await s.create_trigger(github_trigger()))["id"]
    first = await post_github(s.http, tid, delivery="seq-1")
    assert first.status_code == 202 and first.json()["duplicate"] is False
    # However the sender spells the trigger's UUID, it is the same trigger and the same run.
    for spelling in (tid, tid.upper(), tid.replace("-", ""), tid, tid.upper()):
        again = await post_github(s.http, spelling, delivery="seq-1")
        assert again.status_code == 202
        assert again.json()["duplicate"] is True

    async def one() -> bool:
        return await count_runs(s.client, tid) == 1

    await eventually(one)
    assert await runs_of(s.client, tid) == [f"run:{tid}:seq-1"]


async def test_same_delivery_concurrently_gives_one_run(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    tid = (await s.create_trigger(github_trigger()))["id"]
    responses = await asyncio.gather(
        *(post_github(s.http, tid, delivery="conc-1") for _ in range(20))
    )
    assert {r.status_code for r in responses} == {202}

    async def status() -> dict[str, int] | None:
        r = await s.http.get(f"/api/triggers/{tid}/status", headers=s.alice)
        st = r.json()
        return st if st["runs_started"] == 1 and st["pending"] == 0 else None

    st = await eventually(status)
    assert st["runs_started"] == 1
    assert await count_runs(s.client, tid) == 1
    # Every signalled copy is counted as received; the repeats as duplicates.
    assert st["events_received"] - st["duplicates"] == 1


async def test_distinct_deliveries_each_start_a_run(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    tid = (await s.create_trigger(github_trigger()))["id"]
    keys = [f"many-{i}" for i in range(25)]
    responses = await asyncio.gather(*(post_github(s.http, tid, delivery=k) for k in keys))
    assert all(r.status_code == 202 and not r.json()["duplicate"] for r in responses)

    async def all_there() -> bool:
        return await count_runs(s.client, tid) == len(keys)

    await eventually(all_there)
    assert sorted(await runs_of(s.client, tid)) == sorted(f"run:{tid}:{k}" for k in keys)


async def test_disable_answers_409_and_enable_works_again(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    tid = (await s.create_trigger(github_trigger()))["id"]
    r = await s.http.post(f"/api/triggers/{tid}/disable", headers=s.alice)
    assert r.status_code == 200 and r.json()["enabled"] is False
    assert r.json()["status"] == "disabled"

    refused = await post_github(s.http, tid, delivery="while-off")
    assert refused.status_code == 409

    async def stopped() -> bool:
        desc = await s.client.get_workflow_handle(trigger_workflow_id(tid)).describe()
        return desc.status == WorkflowExecutionStatus.COMPLETED

    await eventually(stopped)
    assert await count_runs(s.client, tid) == 0

    r = await s.http.post(f"/api/triggers/{tid}/enable", headers=s.alice)
    assert r.status_code == 200 and r.json()["enabled"] is True
    ok = await post_github(s.http, tid, delivery="after-on")
    assert ok.status_code == 202

    async def one() -> bool:
        return await runs_of(s.client, tid) == [f"run:{tid}:after-on"]

    await eventually(one)


async def test_user_workflow_target_gets_the_event(sqlite_stack: Stack) -> None:
    """A ``workflow`` target starts the user's own workflow type on their task queue."""
    s = sqlite_stack
    queue = f"user-{uuid.uuid4().hex[:6]}"
    body = github_trigger()
    body["target"] = {"kind": "workflow", "workflow_type": "UserDeploy", "task_queue": queue}
    await s.claim_queues(queue)
    tid = (await s.create_trigger(body))["id"]
    async with Worker(s.client, task_queue=queue, workflows=[UserDeploy]):
        r = await post_github(s.http, tid, delivery="user-1", body=github_body(ref="refs/tags/v1"))
        assert r.status_code == 202
        handle = s.client.get_workflow_handle(run_workflow_id(tid, "user-1"))

        async def done() -> str:
            return str(await handle.result())

        assert await eventually(done) == "deployed refs/tags/v1"
    desc = await handle.describe()
    assert desc.workflow_type == "UserDeploy"
