"""The test's side of a real broker (publish, count what is not acked, redeliver) for the
stream tests of the Kafka and Redis Streams providers: the conformance subclasses and the
crash, restart and poison tests share these. Not a test module.

What "not acked" means, from the broker's own records:

- Redis: the group's pending entries (XPENDING) plus the entries after its last-delivered
  id (not read yet), or the whole stream before the group exists.
- Kafka: messages published minus the group's committed offsets (each partition's offsets
  start at 0 in a new topic, and the test publishes no transactions, so a committed offset
  is the count of messages done). Tansu's end offsets are wrong: never used.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError
from temporalio.client import Client

from tests.conftest import Stack, eventually, need_service
from tests.helpers import count_runs

LOCAL_REDIS = "redis://127.0.0.1:6379/0"


class RedisSide:
    """One stream and one named group on a Redis server."""

    def __init__(self, client: Redis, url: str) -> None:
        self.client = client
        self.url = url
        self.stream = f"test:stream:{uuid.uuid4().hex[:12]}"
        self.group = f"conf:{uuid.uuid4().hex[:8]}"

    @classmethod
    async def connect(cls, url: str = LOCAL_REDIS) -> RedisSide:
        client = Redis.from_url(url)
        try:
            await client.ping()
        except (RedisError, OSError) as exc:
            await client.aclose()
            need_service(f"Redis at {url}", str(exc))
        return cls(client, url)

    def config(self, **overrides: Any) -> dict[str, Any]:
        """A trigger config reading the JSON of each entry's ``payload`` field; ``restart``:
        another ``block_ms`` (a harmless change)."""
        restart = int(overrides.pop("restart", 0))
        return {
            "url": self.url,
            "streams": [self.stream],
            "group": self.group,
            "start": "0",
            "value_format": "json",
            "value_field": "payload",
            "block_ms": 200 + restart,
        } | overrides

    async def publish_raw(self, values: list[bytes]) -> None:
        async with self.client.pipeline(transaction=False) as pipe:
            for value in values:
                pipe.xadd(self.stream, {"payload": value})
            await pipe.execute()

    async def publish(self, payloads: list[dict[str, Any]]) -> None:
        await self.publish_raw([json.dumps(p).encode() for p in payloads])

    async def pending(self) -> int:
        try:
            summary: Any = await self.client.xpending(self.stream, self.group)
        except ResponseError:  # no group yet
            return 0
        return int(summary["pending"])

    async def pending_of(self) -> dict[str, int]:
        """Pending entries per consumer of the group."""
        try:
            summary: Any = await self.client.xpending(self.stream, self.group)
        except ResponseError:
            return {}
        return {_text(c["name"]): int(c["pending"]) for c in summary["consumers"] or []}

    async def unacked(self) -> int:
        try:
            groups: Any = await self.client.xinfo_groups(self.stream)
        except ResponseError:  # no stream yet
            return 0
        mine = next((g for g in groups if _text(g["name"]) == self.group), None)
        if mine is None:
            return int(await self.client.xlen(self.stream))
        last = _text(mine["last-delivered-id"])
        unread: Any = await self.client.xrange(self.stream, min=f"({last}", max="+")
        return int(mine["pending"]) + len(unread)

    async def redeliver_acked(self) -> None:
        """The group reads the stream from its start again: every entry comes back under
        its own id (so under its own key)."""
        await self.client.xgroup_setid(self.stream, self.group, "0")

    async def close(self) -> None:
        await self.client.delete(self.stream)
        await self.client.aclose()


class KafkaSide:
    """One topic and one named consumer group on a Kafka-protocol broker."""

    def __init__(self, bootstrap: str, partitions: int = 2) -> None:
        self.bootstrap = bootstrap
        self.partitions = partitions
        self.topic = f"t-{uuid.uuid4().hex[:10]}"
        self.group = f"conf-{uuid.uuid4().hex[:8]}"
        self.published = 0
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            topic = NewTopic(self.topic, num_partitions=self.partitions, replication_factor=1)
            await admin.create_topics([topic])
        finally:
            await admin.close()
        self._producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=5)
        await self._producer.start()

    def config(self, **overrides: Any) -> dict[str, Any]:
        """A trigger config (JSON values, the minimum session); ``restart``: another
        ``max_poll_records`` (a harmless change)."""
        restart = int(overrides.pop("restart", 0))
        return {
            "bootstrap_servers": [self.bootstrap],
            "topics": [self.topic],
            "group_id": self.group,
            "start": "earliest",
            "session_timeout": 6,
            "max_poll_records": 500 + restart,
        } | overrides

    async def publish_raw(self, values: list[bytes]) -> None:
        assert self._producer is not None
        # Round robin over the partitions; sent in batches, then every one confirmed.
        sent = []
        for i, value in enumerate(values):
            partition = (self.published + i) % self.partitions
            sent.append(await self._producer.send(self.topic, value, partition=partition))
        for future in sent:
            await future
        self.published += len(values)

    async def publish(self, payloads: list[dict[str, Any]]) -> None:
        await self.publish_raw([json.dumps(p).encode() for p in payloads])

    async def committed(self) -> int:
        """The group's committed offsets, summed over the topic's partitions (read as a
        consumer does: Tansu answers the admin client's OffsetFetch in a form aiokafka
        cannot parse)."""
        consumer = self._outsider()
        await consumer.start()
        try:
            total = 0
            for tp in self._partitions():
                total += await consumer.committed(tp) or 0
            return total
        finally:
            await consumer.stop()

    async def unacked(self) -> int:
        return self.published - await self.committed()

    async def commit(self, offset: int) -> None:
        """Commit ``offset`` on every partition for the group, from outside it."""
        consumer = self._outsider()
        await consumer.start()
        try:
            consumer.assign(self._partitions())
            await consumer.commit(dict.fromkeys(self._partitions(), offset))
        finally:
            await consumer.stop()

    def _partitions(self) -> list[TopicPartition]:
        return [TopicPartition(self.topic, p) for p in range(self.partitions)]

    def _outsider(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=self.group, enable_auto_commit=False
        )

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


StreamSide = RedisSide | KafkaSide


async def stream_trigger(stack: Stack, provider: str, config: dict[str, Any]) -> str:
    """A trigger of ``provider`` owned by Alice, whose allowlist lets it reach 127.0.0.1."""
    allow = {"entries": ["127.0.0.1"]}
    r = await stack.http.put("/api/me/network-allowlist", json=allow, headers=stack.alice)
    assert r.status_code == 200, r.text
    body = {"name": f"{provider} e2e", "provider": provider, "config": config}
    trigger = await stack.create_trigger(body)
    tid: str = trigger["id"]
    return tid


async def runs_reach(client: Client, tid: str, n: int, *, timeout: float) -> int:
    """Wait until Temporal's visibility counts at least ``n`` runs of the trigger."""

    async def enough() -> int | None:
        count = await count_runs(client, tid)
        return count if count >= n else None

    return await eventually(enough, timeout=timeout, interval=0.25)


def payloads(start: int, n: int) -> list[dict[str, Any]]:
    return [{"n": i} for i in range(start, start + n)]
