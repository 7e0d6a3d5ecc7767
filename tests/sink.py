"""An in-memory EventSink, to test providers without Temporal."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from triggers.core.events import Event
from triggers.providers.base import Cursor, SourceStop


class MemorySink:
    """Records what a provider emits.

    With ``clock`` set (a datetime), time is simulated: ``wait`` advances it instead of
    sleeping. The loop is stopped (``SourceStop``) once ``stop_after_events`` events were
    emitted, after ``stop_after_waits`` waits, or when ``stop()`` is called.
    """

    def __init__(
        self,
        *,
        cursor: Cursor = None,
        clock: datetime | None = None,
        stop_after_events: int | None = None,
        stop_after_waits: int | None = None,
        on_emit: Callable[[Sequence[Event]], None] | None = None,
    ) -> None:
        self._cursor = cursor
        self.clock = clock
        self.events: list[Event] = []
        self.cursors: list[Cursor] = []
        self.waits: list[float] = []
        self.next_at: list[datetime | None] = []
        self._stop_after_events = stop_after_events
        self._stop_after_waits = stop_after_waits
        self._on_emit = on_emit
        self._stopped = asyncio.Event()

    @property
    def cursor(self) -> Cursor:
        return self._cursor

    def stop(self) -> None:
        self._stopped.set()

    def _check(self) -> None:
        if self._stopped.is_set():
            raise SourceStop

    async def emit(self, events: Sequence[Event], *, cursor: Cursor = None) -> None:
        self._check()
        self.events.extend(events)
        if self._on_emit:
            self._on_emit(events)
        if cursor is not None:
            await self.checkpoint(cursor)
        if self._stop_after_events is not None and len(self.events) >= self._stop_after_events:
            self._stopped.set()

    async def checkpoint(self, cursor: Cursor) -> None:
        self._cursor = cursor
        self.cursors.append(cursor)

    async def wait(self, seconds: float, *, next_at: datetime | None = None) -> None:
        self._check()
        self.waits.append(seconds)
        self.next_at.append(next_at)
        if self._stop_after_waits is not None and len(self.waits) > self._stop_after_waits:
            raise SourceStop
        if self.clock is not None:
            self.clock += timedelta(seconds=max(0.0, seconds))
            return
        try:
            await asyncio.wait_for(self._stopped.wait(), timeout=max(0.0, seconds))
        except TimeoutError:
            return
        raise SourceStop

    def now(self) -> datetime:
        return self.clock if self.clock is not None else datetime.now(UTC)
