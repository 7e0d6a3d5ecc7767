"""History stays bounded whatever comes in: large event data waits in the database (claim
check), runs still receive it, and the trigger workflow continues as new by history size
and length while events are pending, terminating nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.worker import Worker

from tests.conftest import Stack, eventually, stack_with_worker
from tests.helpers import count_runs, github_trigger, post_github
from tests.user_workflows import UserEcho
from triggers.core.events import CLAIM_CHECK_BYTES, run_workflow_id, trigger_workflow_id
from workflows.trigger import CONTINUE_AT_BYTES, CONTINUE_AT_LENGTH

# The bound this test holds every run of the trigger workflow to (README "Bounds"):
# the continue-as-new marks plus what one drain of in-flight starts may add.
HISTORY_LENGTH_BOUND = CONTINUE_AT_LENGTH + 2_000
HISTORY_BYTES_BOUND = CONTINUE_AT_BYTES + 2 * 1024 * 1024


@pytest.fixture
async def cc_stack(sqlite_url: str, client: Client, secret_keys: str) -> AsyncIterator[Stack]:
    # "As fast as the API accepts them": the rate limit is not what is tested here.
    async with stack_with_worker(
        sqlite_url,
        client,
        secret_keys,
        webhook_rate_limit_per_second=100_000.0,
        webhook_rate_limit_burst=100_000,
    ) as stack:
        await stack.claim_queues(f"user-{stack.settings.task_queue}")
        async with Worker(
            client, task_queue=f"user-{stack.settings.task_queue}", workflows=[UserEcho]
        ):
            yield stack


def _body(i: int, size: int) -> bytes:
    """A GitHub-like body of exactly ``size`` bytes."""
    head = {"ref": "refs/heads/main", "n": i, "pad": ""}
    base = len(json.dumps(head).encode())
    head["pad"] = "x" * (size - base)
    body = json.dumps(head).encode()
    assert len(body) == size
    return body


async def _trigger_runs(client: Client, tid: str) -> list[tuple[str, Any, int, int]]:
    """Every run of the trigger workflow: run id, status, history length and bytes."""
    out = []
    async for wf in client.list_workflows(f'WorkflowId = "{trigger_workflow_id(tid)}"'):
        handle = client.get_workflow_handle(wf.id, run_id=wf.run_id)
        history = await handle.fetch_history()
        size = sum(e.ByteSize() for e in history.events)
        out.append((wf.run_id, wf.status, len(history.events), size))
    return out


async def test_a_thousand_max_size_deliveries_all_run(cc_stack: Stack) -> None:
    s = cc_stack
    tid = (await s.create_trigger(github_trigger(name="big")))["id"]
    size = s.settings.webhook_max_body_bytes
    n = 1_000
    sem = asyncio.Semaphore(32)

    async def send(i: int) -> int:
        async with sem:
            r = await post_github(s.http, tid, delivery=f"big-{i}", body=_body(i, size))
            return r.status_code

    codes = await asyncio.gather(*(send(i) for i in range(n)))
    assert codes.count(202) == n

    async def all_ran() -> bool:
        return await count_runs(s.client, tid) == n

    await eventually(all_ran, timeout=240, interval=1.0)
    runs = await _trigger_runs(s.client, tid)
    # The figures (shown with pytest -s): each trigger-workflow run's history events, bytes.
    print("trigger history per run:", [(length, nbytes) for _, _, length, nbytes in runs])
    assert all(status != WorkflowExecutionStatus.TERMINATED for _, status, _, _ in runs)
    assert all(length <= HISTORY_LENGTH_BOUND for _, _, length, _ in runs), runs
    assert all(nbytes <= HISTORY_BYTES_BOUND for _, _, _, nbytes in runs), runs
    # Each event's data is a reference in the trigger's history, not 256 KiB twice.
    assert sum(nbytes for *_, nbytes in runs) < n * 8 * 1024
    # A run still has the data.
    result = await s.client.get_workflow_handle(run_workflow_id(tid, "big-7")).result()
    assert result["event_key"] == "big-7"


async def test_runs_receive_the_data(cc_stack: Stack) -> None:
    s = cc_stack
    queue = f"user-{s.settings.task_queue}"
    body = github_trigger(name="echo")
    body["target"] = {"kind": "workflow", "workflow_type": "UserEcho", "task_queue": queue}
    tid = (await s.create_trigger(body))["id"]
    for i, size in enumerate((CLAIM_CHECK_BYTES, CLAIM_CHECK_BYTES + 1, 200_000)):
        raw = _body(i, size)
        r = await post_github(s.http, tid, delivery=f"echo-{i}", body=raw)
        assert r.status_code == 202, r.text
        handle = s.client.get_workflow_handle(run_workflow_id(tid, f"echo-{i}"))

        async def done(h: Any = handle) -> Any:
            return await h.result()

        echoed = await eventually(done, timeout=20)
        # The user's workflow gets the event whole, whatever its size.
        assert echoed["data"] == json.loads(raw)
        assert echoed["data_ref"] is None and echoed.get("verdict") is None

    # The built-in run target loads the data itself.
    r = await s.http.patch(
        f"/api/triggers/{tid}", json={"target": {"kind": "run"}}, headers=s.alice
    )
    assert r.status_code == 200
    assert (
        await post_github(s.http, tid, delivery="built-in", body=_body(9, 100_000))
    ).status_code == 202
    handle = s.client.get_workflow_handle(run_workflow_id(tid, "built-in"))
    result = await eventually(lambda: handle.result(), timeout=20)
    assert result["event_key"] == "built-in"
    history = await handle.fetch_history()
    assert any(
        e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == "load_payload"
        for e in history.events
    )
