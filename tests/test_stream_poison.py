"""Poison among real messages, Redis Streams and Kafka: of 100 messages, the 50th is not
JSON (the trigger reads JSON). What is counted:

- 99 runs (one per decodable message), 1 dead letter (the 50th, with its raw bytes and
  its position as key), all 100 messages acked or committed (the dead letter too: it is
  stored before its ack);
- the redrive refused (422) while the config still says JSON; after a config change to
  ``value_format: text`` the redrive starts the 100th run, ``run:<trigger>:<its key>``,
  whose event's data is the text; a second redrive starts no other (still 100 runs).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import SecretStr
from temporalio.client import Client

from tests.conformance import Workers
from tests.conftest import Stack, eventually, make_stack
from tests.helpers import count_runs, dead_letter_count, runs_of
from tests.kafka_broker import TansuBroker
from tests.stream_sides import (
    KafkaSide,
    RedisSide,
    StreamSide,
    payloads,
    runs_reach,
    stream_trigger,
)
from triggers.core.events import run_workflow_id
from triggers.infra.settings import Settings

POISON = b'{"n": 49, oops: not json}'
TIMEOUT = 60.0


@pytest.fixture
async def s(sqlite_url: str, client: Client, secret_keys: str) -> AsyncIterator[Stack]:
    queue = f"poison-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        task_queue=queue, database_url=sqlite_url, secret_keys=SecretStr(secret_keys)
    )
    workers = Workers(client, settings)
    await workers.start()
    try:
        async with make_stack(sqlite_url, client, queue, secret_keys) as stack:
            yield stack
    finally:
        await workers.stop()


async def test_redis_streams_poison_then_redrive(s: Stack, sqlite_url: str) -> None:
    broker = await RedisSide.connect()
    try:
        text = {"value_format": "text", "value_field": "payload"}
        await poison_then_redrive(s, sqlite_url, "redis_streams", broker, text)
    finally:
        await broker.close()


async def test_kafka_poison_then_redrive(
    s: Stack, sqlite_url: str, kafka_broker: TansuBroker
) -> None:
    broker = KafkaSide(kafka_broker.bootstrap, partitions=1)
    await broker.start()
    try:
        await poison_then_redrive(s, sqlite_url, "kafka", broker, {"value_format": "text"})
    finally:
        await broker.close()


async def poison_then_redrive(
    s: Stack, db: str, provider: str, broker: StreamSide, decodable: dict[str, Any]
) -> None:
    tid = await stream_trigger(s, provider, broker.config())
    await broker.publish(payloads(0, 49))
    await broker.publish_raw([POISON])
    await broker.publish(payloads(50, 50))
    await runs_reach(s.client, tid, 99, timeout=TIMEOUT)

    async def all_acked() -> bool:
        return await broker.unacked() == 0 and await dead_letter_count(db, tid) == 1

    await eventually(all_acked, timeout=TIMEOUT, interval=0.25)
    assert await count_runs(s.client, tid) == 99
    page = (await s.http.get(f"/api/triggers/{tid}/dead-letters", headers=s.alice)).json()
    (letter,) = page["items"]
    raw = base64.b64decode(letter["raw"])
    if isinstance(broker, RedisSide):  # a Redis message's value is its entry, as JSON
        raw = json.loads(raw)["payload"].encode()
    assert raw == POISON and "JSON" in letter["reason"], letter
    assert page["total"] == 1
    url = f"/api/triggers/{tid}/dead-letters/{letter['id']}/redrive"
    # Still JSON: it still cannot become an event.
    r = await s.http.post(url, headers=s.alice)
    assert r.status_code == 422, r.text

    # The config change that makes it decodable; then the redrive starts its run.
    body = {"config": broker.config(**decodable)}
    assert (await s.http.patch(f"/api/triggers/{tid}", json=body, headers=s.alice)).is_success
    r = await s.http.post(url, headers=s.alice)
    assert r.status_code == 200, r.text
    redriven = r.json()
    assert redriven["run_id"] == run_workflow_id(tid, letter["key"])
    assert redriven["would_start"] is True and redriven["again"] is False
    await runs_reach(s.client, tid, 100, timeout=TIMEOUT)
    assert redriven["run_id"] in await runs_of(s.client, tid)
    handle = s.client.get_workflow_handle(redriven["run_id"])
    history = await handle.fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    (event, *_) = await s.client.data_converter.decode(started.input.payloads)
    assert POISON.decode() in str(event)  # its event carries the text

    again = await s.http.post(url, headers=s.alice)
    assert again.status_code == 200 and again.json()["again"] is True

    async def deduplicated() -> bool:
        st = (await s.http.get(f"/api/triggers/{tid}/status", headers=s.alice)).json()
        return bool(st["duplicates"] >= 1)

    await eventually(deduplicated, timeout=TIMEOUT)
    assert await count_runs(s.client, tid) == 100
    assert await dead_letter_count(db, tid) == 1
