"""The broker side goes away mid-stream and comes back: no message lost, none run twice.

- Redis Streams: a ``redis-server`` of the test's own, with the append-only file
  (``appendfsync always``), stopped and started on the same port while messages flow;
  its entries and the group's pending list survive, the source reconnects with backoff.
- Kafka: the consumer side stops and starts mid-stream, twice: a disable and an enable
  (the source is cancelled, its in-flight messages accepted and committed), then a worker
  restart (the same static member rejoins and resumes from the committed offsets). Tansu
  keeps its log in memory, so the broker itself is not restarted (``s3://`` storage on
  moto was not tried).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from redis.asyncio import Redis
from redis.exceptions import RedisError
from temporalio.client import Client

from tests.conformance import Workers
from tests.conftest import Stack, eventually, make_stack, need_service
from tests.helpers import count_runs, dead_letter_count, status_of
from tests.kafka_broker import TansuBroker
from tests.redis_server import RedisServer, redis_server_path
from tests.stream_sides import (
    KafkaSide,
    RedisSide,
    StreamSide,
    payloads,
    runs_reach,
    stream_trigger,
)
from triggers.infra.settings import Settings

TOTAL = 600
SETTLE = 120.0


@pytest.fixture
async def rig(
    sqlite_url: str, client: Client, secret_keys: str
) -> AsyncIterator[tuple[Stack, Workers]]:
    queue = f"restart-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        task_queue=queue, database_url=sqlite_url, secret_keys=SecretStr(secret_keys)
    )
    workers = Workers(client, settings)
    await workers.start()
    try:
        async with make_stack(sqlite_url, client, queue, secret_keys) as s:
            yield s, workers
    finally:
        await workers.stop()


async def settled(s: Stack, broker: StreamSide, tid: str, db: str) -> dict[str, object]:
    """Every message ran exactly once and is acked; nothing dead-lettered."""
    await runs_reach(s.client, tid, TOTAL, timeout=SETTLE)

    async def all_acked() -> bool:
        return await broker.unacked() == 0

    await eventually(all_acked, timeout=SETTLE, interval=0.5)
    assert await count_runs(s.client, tid) == TOTAL
    assert await dead_letter_count(db, tid) == 0
    return await status_of(s, tid)


async def test_redis_restart_with_the_append_only_file_mid_stream(
    rig: tuple[Stack, Workers], tmp_path: Path, sqlite_url: str
) -> None:
    if redis_server_path() is None:
        need_service("redis-server", "the program is not installed")
    s, _ = rig
    server = RedisServer(tmp_path / "redis")
    await server.start()
    try:
        broker = RedisSide(Redis.from_url(server.url), server.url)
        tid = await stream_trigger(s, "redis_streams", broker.config(max_in_flight=50))
        await broker.publish(payloads(0, TOTAL // 2))
        # Mid-stream: the source holds entries it has not acked when the server stops.
        await eventually(lambda: _holding(broker), timeout=SETTLE, interval=0.02)
        await server.stop()

        async def failing() -> bool:
            st = await status_of(s, tid)
            return bool(st["consecutive_errors"] >= 1)

        await eventually(failing, timeout=SETTLE)
        await server.start()  # same port, same folder: the append-only file is read back
        await broker.client.aclose()  # the test's own connection died with the server
        broker.client = Redis.from_url(server.url)
        await broker.publish(payloads(TOTAL // 2, TOTAL - TOTAL // 2))
        st = await settled(s, broker, tid, sqlite_url)
        assert await broker.pending() == 0
        assert st["stream"]["reconnects"] >= 1, st
        await broker.client.aclose()
    finally:
        await server.stop()


async def _holding(broker: RedisSide) -> bool:
    try:
        return await broker.pending() > 0
    except RedisError:
        return False


async def test_kafka_consumer_side_stops_and_starts_mid_stream(
    rig: tuple[Stack, Workers], kafka_broker: TansuBroker, sqlite_url: str
) -> None:
    s, workers = rig
    broker = KafkaSide(kafka_broker.bootstrap)
    await broker.start()
    try:
        tid = await stream_trigger(s, "kafka", broker.config(max_in_flight=50))
        third = TOTAL // 3
        await broker.publish(payloads(0, third))
        await runs_reach(s.client, tid, third // 3, timeout=SETTLE)
        # Disable mid-stream, publish meanwhile, enable.
        assert (await s.http.post(f"/api/triggers/{tid}/disable", headers=s.alice)).is_success
        await broker.publish(payloads(third, third))
        assert (await s.http.post(f"/api/triggers/{tid}/enable", headers=s.alice)).is_success
        await runs_reach(s.client, tid, third + third // 3, timeout=SETTLE)
        # A worker restart mid-stream (a deploy), publishing meanwhile.
        await workers.stop()
        await broker.publish(payloads(2 * third, TOTAL - 2 * third))
        await workers.start()
        st = await settled(s, broker, tid, sqlite_url)
        assert await broker.committed() == TOTAL
        # The enable starts a new workflow run (its counters anew); the restart reconnects.
        assert st["stream"]["reconnects"] >= 1, st
    finally:
        await broker.close()
