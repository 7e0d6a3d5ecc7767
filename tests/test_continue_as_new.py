"""Continue-as-new keeps dedup and never kills in-flight runs (server suggests CAN early)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.worker import Worker

from tests.conftest import Stack, eventually, make_stack
from tests.helpers import count_runs, github_trigger, post_github
from tests.user_workflows import HeldRun
from triggers.db import upgrade
from triggers.devserver import DevServer
from triggers.events import run_workflow_id, trigger_workflow_id
from triggers.settings import Settings
from workers.main import build_worker


@pytest.fixture
async def can_stack(tmp_path: Path, secret_keys: str) -> AsyncIterator[tuple[Stack, str]]:
    server = DevServer(
        headless=True, dynamic_config={"limit.historyCount.suggestContinueAsNew": 40}
    )
    await server.start()
    try:
        client = await Client.connect(server.address)
        queue = f"can-{uuid.uuid4().hex[:6]}"
        user_queue = f"user-{queue}"
        url = f"sqlite+aiosqlite:///{tmp_path / 'can.db'}"
        await asyncio.to_thread(upgrade, url)
        settings = Settings(task_queue=queue)
        async with (
            build_worker(client, settings),
            Worker(client, task_queue=user_queue, workflows=[HeldRun]),
        ):
            async with make_stack(url, client, queue, secret_keys) as stack:
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
    ids = sorted([wf.id async for wf in s.client.list_workflows(f'TriggerId="{tid}"')])
    assert ids == sorted(run_workflow_id(tid, d) for d in sent)
    assert s_before["continued_as_new"] >= 2

    # The run started before the first continue-as-new is still running, then completes.
    assert (await held.describe()).status == WorkflowExecutionStatus.RUNNING
    await held.signal(HeldRun.release)
    assert await held.result() == "released held-0"
    desc = await s.client.get_workflow_handle(trigger_workflow_id(tid)).describe()
    assert desc.status == WorkflowExecutionStatus.RUNNING
