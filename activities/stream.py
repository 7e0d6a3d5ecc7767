"""The push-stream runtime: runs a ``StreamProvider`` as its trigger's source activity.

One loop per activity, for as long as the activity lives (it has no lifetime: it ends when
the workflow cancels it, at a worker stop, or on an error, and the workflow then starts a
new one, which is a reconnect):

1. backpressure: while the trigger workflow's pending (not yet started) events are at or
   over ``pause_pending``, do not receive (learnt by the status query, at most once a
   second and only while the runtime's estimate is near the mark);
2. ``receive(max_in_flight)`` (fewer when that would carry the backlog past the mark),
   raced against the stop (activity cancellation, worker shutdown): a consumer blocked in
   receive is cancelled at once;
3. each message becomes an event (``to_event``), or a dead letter when it cannot (poison,
   over ``MAX_MESSAGE_BYTES``, delivered more than ``max_deliveries`` times);
4. the events are admitted (bounds, verdicts, claim checks) and signalled in batches; after
   each persisted signal exactly the messages up to its last event are acked, in order
   (dead-lettered ones with them); a failed signal nacks the rest and ends the activity with
   a transient error (the workflow retries with backoff, the provider reconnects).

The loop runs in a task of its own that a stop never cancels: a stop is an event the loop
sees between deliveries, so the delivery in progress (its signal and its ack) always
completes, also when the activity is cancelled mid-signal. The runtime holds at most
``max_in_flight`` messages that are not acked, and nothing else: while Temporal is down the
signal fails and the activity ends, so memory stays flat.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client

from activities.signalling import batches, describe
from triggers.contracts.names import EVENTS_SIGNAL, STATUS_QUERY
from triggers.contracts.trigger import EventBatch, StreamReport, TriggerStatus
from triggers.core.events import Event, signal_size, trigger_workflow_id
from triggers.infra import dead_letters
from triggers.infra.admission import Admission, admit
from triggers.providers.base import ProviderTransientError
from triggers.providers.stream import (
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_PAUSE_PENDING,
    MAX_IN_FLIGHT_LIMIT,
    MAX_MESSAGE_BYTES,
    MAX_PAUSE_PENDING,
    Message,
    PoisonMessage,
    StreamHealth,
    StreamProvider,
)

log = logging.getLogger("triggers.stream")

# Seconds between status queries while near the mark (and while paused).
QUERY_EVERY = 1.0
# provider.health(): how often, and how long it may take.
HEALTH_EVERY = 5.0
HEALTH_TIMEOUT = 2.0
# A changed lag / pending is reported without events at most this often (seconds).
REPORT_EVERY = 30.0
SIGNAL_TIMEOUT = timedelta(seconds=10)
# A status query waits for a workflow worker: while none runs, it fails after this.
QUERY_TIMEOUT = timedelta(seconds=3)
# How long a stop waits for the delivery in progress before it is cut short (then its
# messages are simply redelivered: at least once, and the run id deduplicates).
STOP_GRACE = 30.0


@dataclass(frozen=True)
class Limits:
    max_in_flight: int
    pause_pending: int
    max_deliveries: int

    @classmethod
    def of(cls, provider: StreamProvider, config: BaseModel) -> Limits:
        """The provider config's ``max_in_flight``, ``pause_pending`` and ``max_deliveries``
        where it has them (each bounded), else the defaults."""

        def positive(name: str, default: int, limit: int) -> int:
            value = getattr(config, name, None)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                value = default
            return min(value, limit)

        return cls(
            max_in_flight=positive("max_in_flight", DEFAULT_MAX_IN_FLIGHT, MAX_IN_FLIGHT_LIMIT),
            pause_pending=positive("pause_pending", DEFAULT_PAUSE_PENDING, MAX_PAUSE_PENDING),
            max_deliveries=positive("max_deliveries", provider.max_deliveries, 1_000),
        )


@dataclass
class _Item:
    index: int
    message: Message
    event: Event | None = None
    # Why it is a dead letter (``event`` is then None).
    reason: str | None = None


class StreamRuntime:
    """One stream source's loop, its counters and its health (see the module docstring)."""

    def __init__(
        self,
        client: Client,
        sessions: async_sessionmaker[AsyncSession],
        provider: StreamProvider,
        *,
        trigger_id: str,
        config_version: int,
        admission: Admission,
        limits: Limits,
        secrets: dict[str, str] | None = None,
        on_accepted: Callable[[int], None] | None = None,
        on_health: Callable[[str, StreamHealth], None] | None = None,
    ) -> None:
        self._client = client
        # Told how many events each persisted signal carried (the received metric), and
        # the stream's state and health as they change (the source health gauges).
        self._on_accepted = on_accepted
        self._on_health = on_health
        self._sessions = sessions
        self._provider = provider
        self._trigger_id = trigger_id
        self._config_version = config_version
        self._admission = admission
        self.limits = limits
        self._secrets = secrets or {}
        self._handle = client.get_workflow_handle(trigger_workflow_id(trigger_id))
        self._stop = asyncio.Event()
        # Counters of this connection: events persisted, messages acked, dead letters.
        self.events = 0
        self.acked = 0
        self.dead_letters = 0
        self._dead_unreported = 0
        self.state = "connected"
        self.health = StreamHealth()
        self.last_event_at: str | None = None
        # The workflow's pending events at the last query, and events signalled since.
        self._pending_seen = 0
        self._sent_since = 0
        self._queried_at = -math.inf
        self._reported: tuple[int | None, int | None] = (None, None)
        self._reported_at = -math.inf

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def details(self) -> dict[str, Any]:
        """Heartbeat details (what the status API reads from the pending activity)."""
        return {
            "healthy": True,
            "events": self.events,
            "acked": self.acked,
            "dead_letters": self.dead_letters,
            "state": self.state,
            "lag": self.health.lag,
            "pending": self.health.pending,
            "last_event_at": self.last_event_at,
        }

    # -- the loop ----------------------------------------------------------------------

    async def run(self) -> None:
        """Until stopped; raises what ends the connection (a provider's or signal's error)."""
        await self._report()  # connected
        while not self.stopping:
            if not await self._gate():
                return
            messages = await self._receive()
            if messages is None:
                return
            if messages:
                await self.deliver(messages)
            elif time.monotonic() - self._reported_at >= REPORT_EVERY:
                if (self.health.lag, self.health.pending) != self._reported:
                    await self._report()

    async def _receive(self) -> list[Message] | None:
        """The next messages, or None once stopped (a receive in progress is cancelled;
        what it returned as the stop came is given back)."""
        asked = self._room()
        task = asyncio.ensure_future(self._provider.receive(asked))
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=STOP_GRACE)
        if not task.done() or task.cancelled():
            return None
        messages = list(task.result())
        if self.stopping:
            await self._nack(messages)
            return None
        extra = messages[asked:]
        if extra:  # a provider that returned more than asked: never held
            await self._nack(extra)
            del messages[asked:]
        return messages

    def _room(self) -> int:
        """How many messages the next receive asks for: ``max_in_flight``, and no more than
        fit under the pause mark by the backlog estimate, so that a receive never carries
        the workflow's backlog past ``pause_pending`` (a stream that trickles in, one
        message a receive and then a full one, would otherwise overshoot it)."""
        backlog = self._pending_seen + self._sent_since
        return max(1, min(self.limits.max_in_flight, self.limits.pause_pending - backlog))

    async def _stopped_within(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)
        except TimeoutError:
            return False
        return True

    # -- backpressure ------------------------------------------------------------------

    async def _gate(self) -> bool:
        """Wait while the workflow's backlog is over the mark; False if stopped meanwhile.

        The runtime estimates the backlog as the last queried one plus what it signalled
        since (an upper bound: runs start meanwhile) and asks the workflow only when that
        nears the mark, at most every ``QUERY_EVERY`` seconds. It pauses at
        ``pause_pending`` and resumes at half of it."""
        mark = self.limits.pause_pending
        while True:
            paused = self.state == "paused"
            if not paused and self._pending_seen + self._sent_since < mark // 2:
                return True
            if time.monotonic() - self._queried_at >= QUERY_EVERY:
                await self._query_pending()
            backlog = self._pending_seen + self._sent_since
            if (backlog <= mark // 2) if paused else (backlog < mark):
                if paused:
                    self.state = "connected"
                    await self._report()
                return True
            if not paused:
                self.state = "paused"
                await self._report()
            if await self._stopped_within(QUERY_EVERY):
                return False

    async def _query_pending(self) -> None:
        self._queried_at = time.monotonic()
        try:
            st = await self._handle.query(
                STATUS_QUERY, result_type=TriggerStatus, rpc_timeout=QUERY_TIMEOUT
            )
        except Exception as exc:  # unknown: keep the estimate (a down Temporal fails signals)
            log.info("stream %s: backlog unknown: %s", self._trigger_id, describe(exc))
            return
        self._pending_seen, self._sent_since = st.pending, 0

    # -- one delivery ------------------------------------------------------------------

    def _classify(self, index: int, message: Message) -> _Item:
        item = _Item(index, message)
        limits = self.limits
        if len(message.value) > MAX_MESSAGE_BYTES:
            item.reason = f"{len(message.value)} bytes, over the {MAX_MESSAGE_BYTES}-byte limit"
        elif message.attempts > limits.max_deliveries:
            item.reason = (
                f"delivered {message.attempts} times (max_deliveries {limits.max_deliveries})"
            )
        else:
            try:
                event = self._provider.to_event(message)
            except PoisonMessage as exc:
                item.reason = describe(exc, self._secrets)
            except Exception as exc:  # a bug on one message must not stop the stream
                item.reason = f"to_event failed: {describe(exc, self._secrets)}"
            else:
                # The message's key deduplicates its run: stable across redeliveries.
                item.event = event if event.key == message.key else replace(event, key=message.key)
        return item

    async def deliver(self, messages: Sequence[Message]) -> None:
        """Dead-letter, admit, signal and ack one receive's messages (see the docstring)."""
        items = [self._classify(i, m) for i, m in enumerate(messages)]
        good = [item for item in items if item.event is not None]
        try:
            for item in items:
                if item.reason is not None:
                    await self._dead_letter(item)
            admitted = await admit(
                self._admission,
                [item.event for item in good if item.event],
                sessions=self._sessions,
            )
        except Exception as exc:
            await self._nack(messages)
            raise ProviderTransientError(f"events not prepared: {describe(exc)}") from None
        for item, event in zip(good, admitted, strict=True):
            item.event = event
        done = 0  # messages[:done] are acked
        groups = batches(good, lambda item: signal_size(item.event))  # type: ignore[arg-type]
        for k, group in enumerate(groups):
            # The dead letters among them go with the batch that follows them (the last
            # batch takes those after it): acks stay in receive order.
            end = len(messages) if k == len(groups) - 1 else group[-1].index + 1
            try:
                await self._signal([item.event for item in group if item.event])
            except Exception as exc:
                await self._nack(messages[done:])
                raise ProviderTransientError(f"signal failed: {describe(exc)}") from None
            self.events += len(group)
            self._sent_since += len(group)
            await self._ack(items[done:end])
            done = end
        if done < len(messages):  # dead letters only
            await self._ack(items[done:])

    async def _dead_letter(self, item: _Item) -> None:
        m = item.message
        await dead_letters.record(
            self._sessions,
            trigger_id=self._trigger_id,
            key=m.key,
            reason=item.reason or "poison",
            headers=dict(m.headers),
            raw=m.value,
            attempts=m.attempts,
            meta=dict(m.meta),
            time=m.time,
        )
        log.warning("stream %s: dead letter %s: %s", self._trigger_id, m.key, item.reason)

    async def _signal(self, events: list[Event]) -> None:
        # Persisted when this returns: only then may these messages be acked.
        if events:
            self.last_event_at = datetime.now(UTC).isoformat()
        report = self._report_now()
        await self._handle.signal(
            EVENTS_SIGNAL,
            EventBatch(events, config_version=self._config_version, stream=report),
            rpc_timeout=SIGNAL_TIMEOUT,
        )
        if events and self._on_accepted is not None:
            self._on_accepted(len(events))
        self._observed()
        self._dead_unreported -= report.dead_lettered
        self._reported, self._reported_at = (report.lag, report.pending), time.monotonic()

    def _report_now(self) -> StreamReport:
        return StreamReport(
            state=self.state,
            lag=self.health.lag,
            pending=self.health.pending,
            dead_lettered=self._dead_unreported,
            last_event_at=self.last_event_at,
        )

    async def _report(self) -> None:
        """A signal without events: the stream's state changed (connected, paused)."""
        await self._signal([])

    async def _ack(self, items: list[_Item]) -> None:
        if not items:
            return
        try:
            await self._provider.ack([item.message for item in items])
        except Exception as exc:  # persisted already: redelivered, then deduplicated
            raise ProviderTransientError(f"ack failed: {describe(exc, self._secrets)}") from None
        self.acked += len(items)
        dead = sum(item.reason is not None for item in items)
        self.dead_letters += dead
        self._dead_unreported += dead

    async def _nack(self, messages: Sequence[Message]) -> None:
        if not messages:
            return
        try:
            await self._provider.nack(messages)
        except Exception as exc:  # they are redelivered anyway, once not acked
            log.info("stream %s: nack failed: %s", self._trigger_id, describe(exc, self._secrets))

    async def watch_health(self) -> None:
        while True:
            try:
                self.health = await asyncio.wait_for(self._provider.health(), HEALTH_TIMEOUT)
            except Exception as exc:
                log.debug("stream %s: health unknown: %s", self._trigger_id, describe(exc))
            self._observed()
            await asyncio.sleep(HEALTH_EVERY)

    def _observed(self) -> None:
        if self._on_health is not None:
            self._on_health(self.state, self.health)
