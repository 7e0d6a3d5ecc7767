"""Cron triggers through Temporal: runs on their slots, and the overlap policy."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from temporalio.client import WorkflowExecutionStatus
from temporalio.worker import Worker

from tests.conftest import Stack, eventually
from tests.helpers import runs_of
from tests.test_source_runtime import src_stack, status_of  # noqa: F401  (fixture)
from tests.user_workflows import HeldRun


def slot_of(run_id: str) -> datetime:
    return datetime.fromisoformat(run_id.split(":", 2)[2])


async def test_every_two_seconds_in_a_time_zone_fires_on_its_slots(
    src_stack: Stack,  # noqa: F811
) -> None:
    s = src_stack
    body = {
        "name": "every2",
        "provider": "cron",
        "config": {"cron": "*/2 * * * * *", "timezone": "Asia/Kolkata"},
    }
    tid = (await s.create_trigger(body))["id"]

    async def four() -> list[str]:
        ids = sorted(await runs_of(s.client, tid))
        return ids if len(ids) >= 4 else []

    ids = (await eventually(four, timeout=30))[:4]
    slots = [slot_of(i) for i in ids]
    assert all(t.second % 2 == 0 and t.microsecond == 0 for t in slots)
    assert [(b - a).total_seconds() for a, b in zip(slots, slots[1:], strict=False)] == [2, 2, 2]
    for run_id, slot in zip(ids, slots, strict=True):
        desc = await s.client.get_workflow_handle(run_id).describe()
        lateness = (desc.start_time - slot).total_seconds()
        assert 0 <= lateness < 1.5, (run_id, lateness)
    event = (await s.client.get_workflow_handle(ids[0]).fetch_history()).events[0]
    assert b"+05:30" in event.workflow_execution_started_event_attributes.input.payloads[0].data
    st = await status_of(s, tid)
    assert st["next_at"] is not None or st["cursor"] is not None


async def test_overlap_skip_drops_slots_while_a_run_is_still_running(
    src_stack: Stack,  # noqa: F811
) -> None:
    s = src_stack
    queue = f"held-{uuid.uuid4().hex[:6]}"
    body: dict[str, Any] = {
        "name": "no-overlap",
        "provider": "cron",
        "config": {"cron": "* * * * * *", "overlap": "skip"},
        "target": {"kind": "workflow", "workflow_type": "HeldRun", "task_queue": queue},
    }
    await s.claim_queues(queue)
    async with Worker(s.client, task_queue=queue, workflows=[HeldRun]):
        tid = (await s.create_trigger(body))["id"]

        async def skipped_some() -> dict[str, Any] | None:
            st = await status_of(s, tid)
            return st if st["skipped"] >= 3 else None

        st = await eventually(skipped_some, timeout=30)
        ids = await runs_of(s.client, tid)
        assert len(ids) == 1 and st["runs_in_flight"] == 1
        await s.client.get_workflow_handle(ids[0]).signal(HeldRun.release)

        async def next_one() -> bool:
            return len(await runs_of(s.client, tid)) == 2

        await eventually(next_one, timeout=30)
        await s.http.post(f"/api/triggers/{tid}/disable", headers=s.alice)
        for run_id in await runs_of(s.client, tid):
            handle = s.client.get_workflow_handle(run_id)
            if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                await handle.signal(HeldRun.release)
