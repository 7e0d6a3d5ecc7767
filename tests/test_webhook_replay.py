"""The replay window (``replay_window_seconds``): GitHub signs neither a timestamp nor the
delivery id, so a captured delivery sent again under a new ``X-GitHub-Delivery`` verifies.
With the window on, such a replay is refused (409) and starts nothing; on SQLite and
PostgreSQL, across API processes and restarts, and for concurrent replays."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlmodel import select
from temporalio.client import Client

from tests.api_proc import ApiProcess
from tests.conftest import Stack, eventually
from tests.helpers import SECRET, count_runs, github_body, github_trigger, post_github, runs_of
from triggers.core import vendor_signatures
from triggers.core.events import run_workflow_id
from triggers.infra import replays, store
from triggers.infra.db import make_engine, session_factory
from triggers.infra.models import WebhookFingerprint, utcnow
from triggers.infra.settings import Settings
from workers.devserver import DevServer
from workers.main import build_worker
from workers.sweeper import payload_sweeper


async def fingerprints(url: str) -> list[WebhookFingerprint]:
    engine = make_engine(url)
    try:
        async with session_factory(engine)() as session:
            return list((await session.exec(select(WebhookFingerprint))).all())
    finally:
        await engine.dispose()


async def assert_runs(client: Client, tid: str, deliveries: set[str]) -> None:
    """Temporal lists exactly the runs of ``deliveries`` for the trigger."""

    async def exactly() -> bool:
        return await count_runs(client, tid) == len(deliveries)

    await eventually(exactly, timeout=15)
    assert set(await runs_of(client, tid)) == {run_workflow_id(tid, d) for d in deliveries}


def replayed(r: httpx.Response) -> bool:
    return r.status_code == 409 and "replayed delivery" in r.json()["detail"]


async def test_window_bounds_are_validated(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    for bad in (0, -1, 604_801, "soon"):
        r = await s.http.post(
            "/api/triggers", json=github_trigger(replay_window_seconds=bad), headers=s.alice
        )
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["loc"] == ["body", "config", "replay_window_seconds"]
        assert SECRET not in r.text
    for good in (1, 604_800):
        await s.create_trigger(github_trigger(replay_window_seconds=good))
    tid = (await s.create_trigger(github_trigger()))["id"]
    r = await s.http.patch(
        f"/api/triggers/{tid}",
        json={"config": {"preset": "github", "replay_window_seconds": 0}},
        headers=s.alice,
    )
    assert r.status_code == 422 and "replay_window_seconds" in r.json()["detail"][0]["loc"]


async def test_replayed_body_with_a_new_delivery_id_is_refused(stack: Stack) -> None:
    s = stack
    tid = (await s.create_trigger(github_trigger(replay_window_seconds=3600)))["id"]
    body = github_body(n="captured")
    assert (await post_github(s.http, tid, delivery="orig", body=body)).status_code == 202
    r = await post_github(s.http, tid, delivery="attacker-1", body=body)
    assert replayed(r), r.text
    assert "3600 s" in r.json()["detail"] and SECRET not in r.text
    # The sender's own redelivery (same id) is the same event, not a replay.
    again = await post_github(s.http, tid, delivery="orig", body=body)
    assert again.status_code == 202 and again.json()["duplicate"] is True
    # Another body is another event.
    other = await post_github(s.http, tid, delivery="other", body=github_body(n="other"))
    assert other.status_code == 202
    assert replayed(await post_github(s.http, tid, delivery="attacker-2", body=body))
    await assert_runs(s.client, tid, {"orig", "other"})
    rows = await fingerprints(s.settings.resolved_database_url)
    assert sorted(r.event_key for r in rows) == ["orig", "other"]
    assert {r.fingerprint for r in rows} >= {replays.body_fingerprint(body)}


async def test_same_body_after_the_window_is_accepted(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    tid = (await s.create_trigger(github_trigger(replay_window_seconds=1)))["id"]
    body = github_body(n="windowed")
    assert (await post_github(s.http, tid, delivery="w1", body=body)).status_code == 202
    assert replayed(await post_github(s.http, tid, delivery="w2", body=body))

    async def accepted_later() -> bool:
        r = await post_github(s.http, tid, delivery="w3", body=body)
        assert r.status_code in (202, 409), r.text
        return r.status_code == 202

    await eventually(accepted_later, timeout=10, interval=0.2)
    # The window starts again from w3: now w4 is the replay.
    assert replayed(await post_github(s.http, tid, delivery="w4", body=body))
    await assert_runs(s.client, tid, {"w1", "w3"})


async def test_option_off_accepts_the_same_body_as_before(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    tid = (await s.create_trigger(github_trigger()))["id"]
    body = github_body(n="unguarded")
    for delivery in ("u1", "u2"):
        assert (await post_github(s.http, tid, delivery=delivery, body=body)).status_code == 202
    await assert_runs(s.client, tid, {"u1", "u2"})
    assert await fingerprints(s.settings.resolved_database_url) == []


async def test_concurrent_replays_give_exactly_one_202(stack: Stack) -> None:
    s = stack
    tid = (await s.create_trigger(github_trigger(replay_window_seconds=600)))["id"]
    body = github_body(n="raced")
    answers = await asyncio.gather(
        *(post_github(s.http, tid, delivery=f"race-{i}", body=body) for i in range(20))
    )
    codes = sorted(r.status_code for r in answers)
    assert codes == [202] + [409] * 19, codes
    (winner,) = [r.json()["event_key"] for r in answers if r.status_code == 202]
    await assert_runs(s.client, tid, {winner})


@pytest.fixture
async def two_apis(
    db_url: str, temporal: DevServer, client: Client, secret_keys: str, tmp_path: Path
) -> AsyncIterator[tuple[list[ApiProcess], httpx.AsyncClient]]:
    """Two ``triggers api`` processes on one database, a worker, and a client with a key."""
    engine = make_engine(db_url)
    async with session_factory(engine)() as session:
        user = await store.create_user(session, name="alice")
        key = await store.create_api_key(session, user=user)
    await engine.dispose()
    queue = f"replay-{uuid.uuid4().hex[:8]}"
    apis = [
        ApiProcess(
            temporal=temporal.address,
            database_url=db_url,
            task_queue=queue,
            secret_keys=secret_keys,
            log=tmp_path / f"api-{i}.log",
        )
        for i in range(2)
    ]
    settings = Settings(task_queue=queue, database_url=db_url, secret_keys=SecretStr(secret_keys))
    async with build_worker(client, settings):
        try:
            await asyncio.gather(*(api.start() for api in apis))
            async with httpx.AsyncClient(
                headers={"Authorization": f"Bearer {key}"}, timeout=30
            ) as http:
                yield apis, http
        finally:
            for api in apis:
                api.stop()
    for api in apis:
        assert SECRET not in api.log.read_text()


async def test_replays_are_refused_across_api_processes_and_restarts(
    two_apis: tuple[list[ApiProcess], httpx.AsyncClient], client: Client
) -> None:
    apis, http = two_apis
    r = await http.post(
        f"{apis[0].url}/api/triggers", json=github_trigger(replay_window_seconds=3600)
    )
    assert r.status_code == 201, r.text
    tid = r.json()["id"]
    body = github_body(n="two processes")

    def post(api: ApiProcess, delivery: str) -> httpx.Request:
        return http.build_request(
            "POST",
            f"{api.url}/webhooks/github/{tid}",
            content=body,
            headers={
                "content-type": "application/json",
                "X-GitHub-Event": "push",
                **vendor_signatures.sign_github(SECRET, body, delivery_id=delivery),
            },
        )

    answers = await asyncio.gather(*(http.send(post(apis[i % 2], f"p-{i}")) for i in range(16)))
    codes = sorted(a.status_code for a in answers)
    assert codes == [202] + [409] * 15, codes
    (winner,) = [a.json()["event_key"] for a in answers if a.status_code == 202]
    # A restarted API remembers: the fingerprint is in the database, not in the process.
    for api in apis:
        api.stop()
    await apis[1].start()
    assert replayed(await http.send(post(apis[1], "after-restart")))
    await assert_runs(client, tid, {winner})


async def test_the_worker_sweeps_expired_fingerprints(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    url = s.settings.resolved_database_url
    tid = (await s.create_trigger(github_trigger(replay_window_seconds=3600)))["id"]
    engine = make_engine(url)
    now = utcnow()
    try:
        async with session_factory(engine)() as session:
            for key, age in (("old", 7200), ("young", 60)):
                assert await replays.claim(
                    session,
                    trigger_id=uuid.UUID(tid),
                    fingerprint=replays.body_fingerprint(key.encode()),
                    event_key=key,
                    window_seconds=3600,
                    now=now - timedelta(seconds=age),
                )
    finally:
        await engine.dispose()
    async with payload_sweeper(Settings(database_url=url), interval=0.05):

        async def swept() -> bool:
            return [r.event_key for r in await fingerprints(url)] == ["young"]

        await eventually(swept)
