"""Redis Streams provider: entries of one or more streams, read through a consumer group.

**Group and consumer.** The group (default ``triggers:<trigger id>``) is created on each
stream if missing (``XGROUP CREATE ... MKSTREAM``, from ``start``: ``$`` new entries only,
``0`` the whole stream); an existing group keeps its position. The consumer name is
``<hostname>:<pid>:<trigger id>``: unique per worker process, and the same again when the
runtime reconnects inside that process, so the new connection finds the entries the old
one was given and did not ack.

**Reading** (``receive``), in this order:

1. This consumer's own pending entries (``XREADGROUP ... 0``): after a reconnect, a
   cancelled read, or a ``nack``. Entries still in flight in the runtime are skipped.
2. Every ``min_idle / 2`` (at most a minute apart), ``XAUTOCLAIM`` of entries any consumer
   left unacked for longer than ``min_idle``: a dead worker's entries (a restarted worker
   is a new process, hence a new consumer) come back this way.
3. New entries (``XREADGROUP ... >`` with ``BLOCK block_ms``).

**Event key** ``<stream>/<entry-id>`` (``orders/1700000000000-0``): the same on every
redelivery, from any consumer. ``Message.attempts`` is the entry's delivery count
(``XPENDING``; 1 for a new entry): each redelivery counts, so an entry that keeps failing
is dead-lettered by the runtime after ``max_deliveries``. An entry deleted from the stream
(``XDEL``, ``XTRIM``) while pending comes back without fields and is dead-lettered too.

**Data.** ``value_format`` ``entry`` (default): the entry as a JSON object of its fields,
``{"field": "value"}`` (UTF-8 text values; a binary value makes the entry a poison
message). ``json`` / ``text``: the one field ``value_field``, decoded. ``Message.value`` is
the entry as JSON either way (fields that are not UTF-8 kept as lone surrogates, ``\\udcff``,
so the bytes can be recovered), which is what a dead letter stores and ``to_event`` reads.

**Ack** is ``XACK``, one call per stream per batch. ``health`` reports the group's pending
entries (``XPENDING``) and its lag (``XINFO GROUPS``, Redis 7). Consumers of processes that
are gone stay listed in the group with nothing pending; ``XGROUP DELCONSUMER`` removes them.

The password is the ``password`` secret, never in the URL; no message includes it. The
configuration is in ``triggers.providers.redis_streams_config``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError, ResponseError
from redis.typing import KeyT, StreamIdT

from triggers.core.events import Event
from triggers.infra import net
from triggers.providers import ProviderInfo
from triggers.providers.base import ProviderError, SourceContext
from triggers.providers.redis_streams_config import RedisStreamsConfig
from triggers.providers.redis_streams_entries import (
    classify,
    consumer_name,
    encode_entry,
    entry_event,
    entry_time,
    id_order,
    text,
)
from triggers.providers.stream import Message, StreamHealth, StreamProvider

log = logging.getLogger(__name__)

PASSWORD = "password"
_CONNECT_TIMEOUT = 10.0
# Beyond BLOCK: how long a read may take before the connection counts as lost.
_READ_MARGIN = 10.0
_MAX_CLAIM_EVERY = 60.0

# An entry as redis-py returns it: (id, fields); no fields: deleted while pending.
Entry = tuple[Any, Any]


class RedisStreamsProvider(StreamProvider):
    """Consumes Redis streams through a consumer group; see the module docstring."""

    name = "redis_streams"
    Config = RedisStreamsConfig
    key_format = "<stream>/<entry-id>"
    optional_secrets = frozenset({PASSWORD})
    # The URL names the server the password is sent to.
    destination_fields = ("url",)
    config: RedisStreamsConfig

    def configure(self, config: BaseModel, context: SourceContext) -> None:
        """Keep the config and what follows from it, without I/O: all ``to_event`` needs
        (a dead letter's redrive calls it on a provider configured so, never connected)."""
        cfg = RedisStreamsConfig.model_validate(config.model_dump())
        super().configure(cfg, context)
        self.address = cfg.address
        self.source = self.address.display
        self.group = cfg.group_name(context.trigger_id)
        self.consumer = consumer_name(context.trigger_id)

    async def init(
        self, config: BaseModel, secrets: Mapping[str, str], context: SourceContext
    ) -> None:
        self.configure(config, context)
        cfg, address = self.config, self.address
        self._password = secrets.get(PASSWORD) or None
        # Own pending entries still to read (stream -> the last id read; None: done), the
        # entries handed to the runtime and not acked yet, and a new read's surplus.
        self._history: dict[str, str | None] = dict.fromkeys(cfg.streams, "0")
        self._in_flight: dict[str, set[str]] = {s: set() for s in cfg.streams}
        self._surplus: deque[Message] = deque()
        self._claim_cursor: dict[str, str] = {}
        self._claim_at = 0.0
        min_idle = cfg.min_idle.total_seconds()
        self._claim_every = min(max(min_idle / 2, 0.05), _MAX_CLAIM_EVERY)
        self._min_idle_ms = max(1, round(min_idle * 1000))
        await net.check_host(address.host, address.port, context.network_allowlist)
        self._client = Redis(
            host=address.host,
            port=address.port,
            db=address.db,
            username=address.username,
            password=self._password,
            ssl=address.scheme == "rediss",
            client_name=self.consumer,
            socket_connect_timeout=_CONNECT_TIMEOUT,
            socket_timeout=cfg.block_ms / 1000 + _READ_MARGIN,
            # One quick retry (a stale pooled connection); beyond that the runtime
            # reconnects with its backoff.
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.1), 1),
            health_check_interval=30,
        )
        try:
            await self._client.ping()
            for stream in cfg.streams:
                await self._create_group(stream)
        except (RedisError, OSError) as exc:
            # ``from None``: a driver error must not ride along as the cause.
            raise self._error(exc) from None
        log.info(
            "redis_streams %s: consuming %s as %s/%s",
            context.trigger_id,
            ", ".join(cfg.streams),
            self.group,
            self.consumer,
        )

    async def _create_group(self, stream: str) -> None:
        try:
            await self._client.xgroup_create(stream, self.group, self.config.start, mkstream=True)
        except ResponseError as exc:
            if not str(exc).startswith("BUSYGROUP"):
                raise

    async def shutdown(self) -> None:
        client = getattr(self, "_client", None)
        if client is not None:
            with contextlib.suppress(RedisError, OSError):
                await client.aclose()

    async def receive(self, max_messages: int) -> Sequence[Message]:
        limit = max(1, min(max_messages, self.config.count))
        try:
            messages = self._take_surplus(limit)
            if not messages and any(v is not None for v in self._history.values()):
                messages = await self._read_history(limit)
            loop = asyncio.get_running_loop()
            if not messages and (self._claim_cursor or loop.time() >= self._claim_at):
                messages = await self._claim(limit)
            if not messages:
                messages = await self._read_new(limit)
        except asyncio.CancelledError:
            # A read the server answered but we never saw left entries in our pending
            # list: read it again next time.
            self._redrain()
            raise
        except (RedisError, OSError) as exc:
            self._redrain()
            raise self._error(exc) from None
        for message in messages:
            stream, entry_id = message.token
            self._in_flight[stream].add(entry_id)
        return messages

    def _take_surplus(self, limit: int) -> list[Message]:
        taken: list[Message] = []
        while self._surplus and len(taken) < limit:
            taken.append(self._surplus.popleft())
        return taken

    def _redrain(self) -> None:
        self._surplus.clear()
        self._history = dict.fromkeys(self.config.streams, "0")

    async def _read_history(self, limit: int) -> list[Message]:
        ids: dict[KeyT, StreamIdT] = {s: i for s, i in self._history.items() if i is not None}
        reply: Any = await self._client.xreadgroup(self.group, self.consumer, ids, count=limit)
        messages: list[Message] = []
        for raw_stream, entries in reply or []:
            stream = text(raw_stream)
            taken: list[Entry] = []
            # Nothing left: done; else continue after the last entry looked at.
            last = self._history[stream] if entries else None
            for entry in entries:
                if len(messages) + len(taken) >= limit:
                    break
                last = text(entry[0])
                if last not in self._in_flight[stream]:
                    taken.append(entry)
            self._history[stream] = last
            messages += await self._messages(stream, taken, counted=False)
        return messages

    async def _claim(self, limit: int) -> list[Message]:
        """One ``XAUTOCLAIM`` step per stream whose scan is not done; a scan of every
        stream ends the round, the next one starts ``_claim_every`` later."""
        if not self._claim_cursor:
            self._claim_cursor = dict.fromkeys(self.config.streams, "0-0")
        messages: list[Message] = []
        for stream in list(self._claim_cursor):
            if len(messages) >= limit:
                break
            reply: Any = await self._client.xautoclaim(
                stream,
                self.group,
                self.consumer,
                self._min_idle_ms,
                self._claim_cursor[stream],
                count=limit - len(messages),
            )
            # Redis 7 also lists the pending entries it found deleted (and dropped).
            cursor, entries = reply[0], reply[1]
            deleted = reply[2] if len(reply) > 2 else []
            if text(cursor) == "0-0":
                del self._claim_cursor[stream]
            else:
                self._claim_cursor[stream] = text(cursor)
            # Ours already (handed out, or a read's surplus): not twice.
            held = self._in_flight[stream] | {m.token[1] for m in self._surplus}
            fresh = [e for e in entries if text(e[0]) not in held]
            gone = [(e, None) for e in deleted or []]
            messages += await self._messages(stream, [*fresh, *gone], counted=False)
        if not self._claim_cursor:
            self._claim_at = asyncio.get_running_loop().time() + self._claim_every
        if messages:
            log.info("redis_streams %s: reclaimed %d entries", self.group, len(messages))
        return messages

    async def _read_new(self, limit: int) -> list[Message]:
        streams = self.config.streams
        # COUNT is per stream: ask each for its share, keep what is over the limit.
        share = max(1, math.ceil(limit / len(streams)))
        new: dict[KeyT, StreamIdT] = dict.fromkeys(streams, ">")
        reply: Any = await self._client.xreadgroup(
            self.group,
            self.consumer,
            new,
            count=share,
            block=self.config.block_ms,
        )
        messages: list[Message] = []
        for raw_stream, entries in reply or []:
            messages += await self._messages(text(raw_stream), entries, counted=True)
        self._surplus.extend(messages[limit:])
        return messages[:limit]

    async def _messages(
        self, stream: str, entries: Sequence[Entry], *, counted: bool
    ) -> list[Message]:
        """Messages of entries of one stream; their delivery counts from XPENDING unless
        they are new (``counted``: delivered once, now)."""
        ids = [text(entry_id) for entry_id, _ in entries]
        attempts = {} if counted else await self._delivery_counts(stream, ids)
        messages = []
        for entry_id, (_, fields) in zip(ids, entries, strict=True):
            key = f"{stream}/{entry_id}"
            messages.append(
                Message(
                    key=key,
                    # No fields: deleted from the stream while pending (see to_event).
                    value=encode_entry(fields) if fields else b"",
                    time=entry_time(entry_id),
                    attempts=attempts.get(entry_id, 1),
                    token=(stream, entry_id),
                    meta={"stream": stream, "id": entry_id},
                )
            )
        return messages

    async def _delivery_counts(self, stream: str, ids: Sequence[str]) -> dict[str, int]:
        """Delivery counts of entries of ours: one XPENDING range over them, then one call
        per entry only for those the range missed (other pending entries of ours in it)."""
        if not ids:
            return {}
        span = len(ids) + len(self._in_flight[stream]) + 64
        rows = await self._client.xpending_range(
            stream, self.group, min(ids, key=id_order), max(ids, key=id_order), span, self.consumer
        )
        counts = _counts(rows)
        missing = [i for i in ids if i not in counts]
        if missing:
            async with self._client.pipeline(transaction=False) as pipe:
                for entry_id in missing:
                    pipe.xpending_range(stream, self.group, entry_id, entry_id, 1, self.consumer)
                for reply in await pipe.execute():
                    counts |= _counts(reply)
        return counts

    async def ack(self, messages: Sequence[Message]) -> None:
        by_stream = _by_stream(messages)
        if not by_stream:
            return
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for stream, ids in by_stream.items():
                    pipe.xack(stream, self.group, *ids)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise self._error(exc) from None
        for stream, ids in by_stream.items():
            self._in_flight.get(stream, set()).difference_update(ids)

    async def nack(self, messages: Sequence[Message]) -> None:
        """Not acked: still in our pending list, read again by the next ``receive``."""
        for stream, ids in _by_stream(messages).items():
            self._in_flight.get(stream, set()).difference_update(ids)
        self._redrain()

    async def health(self) -> StreamHealth:
        streams = self.config.streams
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for stream in streams:
                    pipe.xpending(stream, self.group)
                    pipe.xinfo_groups(stream)
                replies: list[Any] = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise self._error(exc) from None
        detail: dict[str, Any] = {"group": self.group, "consumer": self.consumer, "streams": {}}
        pending, lags, oldest = 0, list[int | None](), list[float]()
        for index, stream in enumerate(streams):
            summary, groups = replies[2 * index], replies[2 * index + 1]
            age = _entry_age(summary.get("min"))
            if age is not None:
                oldest.append(age)
            mine: dict[str, Any] = next((g for g in groups if text(g["name"]) == self.group), {})
            # None: the server cannot tell (e.g. entries were deleted); Redis < 7: absent.
            lag = None if mine.get("lag") is None else int(mine["lag"])
            pending += int(summary["pending"])
            lags.append(lag)
            detail["streams"][stream] = {"pending": int(summary["pending"]), "lag": lag}
        known = [v for v in lags if v is not None]
        total_lag = sum(known) if len(known) == len(lags) else None
        return StreamHealth(
            lag=total_lag,
            pending=pending,
            detail=detail,
            oldest_age_seconds=max(oldest) if oldest else None,
        )

    def to_event(self, message: Message) -> Event:
        return entry_event(self.config, self.source, message)

    def _error(self, exc: BaseException) -> ProviderError:
        return classify(exc, f"redis_streams {self.source}", self._password)


def _counts(rows: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    return {text(row["message_id"]): int(row["times_delivered"]) for row in rows}


def _by_stream(messages: Iterable[Message]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for message in messages:
        stream, entry_id = message.token
        grouped.setdefault(stream, []).append(entry_id)
    return grouped


info = ProviderInfo.of(RedisStreamsProvider)


def _entry_age(entry_id: Any) -> float | None:
    """Seconds since an entry (by its id) was added; None for no entry."""
    added = entry_time(text(entry_id)) if entry_id is not None else None
    return None if added is None else max((datetime.now(UTC) - added).total_seconds(), 0.0)
