"""The Redis Streams provider against real servers: the local Redis on 127.0.0.1:6379
(unique stream names per test, deleted after) and ``redis-server`` processes the tests
start themselves (a password, a restart with the append-only file)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from tests.conftest import eventually, need_service
from tests.redis_server import RedisServer, redis_server_path
from triggers.infra.net import BlockedAddress
from triggers.providers.base import ProviderConfigError, ProviderTransientError, SourceContext
from triggers.providers.redis_streams import RedisStreamsProvider
from triggers.providers.redis_streams_config import RedisStreamsConfig
from triggers.providers.stream import Message, PoisonMessage
from workers.ports import free_port

LOCAL = "redis://127.0.0.1:6379/0"
ALLOW = ("127.0.0.1",)
PASSWORD = "pw-R3d1s-not-for-errors"


def context(trigger_id: str = "t-redis", allow: tuple[str, ...] = ALLOW) -> SourceContext:
    return SourceContext(trigger_id, "orders", "alice", network_allowlist=allow)


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(LOCAL)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        need_service("Redis at 127.0.0.1:6379", str(exc))
    yield client
    await client.aclose()


@pytest.fixture
async def streams(redis: Redis) -> AsyncIterator[Callable[[], str]]:
    """Unique stream names for one test; deleted afterwards (with their groups)."""
    made: list[str] = []

    def new() -> str:
        made.append(f"test:rs:{uuid.uuid4().hex[:12]}")
        return made[-1]

    yield new
    if made:
        await redis.delete(*made)


@asynccontextmanager
async def opened(
    url: str = LOCAL,
    secrets: dict[str, str] | None = None,
    ctx: SourceContext | None = None,
    **config: Any,
) -> AsyncIterator[RedisStreamsProvider]:
    """An initialised provider, shut down afterwards whatever happened."""
    provider = RedisStreamsProvider()
    cfg = RedisStreamsConfig.model_validate({"url": url, "block_ms": 100, **config})
    try:
        await provider.init(cfg, secrets or {}, ctx or context())
        yield provider
    finally:
        await provider.shutdown()


async def publish(redis: Redis, stream: str, n: int, start: int = 0) -> list[str]:
    ids = [await redis.xadd(stream, {"n": str(i), "kind": "order"}) for i in range(start, n)]
    return [i.decode() for i in ids]


async def collect(
    provider: RedisStreamsProvider, n: int, batch: int = 100, most: int | None = None
) -> list[Message]:
    """Receive until ``n`` messages came (or fail at the deadline); no receive returns
    more than ``most`` (default ``batch``)."""
    got: list[Message] = []

    async def enough() -> bool:
        received = await provider.receive(batch)
        assert len(received) <= (most or batch)
        got.extend(received)
        return len(got) >= n

    await eventually(enough, timeout=20)
    return got


async def test_receives_every_entry_with_stable_keys_and_ack_clears_pending(
    redis: Redis, streams: Callable[[], str]
) -> None:
    stream = streams()
    async with opened(streams=[stream], start="0", count=30) as provider:
        ids = await publish(redis, stream, 100)
        got = await collect(provider, 100, batch=50, most=30)
        assert [m.key for m in got] == [f"{stream}/{i}" for i in ids]
        assert {m.attempts for m in got} == {1}
        event = provider.to_event(got[7])
        assert (event.key, event.id, event.subject) == (got[7].key, got[7].key, stream)
        assert event.data == {"n": "7", "kind": "order"}
        assert event.source == "redis://127.0.0.1:6379/0"
        assert got[7].time is not None
        assert event.time == got[7].time.isoformat()
        assert got[7].time.timestamp() * 1000 == int(ids[7].split("-")[0])
        health = await provider.health()
        assert (health.pending, health.lag) == (100, 0)
        # The oldest entry delivered and not acked: the first one, added moments ago.
        oldest = got[0].time.timestamp()
        assert health.oldest_age_seconds is not None
        assert 0 <= health.oldest_age_seconds <= time.time() - oldest + 1
        await provider.ack(got)
        health = await provider.health()
        assert (health.pending, health.lag) == (0, 0)
        assert health.oldest_age_seconds is None
        assert await provider.receive(10) == []


async def test_group_start_and_existing_group(redis: Redis, streams: Callable[[], str]) -> None:
    old, new = streams(), streams()
    await publish(redis, old, 3)
    await publish(redis, new, 3)
    async with opened(streams=[old], start="0") as provider:
        assert len(await collect(provider, 3)) == 3
    async with opened(streams=[new], start="$") as provider:
        assert await provider.receive(10) == []  # what was there before the group is not read
        health = await provider.health()
        assert health.lag == 0
        later = await publish(redis, new, 2)
        assert [m.key for m in await collect(provider, 2)] == [f"{new}/{i}" for i in later]
    # BUSYGROUP: the group exists; it keeps its position (nothing new is read).
    async with opened(streams=[new], start="0") as provider:
        assert [m.attempts for m in await collect(provider, 2)] == [2, 2]  # not acked: ours


async def test_unacked_entries_come_back_after_a_reconnect_with_their_keys(
    redis: Redis, streams: Callable[[], str]
) -> None:
    stream = streams()
    async with opened(streams=[stream], start="0") as provider:
        await publish(redis, stream, 10)
        first = await collect(provider, 10)
        await provider.ack(first[:4])
    # The runtime reconnects with a new instance in the same process: same consumer.
    async with opened(streams=[stream], start="0") as provider:
        again = await collect(provider, 6)
        assert [m.key for m in again] == [m.key for m in first[4:]]
        assert {m.attempts for m in again} == {2}
        await provider.ack(again)
        assert (await provider.health()).pending == 0


async def test_nack_and_cancelled_receive_redeliver_with_counted_attempts(
    redis: Redis, streams: Callable[[], str]
) -> None:
    stream = streams()
    async with opened(streams=[stream], start="0", block_ms=5000) as provider:
        await publish(redis, stream, 3)
        first = await collect(provider, 3)
        await provider.nack(first[1:])
        again = await collect(provider, 2)
        assert [(m.key, m.attempts) for m in again] == [(m.key, 2) for m in first[1:]]
        # A receive blocked in XREADGROUP is cancelled promptly. A reply it never saw
        # (here: read by the test in the provider's name) is read again after the
        # cancel; nothing in flight is handed out twice, and new entries still flow.
        woken = asyncio.create_task(provider.receive(10))  # reads its history to the end
        sentinel = await publish(redis, stream, 1)
        assert [m.key for m in await woken] == [f"{stream}/{sentinel[0]}"]
        unseen = await publish(redis, stream, 1)
        group = "triggers:t-redis"
        await redis.xreadgroup(group, provider.consumer, {stream: ">"}, count=1)
        blocked = asyncio.create_task(provider.receive(10))
        await asyncio.sleep(0.2)  # let it reach the server's BLOCK (not a synchronisation)
        started = asyncio.get_running_loop().time()
        blocked.cancel()
        with pytest.raises(asyncio.CancelledError):
            await blocked
        assert asyncio.get_running_loop().time() - started < 2
        lost = await collect(provider, 1)
        assert [(m.key, m.attempts) for m in lost] == [(f"{stream}/{unseen[0]}", 2)]
        later = await publish(redis, stream, 1)
        assert [m.key for m in await collect(provider, 1)] == [f"{stream}/{later[0]}"]
        await provider.ack([*first[:1], *again, *lost])
        assert (await provider.health()).pending == 2  # the sentinel and the later one


async def test_a_dead_consumers_entries_are_reclaimed_after_min_idle(
    redis: Redis, streams: Callable[[], str]
) -> None:
    stream = streams()
    group = "triggers:t-redis"
    async with opened(streams=[stream], start="0", min_idle="1500ms") as provider:
        ids = await publish(redis, stream, 5)
        # Another worker takes them and dies without acking.
        taken_at = asyncio.get_running_loop().time()
        await redis.xreadgroup(group, "gone-host:1:t-redis", {stream: ">"}, count=5)
        early = await provider.receive(10)
        if asyncio.get_running_loop().time() - taken_at < 1.5:
            assert early == []  # not idle long enough yet
        got = await collect(provider, 5)
        assert asyncio.get_running_loop().time() - taken_at >= 1.5
        assert [m.key for m in got] == [f"{stream}/{i}" for i in ids]
        assert {m.attempts for m in got} == {2}
        await provider.ack(got)
        assert (await provider.health()).pending == 0


DEAD_WORKER = """
import asyncio, sys
from triggers.providers.redis_streams import RedisStreamsProvider
from triggers.providers.redis_streams_config import RedisStreamsConfig
from triggers.providers.base import SourceContext

