"""A trigger workflow never restarts empty: after an operator terminates it mid-stream, or
after a disable let it complete, the next run resumes its state; and once ``/disable`` has
answered, its source starts nothing more."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowExecutionStatus

from tests.conftest import Stack, eventually
from tests.helpers import count_runs, github_trigger, post_github, runs_of, status_of
from triggers.core.events import trigger_workflow_id
from workers.processes import temporal_binary


async def _terminate_with_cli(address: str, workflow_id: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        temporal_binary(),
        "workflow",
        "terminate",
        "--address",
        address,
        "--workflow-id",
        workflow_id,
        "--reason",
        "operator test",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()


async def test_terminated_mid_stream_resumes_without_loss(
    src_stack: Stack,
    temporal: Any,
) -> None:
    s = src_stack
    tid = (await s.create_trigger(github_trigger(name="terminated")))["id"]
    wid = trigger_workflow_id(tid)
    accepted: list[str] = []

    async def wave(prefix: str, n: int) -> None:
        rs = await asyncio.gather(
            *(post_github(s.http, tid, delivery=f"{prefix}-{i}") for i in range(n))
        )
        for i, r in enumerate(rs):
            assert r.status_code == 202, r.text
            accepted.append(f"{prefix}-{i}")

    await wave("a", 40)
    before = await status_of(s, tid)
    # Terminate while deliveries are still arriving.
    await asyncio.gather(wave("b", 40), _terminate_with_cli(temporal.address, wid))
    await wave("c", 40)

    async def all_ran() -> bool:
        return await count_runs(s.client, tid) == len(accepted)

    await eventually(all_ran, timeout=30)
    assert sorted(await runs_of(s.client, tid)) == sorted(f"run:{tid}:{d}" for d in accepted)
    closed = [wf.status async for wf in s.client.list_workflows(f'WorkflowId = "{wid}"')]
    assert WorkflowExecutionStatus.TERMINATED in closed

    async def settled() -> dict[str, Any] | None:
        st = await status_of(s, tid)
        return st if st["pending"] == 0 and st["last_recovery"] else None

    st = await eventually(settled, timeout=30)
    assert st["last_recovery"]["previous_status"] == "terminated"
    assert st["last_recovery"]["source"] in ("query", "history")
    # Counters continue from the terminated run instead of starting at zero.
    assert st["events_received"] >= before["events_received"] + 80
    assert st["runs_started"] + st["duplicates"] >= len(accepted)


async def test_enable_after_the_workflow_completed_resumes_counters(
    src_stack: Stack,
) -> None:
    s = src_stack
    tid = (await s.create_trigger(github_trigger(name="resume")))["id"]
    for i in range(3):
        assert (await post_github(s.http, tid, delivery=f"r-{i}")).status_code == 202
    await eventually(lambda: _runs_are(s, tid, 3))
    assert (await s.http.post(f"/api/triggers/{tid}/disable", headers=s.alice)).status_code == 200
    handle = s.client.get_workflow_handle(trigger_workflow_id(tid))
    await handle.result()
    assert (await s.http.post(f"/api/triggers/{tid}/enable", headers=s.alice)).status_code == 200
    # A repeat of an old delivery is still known; a new one runs.
    assert (await post_github(s.http, tid, delivery="r-0")).status_code == 202
    assert (await post_github(s.http, tid, delivery="r-3")).status_code == 202
    await eventually(lambda: _runs_are(s, tid, 4))
    st = await status_of(s, tid)
    assert st["runs_started"] == 4 and st["events_received"] >= 4
    assert st["last_recovery"] is None  # a completed run resumed is not an accident


async def _runs_are(s: Stack, tid: str, n: int) -> bool:
    return await count_runs(s.client, tid) == n


async def test_disable_stops_a_cron_source_at_once(src_stack: Stack) -> None:
    s = src_stack
    body = {"name": "every second", "provider": "cron", "config": {"every": "1s"}}
    tid = (await s.create_trigger(body))["id"]

    async def two() -> bool:
        return await count_runs(s.client, tid) >= 2

    await eventually(two, timeout=15)
    assert (await s.http.post(f"/api/triggers/{tid}/disable", headers=s.alice)).status_code == 200
    at_disable = await count_runs(s.client, tid)
    # Watch for longer than the source's heartbeat throttle (8 s) would have let it run on.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert await count_runs(s.client, tid) == at_disable
        await asyncio.sleep(0.5)
    handle = s.client.get_workflow_handle(trigger_workflow_id(tid))
    state = await handle.result()
    assert state["status"] == "disabled"


async def test_sql_poll_runs_rows_inserted_while_disabled_once(
    src_stack: Stack,
    tmp_path: Path,
) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    s = src_stack
    url = f"sqlite+aiosqlite:///{tmp_path / 'orders.db'}"
    engine = create_async_engine(url)

    async def sql(statement: str, **params: Any) -> None:
        async with engine.begin() as conn:
            await conn.execute(text(statement), params)

    await sql("CREATE TABLE orders (id INTEGER PRIMARY KEY, seq INTEGER NOT NULL)")
    await sql("INSERT INTO orders (id, seq) VALUES (0, 0)")
    r = await s.http.put(
        "/api/me/network-allowlist", json={"entries": [f"file:{tmp_path}"]}, headers=s.alice
    )
    assert r.status_code == 200, r.text
    body = {
        "name": "orders",
        "provider": "sql_poll",
        "config": {
            "url": url,
            "query": "SELECT id, seq FROM orders WHERE seq >= :cursor ORDER BY seq, id",
            "cursor_column": "seq",
            "id_column": "id",
            "initial_cursor": 0,
            "start_from": "now",
            "interval": "1s",
        },
    }
    tid = (await s.create_trigger(body))["id"]

    async def cursor_set() -> bool:
        return (await status_of(s, tid))["cursor"] is not None

    await eventually(cursor_set, timeout=15)
    for i in (1, 2):
        await sql("INSERT INTO orders (id, seq) VALUES (:i, :i)", i=i)
    await eventually(lambda: _runs_are(s, tid, 2), timeout=15)
    assert (await s.http.post(f"/api/triggers/{tid}/disable", headers=s.alice)).status_code == 200
    await s.client.get_workflow_handle(trigger_workflow_id(tid)).result()
    for i in (3, 4, 5):
        await sql("INSERT INTO orders (id, seq) VALUES (:i, :i)", i=i)
    assert (await s.http.post(f"/api/triggers/{tid}/enable", headers=s.alice)).status_code == 200
    await eventually(lambda: _runs_are(s, tid, 5), timeout=20)
    ids = sorted(await runs_of(s.client, tid))
    assert len(ids) == len(set(ids)) == 5
    assert all(any(run.startswith(f"run:{tid}:{i}@") for run in ids) for i in range(1, 6))
    assert (await status_of(s, tid))["runs_started"] == 5
    await engine.dispose()
