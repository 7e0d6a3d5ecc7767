"""Coalesce concurrent deliveries for one trigger into one signal.

While a signal to a trigger workflow is in flight, further events for that trigger wait and
go together in the next signal. A lone delivery is sent at once (no added latency); under
load, one persisted signal carries many events, which keeps the trigger workflow's history
and its workflow tasks few. Each caller still learns the fate of its own event: it returns
only once the signal carrying it is persisted, and sees that signal's error otherwise.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from opentelemetry.context import Context

from triggers.core.events import Event
from triggers.infra import tracing
from triggers.infra.models import Trigger

Send = Callable[[Trigger, list[Event]], Awaitable[None]]


@dataclass
class _Item:
    trigger: Trigger
    event: Event
    size: int
    done: asyncio.Future[None]
    # The submitting request's trace context: its signal is sent in it.
    context: Context | None = None


@dataclass
class _Queue:
    items: list[_Item] = field(default_factory=list)


class SignalBatcher:
    def __init__(self, send: Send, *, max_events: int = 100, max_bytes: int = 512 * 1024) -> None:
        self._send = send
        self._max_events = max_events
        # Temporal payloads stay well under the server's blob limit.
        self._max_bytes = max_bytes
        self._queues: dict[str, _Queue] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, trigger: Trigger, event: Event, *, size: int) -> None:
        """Return once ``event`` is persisted in the trigger workflow; raise if it was not."""
        key = str(trigger.id)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = _Queue()
            task = asyncio.create_task(self._drain(key, queue))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        queue.items.append(_Item(trigger, event, size, done, tracing.current_context()))
        await asyncio.shield(done)

    def _take(self, queue: _Queue) -> list[_Item]:
        batch: list[_Item] = []
        total = 0
        while queue.items and len(batch) < self._max_events:
            item = queue.items[0]
            if batch and total + item.size > self._max_bytes:
                break
            batch.append(queue.items.pop(0))
            total += item.size
        return batch

    async def _drain(self, key: str, queue: _Queue) -> None:
        try:
            while queue.items:
                batch = self._take(queue)
                try:
                    # In the first event's trace (the drain task began in some earlier
                    # request's); the others carry their own trace context in the event.
                    with tracing.attached(batch[0].context):
                        await self._send(batch[-1].trigger, [i.event for i in batch])
                except Exception as exc:
                    for item in batch:
                        if not item.done.done():
                            item.done.set_exception(exc)
                            item.done.exception()  # retrieved here; the caller re-raises it
                    continue
                for item in batch:
                    if not item.done.done():
                        item.done.set_result(None)
        finally:
            del self._queues[key]
