"""SIGKILL the worker (a separate process) twice while 2,000 messages are published to a
stream, Redis Streams and Kafka: exactly 2,000 runs, every message acked or committed at
the end, none dead-lettered.

Each kill lands while the source is consuming: Redis, once the worker's own consumer holds
entries it has not acked (so the kill leaves them pending); Kafka, once the group's
committed offsets are moving. Redis: the restarted worker is another process, hence
another consumer; the killed one's entries are reclaimed by XAUTOCLAIM once idle for
``min_idle`` (1 s here). Kafka: the restarted consumer takes the static member's place and
reads again from the committed offsets. A message delivered again after its signal was
persisted has the same run ID: a duplicate, not a second run."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from temporalio.client import Client

from tests.conftest import eventually, make_stack
from tests.helpers import count_runs, dead_letter_count, status_of
from tests.kafka_broker import TansuBroker
from tests.stream_sides import (
    KafkaSide,
    RedisSide,
    StreamSide,
    payloads,
    runs_reach,
    stream_trigger,
)
from tests.worker_proc import WorkerProcess
from workers.devserver import DevServer

TOTAL = 2_000
# The publisher's pace: a chunk every PACE seconds, so that publishing spans both kills.
CHUNK, PACE = 50, 0.4
SETTLE = 180.0


@pytest.fixture
async def redis_side() -> AsyncIterator[RedisSide]:
    redis = await RedisSide.connect()
    yield redis
    await redis.close()


@pytest.fixture
async def kafka_side(kafka_broker: TansuBroker) -> AsyncIterator[KafkaSide]:
    kafka = KafkaSide(kafka_broker.bootstrap)
    await kafka.start()
    yield kafka
    await kafka.close()


@dataclass
class Crash:
    tmp: Path
    db: str
    client: Client
    temporal: str
    secret_keys: str


@pytest.fixture
def crash(
    tmp_path: Path, sqlite_url: str, client: Client, temporal: DevServer, secret_keys: str
) -> Crash:
    return Crash(tmp_path, sqlite_url, client, temporal.address, secret_keys)


async def test_redis_streams_two_sigkills_mid_stream(redis_side: RedisSide, crash: Crash) -> None:
    await two_kills_mid_stream("redis_streams", redis_side, crash)


async def test_kafka_two_sigkills_mid_stream(kafka_side: KafkaSide, crash: Crash) -> None:
    await two_kills_mid_stream("kafka", kafka_side, crash)


async def publish_all(broker: StreamSide) -> None:
    for start in range(0, TOTAL, CHUNK):
        await broker.publish(payloads(start, CHUNK))
        await asyncio.sleep(PACE)  # a publisher's pace, not a synchronisation


async def consuming(broker: StreamSide, worker: WorkerProcess) -> None:
    """Return once the worker's source is mid-stream (see the module docstring)."""
    if isinstance(broker, RedisSide):
        assert worker.proc is not None
        mine = f":{worker.proc.pid}:"

        async def holds() -> bool:
            held = await broker.pending_of()
            return any(mine in name and n > 0 for name, n in held.items())

        await eventually(holds, timeout=SETTLE, interval=0.02)
        return
    seen = [await broker.committed()]

    async def moving() -> bool:
        seen.append(await broker.committed())
        return seen[-1] != seen[-2] and seen[-1] < TOTAL

    await eventually(moving, timeout=SETTLE, interval=0.05)


async def two_kills_mid_stream(provider: str, broker: StreamSide, crash: Crash) -> None:
    """Exactly one run per message, all acked, none dead-lettered (the module docstring)."""
    client, sqlite_url, secret_keys = crash.client, crash.db, crash.secret_keys
    queue = f"crash-{uuid.uuid4().hex[:8]}"
    worker = WorkerProcess(
        temporal=crash.temporal,
        database_url=sqlite_url,
        task_queue=queue,
        secret_keys=secret_keys,
        log=crash.tmp / "worker.log",
    )
    await worker.start()
    config = broker.config(max_in_flight=200)
    if provider == "redis_streams":
        config |= {"min_idle": "1s", "count": 200}
    publisher: asyncio.Task[None] | None = None
    try:
        async with make_stack(sqlite_url, client, queue, secret_keys) as s:
            tid = await stream_trigger(s, provider, config)
            began = time.monotonic()
            publisher = asyncio.create_task(publish_all(broker))
            held_at_kill: list[int] = []
            for _ in range(2):
                await consuming(broker, worker)
                worker.kill()
                if isinstance(broker, RedisSide):
                    held_at_kill.append(sum((await broker.pending_of()).values()))
                await worker.start()
            await publisher
            await runs_reach(client, tid, TOTAL, timeout=SETTLE)
            took = time.monotonic() - began

            async def all_acked() -> bool:
                return await broker.unacked() == 0

            await eventually(all_acked, timeout=60, interval=0.5)
            if isinstance(broker, RedisSide):
                # The kills left entries pending; all were reclaimed and acked.
                assert all(n > 0 for n in held_at_kill), held_at_kill
                assert await broker.pending() == 0
            else:
                assert await broker.committed() == TOTAL
            assert await count_runs(client, tid) == TOTAL
            assert await dead_letter_count(sqlite_url, tid) == 0
            st = await status_of(s, tid)
            assert st["stream"]["dead_letters"] == 0, st
            print(
                f"\n{provider}: {TOTAL} messages, 2 SIGKILLs, {TOTAL} runs in {took:.1f}s; "
                f"pending at the kills {held_at_kill}, duplicates {st['duplicates']}, "
                f"reconnects {st['stream']['reconnects']}"
            )
    finally:
        if publisher is not None:
            publisher.cancel()
        worker.stop()
