"""Kafka stream provider (aiokafka): messages of a consumer group become events.

The stream runtime (``activities/stream.py``) drives it: ``receive`` fetches with
``getmany``, ``ack`` commits, and nothing is committed before the runtime says the events
were accepted (auto-commit is off).

- **Event key** ``<topic>/<partition>/<offset>``: stable across redeliveries, so a message
  redelivered after a crash or a rebalance starts no second run.
- **Commits** are per partition, only over acked messages (``kafka_offsets.Offsets``): a
  message handed out and not acked holds its partition's commit back, whatever order acks
  come in.
- **Rebalance**: when the group takes partitions away, the revoke callback waits (at most
  ``revoke_wait`` seconds) until the messages of those partitions that were handed out are
  acked and committed, and only then lets them go. What is still not acked then is
  redelivered to the partitions' new owner (same keys: deduplicated).
- **Static membership** (``static_membership``, on by default): the consumer joins with
  ``group_instance_id = "triggers-<trigger id>"``; a reconnect within ``session_timeout``
  takes its partitions back without moving them to another member, and a stop does not
  leave the group (the partitions wait for this trigger, at most ``session_timeout``).
- **Deliveries** are counted by this worker process (Kafka does not count them): a message
  handed out again (after a nack or a reconnect) counts one more, up to ``max_deliveries``.
- **Health**: the committed offset of each owned partition (what this consumer committed,
  or the group's committed offset read once), and lag from the high watermark of the last
  fetch. Brokers whose high watermark is not reliable (Tansu, used by the tests) report a
  lag that is not either.
- **Network guard**: the bootstrap hosts and every broker the cluster advertises must be
  public or in the trigger's network allowlist (``triggers.infra.net``).

The event: ``data`` is the value (parsed JSON, UTF-8 text, or base64 of the bytes; a
tombstone is ``null``), ``subject`` the message key (UTF-8, else ``base64:...``),
``headers`` the message headers (UTF-8, else ``base64:...``), ``time`` the message
timestamp, ``type`` ``kafka.message``, ``source`` ``kafka://<first bootstrap>/<topic>``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka import errors as kafka_errors
from aiokafka.client import AIOKafkaClient
from pydantic import BaseModel

from triggers.core.events import Event, bound_event
from triggers.infra import net
from triggers.providers import ProviderInfo
from triggers.providers.base import (
    ProviderConfigError,
    ProviderError,
    ProviderTransientError,
    SourceContext,
    event_time,
)
from triggers.providers.kafka_client import as_text, client_options, headers_text, provider_error
from triggers.providers.kafka_config import KafkaConfig, split_host_port
from triggers.providers.kafka_offsets import Offsets
from triggers.providers.stream import (
    Message,
    PoisonMessage,
    StreamHealth,
    StreamProvider,
    message_key,
)

log = logging.getLogger(__name__)

SASL_PASSWORD = "sasl_password"
# Seconds: starting the consumer; one commit; one poll of ``receive``.
START_TIMEOUT = 60.0
COMMIT_TIMEOUT = 15.0
POLL_MS = 1000
# Partitions listed in ``health``'s detail; delivery counts kept per worker process.
MAX_HEALTH_PARTITIONS = 100
MAX_COUNTED = 10_000

_deliveries: OrderedDict[tuple[str, str], int] = OrderedDict()


def _count_delivery(group: str, key: str) -> int:
    slot = (group, key)
    count = _deliveries.pop(slot, 0) + 1
    _deliveries[slot] = count
    while len(_deliveries) > MAX_COUNTED:
        _deliveries.popitem(last=False)
    return count


class KafkaProvider(StreamProvider):
    name = "kafka"
    Config = KafkaConfig
    key_format = "<topic>/<partition>/<offset>"
    optional_secrets = frozenset({SASL_PASSWORD})
    # The brokers decide where the SASL password is sent.
    destination_fields = ("bootstrap_servers",)

    config: KafkaConfig
    _consumer: Any = None
    # Seconds without any fetch answer, while owning partitions, before the connection
    # counts as lost (``receive`` raises ``ProviderTransientError``).
    disconnected_after: float = 30.0
    # Seconds a revoke waits for the in-flight messages of its partitions to be acked.
    revoke_wait: float = 20.0
    _revoking = 0

    def configure(self, config: BaseModel, context: SourceContext) -> None:
        """Keep the validated config (all ``to_event`` reads), without connecting."""
        super().configure(KafkaConfig.model_validate(config.model_dump()), context)

    async def init(
        self, config: BaseModel, secrets: Mapping[str, str], context: SourceContext
    ) -> None:
        self.configure(config, context)
        cfg = self.config
        self._password = secrets.get(SASL_PASSWORD) or None
        if cfg.sasl_mechanism and not self._password:
            raise ProviderConfigError(f"kafka: SASL {cfg.sasl_mechanism} needs the secret")
        self._display = ",".join(cfg.bootstrap_servers)
        self._group = cfg.group_id or f"temporal-triggers-{context.trigger_id}"
        self._allowlist = context.network_allowlist
        self._checked: set[tuple[str, int]] = set()
        self._offsets: Offsets[Any] = Offsets()
        self._changed = asyncio.Event()
        self._seen_fetch = time.monotonic()
        for host, port in cfg.hosts():
            await self._check(host, port)
        options = client_options(cfg, self._password)
        await self._check_cluster(options)
        self._consumer = AIOKafkaConsumer(
            **options,
            group_id=self._group,
            group_instance_id=f"triggers-{context.trigger_id}" if cfg.static_membership else None,
            client_id=f"temporal-triggers-{context.trigger_id}"[:200],
            enable_auto_commit=False,
            auto_offset_reset=cfg.start,
            max_poll_records=cfg.max_poll_records,
            session_timeout_ms=cfg.session_timeout * 1000,
            heartbeat_interval_ms=max(1000, cfg.session_timeout * 1000 // 5),
            # The revoke callback may wait revoke_wait for in-flight acks before rejoining.
            rebalance_timeout_ms=int((self.revoke_wait + 40) * 1000),
            max_partition_fetch_bytes=1024 * 1024,
            fetch_max_bytes=16 * 1024 * 1024,
        )
        listener = _Rebalance(self)
        if cfg.topics is not None:
            self._consumer.subscribe(topics=cfg.topics, listener=listener)
        else:
            self._consumer.subscribe(pattern=f"^(?:{cfg.topic_pattern})$", listener=listener)
        try:
            await asyncio.wait_for(self._consumer.start(), START_TIMEOUT)
        except Exception as exc:
            raise self._error(exc, "cannot connect") from None
        log.info("kafka %s: consuming as group %s", context.trigger_id, self._group)

    async def _check(self, host: str, port: int) -> None:
        if (host, port) not in self._checked:
            await net.check_host(host, port, self._allowlist)
            self._checked.add((host, port))

    async def _check_cluster(self, options: dict[str, Any]) -> None:
        """Check every broker the cluster advertises before the consumer connects to one
        (a bootstrap server may name any host in its metadata)."""
        client = AIOKafkaClient(**options)
        try:
            await asyncio.wait_for(client.bootstrap(), START_TIMEOUT)
            for broker in client.cluster.brokers():
                await self._check(broker.host, broker.port)
        except ProviderError:
            raise
        except Exception as exc:
            raise self._error(exc, "cannot connect") from None
        finally:
            await client.close()

    async def shutdown(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            try:
                await asyncio.wait_for(consumer.stop(), COMMIT_TIMEOUT)
            except asyncio.CancelledError:
                # aiokafka's stop lets its own fetch task's cancellation escape when the
                # broker is gone; only a cancellation of this task itself goes on.
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise
                log.warning("kafka %s: stop interrupted (broker gone)", self._display)
            except Exception as exc:  # closing anyway; nothing acked is lost
                log.warning("kafka %s: stop failed: %s", self._display, type(exc).__name__)

    async def receive(self, max_messages: int) -> Sequence[Message]:
        limit = max(1, min(max_messages, self.config.max_poll_records))
        while True:
            await self._check_brokers()
            try:
                batches = await self._consumer.getmany(timeout_ms=POLL_MS, max_records=limit)
            except Exception as exc:
                raise self._error(exc, "fetch failed") from None
            messages = [
                self._message(tp, record) for tp, records in batches.items() for record in records
            ]
            if messages:
                self._seen_fetch = time.monotonic()
                return messages
            self._check_alive()

    def _message(self, tp: Any, record: Any) -> Message:
        key = message_key(tp.topic, tp.partition, record.offset)
        self._offsets.handed_out(tp, record.offset)
        meta: dict[str, Any] = {"topic": tp.topic, "partition": tp.partition}
        meta["offset"] = record.offset
        if record.key is not None:
            meta["key"] = as_text(record.key)
        if record.value is None:
            meta["tombstone"] = True
        stamp = record.timestamp
        return Message(
            key=key,
            value=record.value or b"",
            headers=headers_text(record.headers),
            time=datetime.fromtimestamp(stamp / 1000, UTC) if stamp and stamp > 0 else None,
            attempts=_count_delivery(self._group, key),
            token=(tp, record.offset),
            meta=meta,
        )

    def _check_alive(self) -> None:
        """aiokafka retries a lost connection for ever and ``getmany`` just returns nothing:
        owning partitions without any fetch answer (an empty one comes every half second)
        for ``disconnected_after`` seconds means the brokers are gone."""
        assigned = self._consumer.assignment()
        if not assigned:
            return
        stamps = [self._consumer.last_poll_timestamp(tp) or 0 for tp in assigned]
        newest = max(stamps)
        age = time.monotonic() - self._seen_fetch
        if newest:
            age = min(age, time.time() - newest / 1000)
        if age > self.disconnected_after:
            raise ProviderTransientError(
                f"kafka {self._display}: no answer from the brokers for {age:.0f}s"
            )

    async def _check_brokers(self) -> None:
        consumer = self._consumer
        for broker in consumer._client.cluster.brokers():  # noqa: SLF001  (no public view)
            await self._check(broker.host, broker.port)

    async def ack(self, messages: Sequence[Message]) -> None:
        for message in messages:
            tp, offset = message.token
            self._offsets.acked(tp, offset)
            _deliveries.pop((self._group, message.key), None)
        try:
            await self._commit()
        finally:
            self._changed.set()

    async def _commit(self) -> None:
        commits = self._offsets.to_commit(self._consumer.assignment())
        if not commits:
            return
        try:
            await asyncio.wait_for(self._consumer.commit(commits), COMMIT_TIMEOUT)
        except (kafka_errors.CommitFailedError, kafka_errors.IllegalStateError) as exc:
            # The partitions moved to another member: it redelivers what was not
            # committed (same keys, deduplicated).
            log.warning("kafka %s: commit skipped (%s)", self._display, type(exc).__name__)
            return
        except Exception as exc:
            raise self._error(exc, "commit failed") from None
        self._offsets.committed(commits)

    async def nack(self, messages: Sequence[Message]) -> None:
        lowest: dict[Any, int] = {}
        for message in messages:
            tp, offset = message.token
            lowest[tp] = min(offset, lowest.get(tp, offset))
        owned = self._consumer.assignment()
        for tp, offset in lowest.items():
            if tp in owned:
                self._consumer.seek(tp, offset)
                self._offsets.rewind(tp, offset)

    async def revoked(self, partitions: set[Any]) -> None:
        """The group takes ``partitions`` away: let their in-flight messages be acked (and
        committed) first, for at most ``revoke_wait`` seconds."""
        deadline = time.monotonic() + self.revoke_wait
        self._revoking += 1
        try:
            while self._offsets.in_flight(partitions) and time.monotonic() < deadline:
                self._changed.clear()
                try:
                    await asyncio.wait_for(self._changed.wait(), deadline - time.monotonic())
                except TimeoutError:
                    break
        finally:
            self._revoking -= 1
        left = self._offsets.in_flight(partitions)
        if left:
            log.warning(
                "kafka %s: %d messages of revoked partitions not acked within %.0fs; "
                "their new owner redelivers them",
                self._display,
                left,
                self.revoke_wait,
            )
        self._offsets.forget(partitions)

    async def health(self) -> StreamHealth:
        if self._consumer is None:
            return StreamHealth()
        assigned = sorted(self._consumer.assignment())[:MAX_HEALTH_PARTITIONS]
        partitions: dict[str, dict[str, Any]] = {}
        lag: int | None = 0
        for tp in assigned:
            committed = self._offsets.last_commit(tp)
            if committed is None:
                try:
                    committed = await asyncio.wait_for(self._consumer.committed(tp), 5)
                except Exception:
                    committed = None
                if committed is not None:
                    self._offsets.committed({tp: committed})
            highwater = self._consumer.highwater(tp)
            partitions[f"{tp.topic}/{tp.partition}"] = {
                "committed": committed,
                "highwater": highwater,
                "in_flight": self._offsets.in_flight([tp]),
            }
            if lag is not None and highwater is not None:
                lag += max(0, highwater - (committed or 0))
            else:
                lag = None
        return StreamHealth(
            lag=lag if assigned else None,
            pending=self._offsets.in_flight(),
            detail={"group": self._group, "partitions": partitions, "revoking": self._revoking},
        )

    def to_event(self, message: Message) -> Event:
        cfg = self.config
        topic = message.key.rsplit("/", 2)[0]
        if message.meta.get("tombstone"):
            data: Any = None
        elif cfg.value_format == "json":
            try:
                data = json.loads(message.value)
            except (ValueError, UnicodeDecodeError) as exc:
                raise PoisonMessage(f"the value is not valid JSON: {exc}"[:300]) from None
        elif cfg.value_format == "text":
            try:
                data = message.value.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise PoisonMessage(f"the value is not UTF-8 text: {exc}"[:300]) from None
        else:
            data = base64.b64encode(message.value).decode("ascii")
        host, port = split_host_port(cfg.bootstrap_servers[0])
        subject = message.meta.get("key")
        return bound_event(
            Event(
                id=message.key,
                key=message.key,
                source=f"kafka://{host}:{port}/{topic}",
                type="kafka.message",
                time=event_time(message.time or datetime.now(UTC)),
                subject=subject if isinstance(subject, str) else None,
                data=data,
                datacontenttype=_CONTENT_TYPES[cfg.value_format],
                headers=dict(message.headers),
            )
        )

    def _error(self, exc: BaseException, what: str) -> ProviderError:
        return provider_error(
            exc, where=self._display, what=what, cfg=self.config, password=self._password
        )


_CONTENT_TYPES = {"json": "application/json", "text": "text/plain", "bytes": "application/base64"}


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    def __init__(self, provider: KafkaProvider) -> None:
        self._provider = provider

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._provider.revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._provider._seen_fetch = time.monotonic()


info = ProviderInfo.of(KafkaProvider)
