"""The pull providers' side of the source loop: the ``EventSink`` a provider's ``run`` talks
to (``ActivitySink``: admits, batches and signals events, moves the cursor only after the
signal carrying them is persisted, idles with heartbeats, parks on the workflow's timer),
and the race of a provider's run against the worker's shutdown."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio import activity
from temporalio.client import Client

from activities import signalling
from triggers.contracts.names import (
    EVENTS_SIGNAL,
)
from triggers.contracts.trigger import EventBatch
from triggers.core.events import Event, signal_size, trigger_workflow_id
from triggers.infra import tracing
from triggers.providers.base import (
    Cursor,
    SourceStop,
)


class Park(SourceStop):
    def __init__(self, resume_at: datetime) -> None:
        super().__init__()
        self.resume_at = resume_at


class WorkerStopping(SourceStop):
    """This worker began to shut down while the provider ran."""


async def until_worker_stops(run: Awaitable[None]) -> None:
    """Run the provider until it ends or this worker begins to shut down. Then the provider
    is cancelled and the activity returns normally, so its workflow starts the next attempt
    at once on a worker that runs: a stop is neither an error nor a reason for backoff."""
    task = asyncio.ensure_future(run)
    stopping = asyncio.ensure_future(activity.wait_for_worker_shutdown())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        interrupted = not task.done()
        if interrupted:
            task.cancel()
            # A provider blocked in receive sees the cancel; its shutdown() runs later.
            await asyncio.wait({task})
    if interrupted:
        raise WorkerStopping
    return task.result()


Admit = Callable[[list[Event]], Awaitable[list[Event]]]


async def _as_is(events: list[Event]) -> list[Event]:
    return events


class ActivitySink:
    """The EventSink a provider's ``run`` talks to inside the activity.

    ``admit`` prepares events before they are signalled (bounds, the condition's verdict,
    claim checks); every signal carries ``config_version``, so the workflow refuses what
    this loop sends once the trigger was disabled or its config changed.
    """

    def __init__(
        self,
        client: Client,
        *,
        trigger_id: str,
        cursor: Cursor,
        lifetime: float,
        park_after: float,
        lead: float = 5.0,
        config_version: int | None = None,
        admit: Admit = _as_is,
        on_accepted: Callable[[int], None] | None = None,
        provider: str = "",
    ) -> None:
        self._client = client
        # Told how many events each persisted signal carried (the intake's count).
        self._on_accepted = on_accepted
        self._trigger_id = trigger_id
        self._provider = provider
        self._workflow_id = trigger_workflow_id(trigger_id)
        self._config_version = config_version
        self._admit = admit
        # The next fire / poll time the workflow was last told of.
        self._told_next_at: datetime | None = None
        self._cursor = cursor
        self._deadline = time.monotonic() + lifetime
        self._park_after = park_after
        self._lead = lead
        self.events = 0
        self.next_at: datetime | None = None

    @property
    def cursor(self) -> Cursor:
        return self._cursor

    def details(self) -> dict[str, Any]:
        return {
            "cursor": self._cursor,
            "next_at": self.next_at.isoformat() if self.next_at else None,
            "events": self.events,
        }

    def heartbeat(self) -> None:
        activity.heartbeat(self.details())

    async def _signal(
        self, events: list[Event], cursor: Cursor, next_at: str | None = None
    ) -> None:
        # Persisted when this returns: only then may the cursor move past these events.
        batch = EventBatch(
            events, cursor=cursor, config_version=self._config_version, next_at=next_at
        )
        await self._client.get_workflow_handle(self._workflow_id).signal(EVENTS_SIGNAL, batch)
        if events and self._on_accepted is not None:
            self._on_accepted(len(events))

    async def report_recovered(self) -> None:
        """Tell the workflow the source started fine after an error (status: active)."""
        batch = EventBatch([], config_version=self._config_version, source_ok=True)
        await self._client.get_workflow_handle(self._workflow_id).signal(EVENTS_SIGNAL, batch)

    async def emit(self, events: Sequence[Event], *, cursor: Cursor = None) -> None:
        batches = signalling.batches(await self._admit(list(events)), signal_size)
        for i, batch in enumerate(batches):
            # The cursor rides on the last batch only: it must not move past events that
            # a later, failed signal would have carried.
            with tracing.batch_span(self._trigger_id, self._provider, batch) as traced:
                await self._signal(traced, cursor if i == len(batches) - 1 else None)
            self.events += len(batch)
        if not batches and cursor is not None:
            await self._signal([], cursor)
        if cursor is not None:
            self._cursor = cursor  # the last batch's signal carried it
            self.heartbeat()
        if time.monotonic() >= self._deadline:
            raise SourceStop

    async def checkpoint(self, cursor: Cursor) -> None:
        # A cursor that moves without events (a skipped slot, a "start from now") is signalled
        # too: the workflow's copy is what a retry resumes from, heartbeats may be throttled.
        await self._signal([], cursor)
        self._cursor = cursor
        self.heartbeat()

    async def wait(self, seconds: float, *, next_at: datetime | None = None) -> None:
        now = self.now()
        self.next_at = next_at or (now + timedelta(seconds=seconds))
        if next_at is not None and next_at != self._told_next_at:
            # The workflow keeps the next fire / poll time (the status shows its copy).
            await self._signal([], None, next_at=next_at.isoformat())
            self._told_next_at = next_at
        self.heartbeat()
        # Park on the provider's horizon (when it next needs to act), not on this one wait:
        # providers may idle in short pieces.
        horizon = (self.next_at - now).total_seconds()
        if horizon > self._park_after:
            raise Park(self.next_at - timedelta(seconds=self._lead))
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise SourceStop
        await asyncio.sleep(min(seconds, remaining))
        if seconds > remaining:
            raise SourceStop

    def now(self) -> datetime:
        return datetime.now(UTC)
