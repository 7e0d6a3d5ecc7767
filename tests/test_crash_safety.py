"""SIGKILL the worker mid-poll and mid-schedule, start a new one: every item and every slot
yields exactly one run, none lost, none repeated."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.client import Client

from tests.conftest import Stack, eventually, make_stack
from tests.helpers import count_runs, runs_of
from tests.worker_proc import WorkerProcess
from workers.devserver import DevServer


@dataclass
class CrashRig:
    stack: Stack
    worker: WorkerProcess
    tmp: Path


@pytest.fixture
async def rig(
    tmp_path: Path, sqlite_url: str, client: Client, temporal: DevServer, secret_keys: str
) -> AsyncIterator[CrashRig]:
    queue = f"crash-{uuid.uuid4().hex[:8]}"
    worker = WorkerProcess(
        temporal=temporal.address,
        database_url=sqlite_url,
        task_queue=queue,
        secret_keys=secret_keys,
        log=tmp_path / "worker.log",
    )
    await worker.start()
    try:
        async with make_stack(sqlite_url, client, queue, secret_keys) as stack:
            yield CrashRig(stack, worker, tmp_path)
    finally:
        worker.stop()


def _insert(db: Path, start: int, count: int) -> None:
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO items (id, seq, payload) VALUES (?, ?, ?)",
            [(f"item-{i}", i, f"p{i}") for i in range(start, start + count)],
        )


async def test_sql_poll_survives_a_killed_worker(rig: CrashRig) -> None:
    s = rig.stack
    db = rig.tmp / "source.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE items (id TEXT PRIMARY KEY, seq INTEGER, payload TEXT)")
    _insert(db, 0, 10)
    body = {
        "name": "rows",
        "provider": "sql_poll",
        "config": {
            "url": f"sqlite+aiosqlite:///{db}",
            "query": "SELECT id, seq, payload FROM items WHERE seq >= :cursor ORDER BY seq",
            "cursor_column": "seq",
            "id_column": "id",
            "initial_cursor": 0,
            "start_from": "beginning",
            "interval": "1s",
            "batch_size": 3,
        },
    }
    allow = {"entries": [f"file:{rig.tmp}"]}
    assert (await s.http.put("/api/me/network-allowlist", json=allow, headers=s.alice)).is_success
    tid = (await s.create_trigger(body))["id"]

    async def some() -> bool:
        return await count_runs(s.client, tid) >= 4

    await eventually(some, timeout=30)
    rig.worker.kill()  # mid-poll: batches of 3, one poll a second, rows still coming
    _insert(db, 10, 15)
    await rig.worker.start()
    _insert(db, 25, 5)

    async def all_rows() -> bool:
        return await count_runs(s.client, tid) >= 30

    await eventually(all_rows, timeout=60)
    ids = sorted(await runs_of(s.client, tid))
    assert ids == sorted(f"run:{tid}:item-{i}@{i}" for i in range(30))


async def test_cron_survives_a_killed_worker(rig: CrashRig) -> None:
    s = rig.stack
    body = {
        "name": "tick",
        "provider": "cron",
        "config": {"cron": "* * * * * *", "catchup": "all", "catchup_window": "5m"},
    }
    tid = (await s.create_trigger(body))["id"]

    async def fired() -> bool:
        return await count_runs(s.client, tid) >= 3

    await eventually(fired, timeout=30)
    rig.worker.kill()  # mid-schedule
    killed_at = datetime.now(UTC)
    await rig.worker.start()

    def seconds(run_ids: list[str]) -> list[int]:
        return sorted(int(datetime.fromisoformat(r.split(":", 2)[2]).timestamp()) for r in run_ids)

    async def caught_up() -> bool:
        got = seconds(await runs_of(s.client, tid))
        return got[-1] > killed_at.timestamp() + 2 and got == list(range(got[0], got[-1] + 1))

    await eventually(caught_up, timeout=60)
    assert (await s.http.post(f"/api/triggers/{tid}/disable", headers=s.alice)).status_code == 200

    async def stopped() -> bool:
        desc = await s.client.get_workflow_handle(f"trigger:{tid}").describe()
        return desc.status is not None and desc.status.name == "COMPLETED"

    await eventually(stopped, timeout=30)
    # One run per second from the first slot to the last: nothing lost, nothing twice.
    got = seconds(await runs_of(s.client, tid))
    assert got == list(range(got[0], got[0] + len(got)))
    assert got[-1] - got[0] >= 8  # the slots while the worker was dead are among them
