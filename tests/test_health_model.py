"""The per-trigger health model (issue 11): one ``health`` shape in every trigger's status,
whatever its provider; ``GET /api/health/triggers`` listing the caller's triggers that
need attention, bounded; the source health gauges on ``/metrics``."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import fields
from typing import Any

import asyncpg
import httpx
import pytest
from pydantic import SecretStr
from temporalio.client import Client

from api.app import create_app
from tests.conftest import PG_DSN, Stack, eventually, make_stack, need_service
from tests.helpers import github_trigger, post_github
from tests.pg_stream import PgQueue, PgQueueStream, create_queue
from triggers.contracts.health import TriggerHealth
from triggers.infra.metrics import Metrics
from triggers.infra.settings import Settings
from triggers.providers import ProviderInfo, register
from workers.main import build_worker
from workers.ports import free_port

register(ProviderInfo.of(PgQueueStream))

HEALTH_KEYS = {f.name for f in fields(TriggerHealth)}


async def _status(s: Stack, tid: str, user: dict[str, str] | None = None) -> dict[str, Any]:
    r = await s.http.get(f"/api/triggers/{tid}/status", headers=user or s.alice)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


async def _health_list(s: Stack, user: dict[str, str], **params: Any) -> dict[str, Any]:
    r = await s.http.get("/api/health/triggers", params=params, headers=user)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


@asynccontextmanager
async def _stack(sqlite_url: str, client: Client, secret_keys: str) -> AsyncIterator[Stack]:
    """The stack and its worker sharing one registry, so the API's ``/metrics`` shows the
    worker's source gauges (as ``triggers dev`` does)."""
    metrics = Metrics()
    queue = f"health-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        task_queue=queue, database_url=sqlite_url, secret_keys=SecretStr(secret_keys)
    )
    async with (
        build_worker(client, settings, metrics=metrics),
        make_stack(sqlite_url, client, queue, secret_keys, metrics=metrics) as s,
    ):
        yield s


