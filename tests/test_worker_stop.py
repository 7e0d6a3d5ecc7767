"""``triggers worker`` stops cleanly and in bounded time on Ctrl-C (SIGINT) and SIGTERM,
while sources run and runs wait on slow HTTP calls."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from temporalio.client import Client

from tests.conftest import eventually, make_stack
from tests.helpers import github_trigger, post_github
from tests.local_http import LocalServer
from tests.worker_proc import WorkerProcess
from workers.devserver import DevServer

# A stop answers within the grace period given to running activities plus a margin.
GRACE_SECONDS = 2
STOP_BOUND = GRACE_SECONDS + 10.0
HOLD_SECONDS = GRACE_SECONDS + 1


@dataclass
class Slow:
    """``/hold`` answers after ``HOLD_SECONDS`` (longer than the grace: a call in flight at a
    stop may be cut short); ``/items`` at once, with no items."""

    server: LocalServer
    answered: list[float] = field(default_factory=list)

    def seen(self, path: str) -> int:
        return sum(r.path == path for r in self.server.requests)


@pytest.fixture
async def slow() -> AsyncIterator[Slow]:
    answered: list[float] = []

    async def handler(request: Request) -> Response:
        if request.url.path == "/hold":
            await asyncio.sleep(HOLD_SECONDS)
            answered.append(time.monotonic())
        return JSONResponse([])

    srv = LocalServer(handler=handler)
    await srv.start()
    yield Slow(srv, answered)
    await srv.stop()


async def test_repeated_stops_are_clean_and_bounded(
    tmp_path: Path,
    sqlite_url: str,
    client: Client,
    temporal: DevServer,
    secret_keys: str,
    slow: Slow,
) -> None:
    queue = f"stop-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "worker.log"
    worker = WorkerProcess(
        temporal=temporal.address,
        database_url=sqlite_url,
        task_queue=queue,
        secret_keys=secret_keys,
        log=log,
        env={"TRIGGERS_WORKER_SHUTDOWN_GRACE_SECONDS": str(GRACE_SECONDS)},
    )
    async with make_stack(sqlite_url, client, queue, secret_keys) as s:
        allow = {"entries": ["127.0.0.1"]}
        assert (
            await s.http.put("/api/me/network-allowlist", json=allow, headers=s.alice)
        ).is_success
        hold = {
            "id": "hold",
            "type": "http_request",
            "url": json.dumps(f"{slow.server.url}/hold"),
            "timeout_seconds": 300,
        }
        # A cron source firing every second, each run blocked in an HTTP call.
        tick = await s.create_trigger(
            {
                "name": "tick",
                "provider": "cron",
                "config": {"every": "1s"},
                "target": {"kind": "graph", "graph": {"nodes": [hold], "edges": []}},
            }
        )
        # A polling source, idle in its activity between polls.
        poll = await s.create_trigger(
            {
                "name": "poll",
                "provider": "http_poll",
                "config": {"url": f"{slow.server.url}/items", "interval": "1s", "id_field": "id"},
            }
        )
        hook = (await s.create_trigger(github_trigger()))["id"]
        outcomes: list[tuple[str, int | None, float]] = []
        try:
            for i, sig in enumerate([signal.SIGINT, signal.SIGTERM] * 5):
                await worker.start()
                since, held, polled = time.monotonic(), slow.seen("/hold"), slow.seen("/items")

                async def busy(
                    since: float = since, held: int = held, polled: int = polled
                ) -> bool:
                    # This worker completed calls, has one in flight and polls.
                    return (
                        any(t > since for t in slow.answered)
                        and slow.seen("/hold") > held
                        and slow.seen("/items") > polled
                    )

                await eventually(busy, timeout=30)
                # The earlier stops were no source errors: no backoff, no degraded status.
                r = await s.http.get(f"/api/triggers/{poll['id']}/status", headers=s.alice)
                assert r.status_code == 200, r.text
                assert (r.json()["status"], r.json()["consecutive_errors"]) == ("active", 0)
                for j in range(5):
                    r = await post_github(s.http, hook, delivery=f"d-{i}-{j}")
                    assert r.status_code == 202, r.text
                code, took = await worker.stop_with(sig, timeout=STOP_BOUND + 20)
                outcomes.append((sig.name, code, round(took, 1)))
        finally:
            worker.stop()
        # A stop cut HTTP calls short: they were retried, and no run failed for it.
        failed = f'TriggerId="{tick["id"]}" AND ExecutionStatus="Failed"'
        assert (await client.count_workflows(failed)).count == 0
    text = log.read_text()
    assert "Fatal Python error" not in text, text[-4000:]
    assert all(code == 0 and took < STOP_BOUND for _, code, took in outcomes), outcomes
