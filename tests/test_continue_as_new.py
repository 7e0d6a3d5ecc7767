"""Continue-as-new keeps dedup and never kills in-flight runs (server suggests CAN early)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.worker import Worker

from tests.conftest import Stack, eventually, stack_with_worker
from tests.helpers import count_runs, github_trigger, post_github, runs_query
from tests.user_workflows import HeldRun
from triggers.core.events import run_workflow_id, trigger_workflow_id
from triggers.infra.db import upgrade
from workers.devserver import DevServer


@pytest.fixture
async def can_stack(tmp_path: Path, secret_keys: str) -> AsyncIterator[tuple[Stack, str]]:
    server = DevServer(
        headless=True, dynamic_config={"limit.historyCount.suggestContinueAsNew": 40}
    )
    await server.start()
    try:
        client = await Client.connect(server.address)
        url = f"sqlite+aiosqlite:///{tmp_path / 'can.db'}"
        await asyncio.to_thread(upgrade, url)
        async with stack_with_worker(
            url,
            client,
            secret_keys,
            webhook_rate_limit_per_second=100_000.0,
            webhook_rate_limit_burst=100_000,
        ) as stack:
            user_queue = f"user-{stack.settings.task_queue}"
            await stack.claim_queues(user_queue)
            async with Worker(client, task_queue=user_queue, workflows=[HeldRun]):
                yield stack, user_queue
    finally:
        await server.stop()


async def test_dedup_and_in_flight_runs_survive_continue_as_new(
    can_stack: tuple[Stack, str],
) -> None:
    s, user_queue = can_stack
    body = github_trigger()
    body["target"] = {"kind": "workflow", "workflow_type": "HeldRun", "task_queue": user_queue}
    tid = (await s.create_trigger(body))["id"]

    # A run that is still in flight when its trigger continues as new.
    assert (await post_github(s.http, tid, delivery="held-0")).status_code == 202
    held = s.client.get_workflow_handle(run_workflow_id(tid, "held-0"))

    async def held_running() -> bool:
        return (await held.describe()).status == WorkflowExecutionStatus.RUNNING

    await eventually(held_running)

    async def status() -> dict[str, int]:
        r = await s.http.get(f"/api/triggers/{tid}/status", headers=s.alice)
        data: dict[str, int] = r.json()
        return data

    sent = ["held-0"]
    i = 0
    while (await status())["continued_as_new"] < 2:
        assert i < 200, "the trigger workflow never continued as new"
        batch = [f"e-{i + j}" for j in range(5)]
        i += 5
        responses = await asyncio.gather(*(post_github(s.http, tid, delivery=d) for d in batch))
        assert all(r.status_code == 202 for r in responses)
        sent += batch

    # Across the new runs: repeats of old deliveries start nothing, and a burst of new and
    # old deliveries together yields exactly one run per distinct key.
    s_before = await status()
    repeats = sent[:10]
    fresh = [f"late-{j}" for j in range(15)]
    responses = await asyncio.gather(
        *(post_github(s.http, tid, delivery=d) for d in repeats + fresh + repeats)
    )
    assert all(r.status_code == 202 for r in responses)
    sent += fresh

    async def all_runs() -> bool:
        return await count_runs(s.client, tid) == len(sent)

    await eventually(all_runs, timeout=30)
    ids = sorted([wf.id async for wf in s.client.list_workflows(runs_query(tid))])
    assert ids == sorted(run_workflow_id(tid, d) for d in sent)
    assert s_before["continued_as_new"] >= 2

    # The run started before the first continue-as-new is still running, then completes.
    assert (await held.describe()).status == WorkflowExecutionStatus.RUNNING
    await held.signal(HeldRun.release)
    assert await held.result() == "released held-0"
    desc = await s.client.get_workflow_handle(trigger_workflow_id(tid)).describe()
    assert desc.status == WorkflowExecutionStatus.RUNNING


async def test_a_backlog_is_carried_and_spilled_never_waited_for(
    can_stack: tuple[Stack, str],
) -> None:
    """Continue-as-new every ~40 events while a burst is pending: the backlog rides along
    (the part too large for the input spilled to the database), and every event runs."""
    s, _ = can_stack
    tid = (await s.create_trigger(github_trigger(name="backlog")))["id"]
    sem = asyncio.Semaphore(32)

    async def send(i: int) -> int:
        async with sem:
            return (await post_github(s.http, tid, delivery=f"b-{i}")).status_code

    n = 1_500
    assert (await asyncio.gather(*(send(i) for i in range(n)))).count(202) == n

    async def all_ran() -> bool:
        return await count_runs(s.client, tid) == n

    await eventually(all_ran, timeout=180, interval=0.5)
    ids = [wf.id async for wf in s.client.list_workflows(runs_query(tid))]
    assert len(set(ids)) == n
    activities: set[str] = set()
    statuses = []
    async for wf in s.client.list_workflows(f'WorkflowId = "{trigger_workflow_id(tid)}"'):
        statuses.append(wf.status)
        history = await s.client.get_workflow_handle(wf.id, run_id=wf.run_id).fetch_history()
        for e in history.events:
            if e.HasField("activity_task_scheduled_event_attributes"):
                activities.add(e.activity_task_scheduled_event_attributes.activity_type.name)
    assert WorkflowExecutionStatus.TERMINATED not in statuses
    assert len(statuses) > 3  # it continued as new while the backlog was there
    assert {"spill_events", "unspill_events"} <= activities


async def test_the_overlap_guard_holds_across_continue_as_new(
    can_stack: tuple[Stack, str],
) -> None:
    """``overlap: skip`` with a run still running when the trigger continues as new: the
    next run of the trigger workflow keeps skipping until that run is over."""
    s, user_queue = can_stack
    body = {
        "name": "guarded",
        "provider": "cron",
        "config": {"every": "1s", "overlap": "skip"},
        "target": {"kind": "workflow", "workflow_type": "HeldRun", "task_queue": user_queue},
    }
    tid = (await s.create_trigger(body))["id"]

    async def status() -> dict[str, Any]:
        r = await s.http.get(f"/api/triggers/{tid}/status", headers=s.alice)
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        return data

    async def skipped_after_continue() -> bool:
        st = await status()
        return bool(st["continued_as_new"] >= 1 and st["skipped"] >= 2)

    await eventually(skipped_after_continue, timeout=60, interval=0.5)
    before = (await status())["continued_as_new"]

    async def skipped_in_new_run() -> bool:
        st = await status()
        return bool(st["continued_as_new"] > before and st["skipped"] >= 4)

    await eventually(skipped_in_new_run, timeout=60, interval=0.5)
    runs = [wf.id async for wf in s.client.list_workflows(runs_query(tid))]
    assert len(runs) == 1, runs  # the held run only: every later slot was skipped
    await s.client.get_workflow_handle(runs[0]).signal(HeldRun.release)

    async def second_run() -> bool:
        return await count_runs(s.client, tid) >= 2

    await eventually(second_run, timeout=30, interval=0.5)
    await s.http.post(f"/api/triggers/{tid}/disable", headers=s.alice)
    for wf_id in [wf.id async for wf in s.client.list_workflows(runs_query(tid))]:
        handle = s.client.get_workflow_handle(wf_id)
        if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            await handle.signal(HeldRun.release)