async def main():
    provider = RedisStreamsProvider()
    cfg = RedisStreamsConfig(url=sys.argv[1], streams=[sys.argv[2]], start="0", block_ms=100)
    await provider.init(cfg, {}, SourceContext("t-redis", "o", "a", ("127.0.0.1",)))
    got = 0
    while got < int(sys.argv[3]):
        got += len(await provider.receive(100))
    print(provider.consumer, flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_a_killed_worker_process_entries_are_reclaimed_with_attempts(
    redis: Redis, streams: Callable[[], str]
) -> None:
    stream = streams()
    ids = await publish(redis, stream, 20)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", DEAD_WORKER, LOCAL, stream, "20", stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        dead = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
    assert dead.endswith(f":{proc.pid}:t-redis")
    async with opened(streams=[stream], start="0", min_idle="500ms") as provider:
        assert provider.consumer != dead  # another process: another consumer
        got = await collect(provider, 20)
        assert sorted(m.key for m in got) == sorted(f"{stream}/{i}" for i in ids)
        assert {m.attempts for m in got} == {2}
        await provider.ack(got)
        assert (await provider.health()).pending == 0


async def test_several_streams_never_exceed_the_batch_and_lose_nothing(
    redis: Redis, streams: Callable[[], str]
) -> None:
    names = [streams() for _ in range(3)]
    async with opened(streams=names, start="0") as provider:
        expected = {f"{s}/{i}" for s in names for i in await publish(redis, s, 7)}
        got: list[Message] = []

        async def all_in() -> bool:
            batch = await provider.receive(2)
            assert len(batch) <= 2
            got.extend(batch)
            return len(got) >= len(expected)

        await eventually(all_in, timeout=20)
        assert sorted(m.key for m in got) == sorted(expected)
        await provider.ack(got)
        assert (await provider.health()).pending == 0


async def test_poison_entries(redis: Redis, streams: Callable[[], str]) -> None:
    stream = streams()
    await redis.xadd(stream, {"payload": b"\xff\xfe not utf-8"})
    await redis.xadd(stream, {"payload": '{"ok": true}'})
    await redis.xadd(stream, {"payload": "{not json"})
    await redis.xadd(stream, {"other": "1"})
    async with opened(streams=[stream], start="0") as provider:
        binary, good, bad_json, other = await collect(provider, 4)
        with pytest.raises(PoisonMessage, match="not UTF-8"):
            provider.to_event(binary)
        assert provider.to_event(good).data == {"payload": '{"ok": true}'}
        # A deleted entry still pending comes back without fields after a reconnect.
        await redis.xdel(stream, good.key.rpartition("/")[2])
    async with opened(streams=[stream], value_format="json", value_field="payload") as provider:
        binary, deleted, bad_json, other = await collect(provider, 4)
        with pytest.raises(PoisonMessage, match="deleted"):
            provider.to_event(deleted)
        with pytest.raises(PoisonMessage, match="not JSON"):
            provider.to_event(bad_json)
        with pytest.raises(PoisonMessage, match="no field 'payload'"):
            provider.to_event(other)
        with pytest.raises(PoisonMessage, match="not JSON"):
            provider.to_event(binary)
    async with opened(streams=[stream], value_format="text", value_field="payload") as provider:
        binary, _, bad_json, _ = await collect(provider, 4)
        assert provider.to_event(bad_json).data == "{not json"
        assert provider.to_event(bad_json).datacontenttype == "text/plain"
        with pytest.raises(PoisonMessage, match="not UTF-8"):
            provider.to_event(binary)
        # The dead letter's raw value keeps the bytes that are not UTF-8.
        raw = json.loads(binary.value)["payload"].encode("utf-8", "surrogateescape")
        assert raw == b"\xff\xfe not utf-8"


async def test_value_format_json_decodes_the_field(
    redis: Redis, streams: Callable[[], str]
) -> None:
    stream = streams()
    await redis.xadd(stream, {"payload": '{"order": 42, "items": [1, 2]}', "trace": "x"})
    async with opened(
        streams=[stream], start="0", value_format="json", value_field="payload"
    ) as provider:
        (message,) = await collect(provider, 1)
        assert provider.to_event(message).data == {"order": 42, "items": [1, 2]}


async def test_network_guard_and_unreachable_server() -> None:
    with pytest.raises(BlockedAddress):
        async with opened(streams=["s"], ctx=context(allow=())):
            pass
    with pytest.raises(ProviderTransientError, match="redis_streams redis://127.0.0.1"):
        async with opened(f"redis://127.0.0.1:{free_port()}/0", streams=["s"]):
            pass


@pytest.fixture
def server_path() -> str:
    path = redis_server_path()
    if path is None:
        need_service("redis-server", "the program is not installed")
    assert path is not None
    return path


def _everything(exc: BaseException) -> str:
    """All an error can show: its text, repr, and the traceback as logged (with causes)."""
    return "".join([str(exc), repr(exc), *traceback.format_exception(exc)])


async def test_password_is_a_secret_and_never_in_errors(server_path: str, tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", password=PASSWORD)
    await server.start()
    try:
        wrong = "wr0ng-" + PASSWORD
        for secrets in ({"password": wrong}, {}):
            with pytest.raises(ProviderConfigError, match="authentication refused") as caught:
                async with opened(server.url, secrets, streams=["s"]):
                    pass
            assert wrong not in _everything(caught.value)
            assert PASSWORD not in _everything(caught.value)
        async with opened(server.url, {"password": PASSWORD}, streams=["s"], start="0") as p:
            admin = Redis(port=server.port, password=PASSWORD)
            await admin.xadd("s", {"a": "1"})
            (message,) = await collect(p, 1)
            assert PASSWORD not in repr(message) + repr(p.to_event(message))
            # The connection lost mid-read: transient, and still no password.
            await server.stop()
            with pytest.raises(ProviderTransientError) as lost:
                await p.receive(10)
            assert PASSWORD not in _everything(lost.value)
            await admin.aclose()
    finally:
        await server.stop()


async def test_broker_restart_redelivers_unacked_and_not_acked(
    server_path: str, tmp_path: Path
) -> None:
    server = RedisServer(tmp_path / "redis")
    await server.start()
    try:
        admin = Redis(port=server.port)
        ids = [(await admin.xadd("orders", {"n": str(i)})).decode() for i in range(10)]
        async with opened(server.url, streams=["orders"], start="0") as provider:
            first = await collect(provider, 10)
            await provider.ack(first[:6])
            await server.stop()
            with pytest.raises(ProviderTransientError):
                await provider.receive(10)
        await admin.aclose()
        await server.start()  # same port, same folder: the append-only file is read back
        admin = Redis(port=server.port)
        later = (await admin.xadd("orders", {"n": "10"})).decode()
        async with opened(server.url, streams=["orders"], start="0") as provider:
            again = await collect(provider, 5)
            assert [m.key for m in again] == [f"orders/{i}" for i in [*ids[6:], later]]
            assert [m.attempts for m in again] == [2, 2, 2, 2, 1]
            await provider.ack(again)
            assert (await provider.health()).pending == 0
        await admin.aclose()
    finally:
        await server.stop()
