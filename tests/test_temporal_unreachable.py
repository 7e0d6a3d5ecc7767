"""Temporal down: the sender gets 503 + Retry-After and nothing is lost once it is back."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

from temporalio.client import Client

from tests.conftest import eventually, make_stack
from tests.helpers import count_runs, github_trigger, post_github, runs_query
from triggers.infra.db import upgrade
from triggers.infra.settings import Settings
from workers.devserver import DevServer
from workers.main import build_worker
from workers.ports import free_port


async def test_503_while_down_then_the_same_delivery_makes_one_run(
    tmp_path: Path, secret_keys: str
) -> None:
    port = free_port()
    db_file = tmp_path / "temporal.db"
    server = DevServer(headless=True, port=port, db_filename=db_file)
    await server.start()
    client = await Client.connect(server.address)
    queue = f"down-{uuid.uuid4().hex[:6]}"
    url = f"sqlite+aiosqlite:///{tmp_path / 'down.db'}"
    await asyncio.to_thread(upgrade, url)
    try:
        async with build_worker(client, Settings(task_queue=queue)):
            async with make_stack(url, client, queue, secret_keys, retry_after_seconds=7) as s:
                tid = (await s.create_trigger(github_trigger()))["id"]
                assert (await post_github(s.http, tid, delivery="before")).status_code == 202

                async def first_run() -> bool:
                    return await count_runs(client, tid) == 1

                await eventually(first_run)

                await server.stop()
                began = time.monotonic()
                r = await post_github(s.http, tid, delivery="during")
                assert r.status_code == 503, r.text
                assert r.headers["retry-after"] == "7"
                assert "Traceback" not in r.text
                assert r.json() == {
                    "detail": "event not accepted: Temporal is unreachable (UNAVAILABLE); "
                    "retry later"
                }
                assert time.monotonic() - began < 15
                r = await s.http.get(f"/api/triggers/{tid}/status", headers=s.alice)
                assert r.status_code == 503 and r.headers["retry-after"] == "7"
                assert r.json()["detail"].startswith("status unknown: Temporal is unreachable")
                # A change that Temporal cannot be told of is not made either.
                r = await s.http.patch(
                    f"/api/triggers/{tid}", json={"name": "renamed"}, headers=s.alice
                )
                assert r.status_code == 503 and r.headers["retry-after"] == "7"
                row = (await s.http.get(f"/api/triggers/{tid}", headers=s.alice)).json()
                assert row["name"] == "gh" and row["config_version"] == 1

                restarted = DevServer(headless=True, port=port, db_filename=db_file)
                await restarted.start()
                server = restarted

                async def accepted() -> bool:
                    again = await post_github(s.http, tid, delivery="during")
                    assert again.status_code == 202, again.text
                    return True

                await eventually(accepted, timeout=30)
                retry = await post_github(s.http, tid, delivery="during")
                assert retry.status_code == 202

                async def two_runs() -> bool:
                    return await count_runs(client, tid) == 2

                await eventually(two_runs, timeout=30)
                ids = sorted([wf.id async for wf in client.list_workflows(runs_query(tid))])
                assert ids == [f"run:{tid}:before", f"run:{tid}:during"]
    finally:
        await server.stop()
