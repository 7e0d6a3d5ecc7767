"""The stream source activity's life: ``init``, the runtime's loop until a stop, the
delivery in progress finished whatever stopped it (activity cancellation, worker shutdown),
heartbeats throughout. The loop itself is ``activities/stream.py``."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from temporalio import activity

from activities.signalling import describe
from activities.stream import STOP_GRACE, StreamRuntime
from triggers.contracts.source import SourceResult

log = logging.getLogger("triggers.stream")


async def run_stream(
    runtime: StreamRuntime,
    *,
    init: Callable[[], Awaitable[None]],
    connected: Callable[[], Awaitable[None]],
    heartbeat_every: float,
) -> SourceResult:
    """The activity's body for a stream: ``init``, the loop until a stop, the delivery in
    progress finished whatever stopped it. The caller always calls ``shutdown``.

    Activity cancellation (the workflow's config change, disable or continue-as-new) is
    re-raised once the loop ended; a worker stop returns normally (the workflow starts the
    next attempt at once, elsewhere)."""

    async def beat() -> None:
        # Cancellation only reaches an activity that heartbeats.
        while True:
            activity.heartbeat(runtime.details())
            await asyncio.sleep(heartbeat_every)

    await init()
    await connected()
    helpers = [asyncio.create_task(beat()), asyncio.create_task(runtime.watch_health())]
    loop = asyncio.create_task(runtime.run())
    shutdown = asyncio.ensure_future(activity.wait_for_worker_shutdown())
    cancelled = False
    try:
        try:
            await asyncio.wait({loop, shutdown}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            cancelled = True
        runtime.stop()
        cancelled = await _finish(loop) or cancelled
    finally:
        shutdown.cancel()
        for task in helpers:
            task.cancel()
    if cancelled:
        if not loop.cancelled() and loop.exception() is not None:
            log.info("stream loop ended at a cancel: %s", describe(loop.exception()))  # type: ignore[arg-type]
        raise asyncio.CancelledError
    loop.result()
    return SourceResult(cursor=None, events=runtime.events)


async def _finish(task: asyncio.Task[None]) -> bool:
    """Wait for the loop to end (the delivery in progress completes: its signal and its
    acks). A cancel meanwhile does not cut it short; whether one came is returned."""
    cancelled = False
    deadline = time.monotonic() + STOP_GRACE
    while not task.done():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            task.cancel()
            await asyncio.wait({task})
            break
        try:
            await asyncio.wait({task}, timeout=remaining)
        except asyncio.CancelledError:
            cancelled = True
    return cancelled