@pytest.fixture
async def pg_queue() -> AsyncIterator[PgQueue]:
    try:
        conn = await asyncpg.connect(PG_DSN, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        need_service("PostgreSQL at 127.0.0.1:5432", str(exc))
    queue = PgQueue(conn, f"q_{uuid.uuid4().hex[:12]}")
    await create_queue(conn, queue.name)
    yield queue
    await queue.drop()
    await conn.close()


def _stream_trigger(queue: PgQueue) -> dict[str, Any]:
    return {
        "name": "queue",
        "provider": "test_pg_queue",
        "config": {"dsn": PG_DSN, "queue": queue.name},
        "secrets": {"password": "unused-by-trust-auth"},
    }


def _failing_list(name: str = "flaky", **config: Any) -> dict[str, Any]:
    # retry_after 0.2 s (the provider's): attempts come fast, each one failing.
    return {
        "name": name,
        "provider": "test_list",
        "config": {"items": ["a"], "fail_times": 1_000, **config},
    }


async def test_webhook_cron_and_stream_triggers_report_the_same_health(
    sqlite_url: str, client: Client, secret_keys: str, pg_queue: PgQueue
) -> None:
    async with _stack(sqlite_url, client, secret_keys) as s:
        hook = (await s.create_trigger(github_trigger(name="hook")))["id"]
        cron = (
            await s.create_trigger({"name": "tick", "provider": "cron", "config": {"every": "1s"}})
        )["id"]
        stream = (await s.create_trigger(_stream_trigger(pg_queue)))["id"]
        assert (await post_github(s.http, hook, delivery="health-1")).status_code == 202
        await pg_queue.publish_raw([json.dumps({"n": 1}).encode()])

        async def healthy(tid: str, *need: str) -> dict[str, Any] | None:
            h: dict[str, Any] = (await _status(s, tid))["health"]
            ok = h["state"] == "active" and all(h[k] is not None for k in need)
            return h if ok else None

        by_kind = {
            "webhook": await eventually(lambda: healthy(hook, "last_event_time", "last_run_start")),
            "cron": await eventually(
                lambda: healthy(cron, "last_run_start", "cursor_age_seconds"), timeout=20
            ),
            "stream": await eventually(
                lambda: healthy(stream, "last_run_start", "lag"), timeout=30, interval=0.2
            ),
        }
        for kind, h in by_kind.items():
            assert set(h) == HEALTH_KEYS, kind
            assert h["consecutive_errors"] == 0 and h["next_retry_at"] is None, kind
            assert h["reason"] is None, kind
        # What only some kinds have is null for the others, never missing.
        assert by_kind["webhook"]["cursor_age_seconds"] is None
        assert by_kind["webhook"]["lag"] is None
        assert by_kind["cron"]["lag"] is None
        assert 0 <= by_kind["cron"]["cursor_age_seconds"] < 20
        assert by_kind["stream"]["cursor_age_seconds"] is None
        assert by_kind["stream"]["paused_by_backpressure"] is False
        # Healthy triggers are not listed.
        listed = await _health_list(s, s.alice)
        assert listed["items"] == [] and listed["examined"] == 3 and listed["total"] == 3

        # The worker's source gauges, on the same /metrics.
        async def gauges() -> str | None:
            text = (await s.http.get("/metrics")).text
            connected = 'triggers_source_health{provider="test_pg_queue",state="connected"} 1.0'
            lag = 'triggers_source_lag{provider="test_pg_queue"}'
            return text if connected in text and lag in text else None

        text = await eventually(gauges, timeout=20, interval=0.2)
        assert "# TYPE triggers_source_oldest_unaccepted_seconds gauge" in text


async def test_a_failing_source_is_degraded_then_failing_and_listed(
    sqlite_url: str, client: Client, secret_keys: str
) -> None:
    async with _stack(sqlite_url, client, secret_keys) as s:
        ok = (await s.create_trigger(github_trigger(name="fine")))["id"]
        bad = (await s.create_trigger(_failing_list()))["id"]

        async def degraded() -> dict[str, Any] | None:
            h: dict[str, Any] = (await _status(s, bad))["health"]
            return h if h["state"] == "degraded" else None

        h = await eventually(degraded, timeout=20, interval=0.02)
        assert 1 <= h["consecutive_errors"] < 3
        assert "source unavailable" in h["reason"]

        async def failing() -> dict[str, Any] | None:
            h: dict[str, Any] = (await _status(s, bad))["health"]
            ready = h["state"] == "failing" and h["next_retry_at"] is not None
            return h if ready else None

        h = await eventually(failing, timeout=30, interval=0.05)
        assert h["consecutive_errors"] >= 3
        assert "consecutive source errors" in h["reason"] and "next retry at" in h["reason"]
        assert h["reconnects"] >= 2

        async def listed() -> dict[str, Any] | None:
            page = await _health_list(s, s.alice)
            mine = [i for i in page["items"] if i["trigger_id"] == bad]
            return page if mine and mine[0]["state"] == "failing" else None

        page = await eventually(listed, timeout=20)
        assert [i["trigger_id"] for i in page["items"]] == [bad]
        assert ok not in json.dumps(page)
        (item,) = page["items"]
        assert item["provider"] == "test_list" and item["name"] == "flaky"
        assert set(item["health"]) == HEALTH_KEYS
        assert "consecutive source errors" in item["reason"]

        # The gauge counts the failing loop.
        async def gauge() -> bool:
            text = (await s.http.get("/metrics")).text
            return 'triggers_source_health{provider="test_list",state="failing"} 1.0' in text

        await eventually(gauge, timeout=20)

        # A configuration error fails at once (no retries), with the error in words.
        broken = (await s.create_trigger(_failing_list("broken", invalid=True)))["id"]

        async def config_failing() -> dict[str, Any] | None:
            h: dict[str, Any] = (await _status(s, broken))["health"]
            return h if h["state"] == "failing" else None

        h = await eventually(config_failing, timeout=20)
        assert "configuration fails: items source refused the configuration" in h["reason"]

        # Paginated: one trigger examined per call, the failing ones found on their pages.
        seen: list[str] = []
        offset: int | None = 0
        while offset is not None:
            page = await _health_list(s, s.alice, limit=1, offset=offset)
            assert page["examined"] == 1 and page["total"] == 3
            seen += [i["trigger_id"] for i in page["items"]]
            offset = page["next_offset"]
        assert sorted(seen) == sorted([bad, broken])


async def test_only_the_owner_and_shares_see_a_trigger_health(
    sqlite_url: str, client: Client, secret_keys: str
) -> None:
    async with _stack(sqlite_url, client, secret_keys) as s:
        bad = (await s.create_trigger(_failing_list(invalid=True)))["id"]

        async def listed(user: dict[str, str]) -> bool:
            return any(i["trigger_id"] == bad for i in (await _health_list(s, user))["items"])

        await eventually(lambda: listed(s.alice), timeout=20)
        stranger = await _health_list(s, s.carol)
        assert stranger["items"] == [] and stranger["total"] == 0 and stranger["examined"] == 0
        r = await s.http.put(
            f"/api/triggers/{bad}/shares", json={"user": "bob", "role": "viewer"}, headers=s.alice
        )
        assert r.status_code == 200, r.text
        assert await listed(s.bob)
        assert (await _health_list(s, s.carol))["items"] == []
        r = await s.http.get("/api/health/triggers")
        assert r.status_code == 401


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"lag_threshold": 10_000_001}, "lag_threshold"),
        ({"lag_threshold": 0}, "lag_threshold"),
        ({"lag_threshold": "many"}, "lag_threshold"),
        ({"limit": 101}, "limit"),
        ({"offset": -1}, "offset"),
    ],
)
async def test_parameters_beyond_their_bounds_are_422_naming_them(
    sqlite_url: str, client: Client, secret_keys: str, params: dict[str, Any], field: str
) -> None:
    async with make_stack(sqlite_url, client, "unused", secret_keys) as s:
        r = await s.http.get("/api/health/triggers", params=params, headers=s.alice)
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["loc"] == ["query", field]
        at_bound = await _health_list(s, s.alice, lag_threshold=10_000_000, limit=100)
        assert at_bound["lag_threshold"] == 10_000_000 and at_bound["limit"] == 100
        assert (await _health_list(s, s.alice))["lag_threshold"] == 1_000  # the default


async def test_lagging_at_the_threshold_is_listed(
    sqlite_url: str, client: Client, secret_keys: str, pg_queue: PgQueue
) -> None:
    async with _stack(sqlite_url, client, secret_keys) as s:
        tid = (await s.create_trigger(_stream_trigger(pg_queue)))["id"]
        # Messages the broker holds and cannot deliver yet (hidden for an hour): lag 3.
        for _ in range(3):
            await pg_queue.conn.execute(
                f"INSERT INTO {pg_queue.name} (payload, visible_at) "
                "VALUES ('{}', now() + interval '1 hour')"
            )

        async def lag_known() -> bool:
            if (await _status(s, tid))["health"]["lag"] == 3:
                return True
            # The runtime tells a changed lag with its next signal (or within 30 s without
            # one): a delivery brings it sooner.
            await pg_queue.publish_raw([b"{}"])
            return False

        await eventually(lag_known, timeout=30, interval=1.0)
        assert (await _health_list(s, s.alice))["items"] == []  # under the default
        (item,) = (await _health_list(s, s.alice, lag_threshold=3))["items"]
        assert item["trigger_id"] == tid and item["state"] == "lagging"
        assert item["reason"] == "3 events behind (lag 3, backlog 0), at or over lag_threshold 3"
        assert item["health"]["state"] == "active"  # the workflow's own mark is 1,000
        assert (await _health_list(s, s.alice, lag_threshold=4))["items"] == []

        async def lag_gauge() -> bool:
            text = (await s.http.get("/metrics")).text
            return 'triggers_source_lag{provider="test_pg_queue"} 3.0' in text

        await eventually(lag_gauge, timeout=20)


async def test_a_workflow_that_does_not_answer_is_unknown_and_temporal_down_is_503(
    sqlite_url: str, client: Client, secret_keys: str
) -> None:
    # No worker polls this queue: the trigger workflow exists and never answers a query.
    async with make_stack(sqlite_url, client, f"idle-{uuid.uuid4().hex[:8]}", secret_keys) as s:
        tid = (await s.create_trigger(github_trigger(name="silent")))["id"]
        page = await _health_list(s, s.alice)
        (item,) = page["items"]
        assert item["trigger_id"] == tid and item["state"] == "unknown"
        assert "did not answer its query in time" in item["reason"]
        assert set(item["health"]) == HEALTH_KEYS

        # Temporal unreachable (a lazy client that never connected): 503 with Retry-After.
        nowhere = await Client.connect(f"127.0.0.1:{free_port()}", lazy=True)
        app = create_app(s.settings, client=nowhere, metrics=Metrics())
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                r = await http.get("/api/health/triggers", headers=s.alice)
        assert r.status_code == 503, r.text
        assert r.headers["Retry-After"] == str(s.settings.retry_after_seconds)
        assert r.json()["detail"].startswith("health unknown: Temporal is unreachable")
