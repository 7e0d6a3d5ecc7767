"""Open-loop schedules for the sustained benchmark: each call starts at its due time,
whatever earlier calls are doing, and what was accepted and started per minute."""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from _common import percentiles


@dataclass
class Call:
    """One scheduled call: when it was due, sent and answered (wall clock, seconds)."""

    key: str  # the run's workflow id
    n: int  # sequence number, in the payload
    due: float
    sent: float = 0.0
    answered: float = 0.0
    ok: bool = False


async def open_loop(
    calls: list[Call], fire: Callable[[Call], Coroutine[Any, Any, None]]
) -> tuple[float, set[asyncio.Task[None]], dict[str, Any]]:
    """Start ``fire(call)`` as its own task at ``t0 + call.due`` (``calls`` sorted by due),
    so a slow answer never delays a later call. Returns (t0, the tasks still running, the
    schedule's own stats) once the last call is sent."""
    tasks: set[asyncio.Task[None]] = set()
    lags: list[float] = []
    peak = 0
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.2
    t0 = time.time() + (start - loop.time())
    for call in calls:
        delay = start + call.due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        lags.append(max(0.0, loop.time() - start - call.due))
        task = asyncio.create_task(fire(call))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        peak = max(peak, len(tasks))
    return t0, tasks, {"send_lag_ms": percentiles(lags), "peak_in_flight": peak}


def per_minute(
    calls: list[Call], starts: dict[str, datetime], t0: float, bucket: float, window: float
) -> list[dict[str, Any]]:
    """Accepted (by answer time) and runs started (by start time) per ``bucket`` seconds
    from ``t0``. Rows from the second on that begin inside the send window are checked
    against the target; later rows are the drain."""
    accepted, started = Counter[int](), Counter[int]()
    for call in calls:
        if call.ok:
            accepted[int((call.answered - t0) // bucket)] += 1
            if call.key in starts:
                started[int((starts[call.key].timestamp() - t0) // bucket)] += 1
    last = max([*accepted, *started, math.ceil(window / bucket) - 1])
    rows = []
    for i in range(min(0, *accepted, *started), last + 1):
        a, s = accepted[i], started[i]
        rows.append(
            {
                "from_s": round(i * bucket, 1),
                "to_s": round((i + 1) * bucket, 1),
                "accepted": a,
                "runs_started": s,
                "ratio": round(s / a, 3) if a else None,
                "checked": i >= 1 and i * bucket < window,
            }
        )
    return rows


def latencies(calls: list[Call], starts: dict[str, datetime]) -> dict[str, Any]:
    """Run start (Temporal's start time) minus the call's send time and its answer time."""
    done = [(c, starts[c.key].timestamp()) for c in calls if c.ok and c.key in starts]
    return {
        "from_sent_ms": percentiles([s - c.sent for c, s in done]),
        "from_answer_ms": percentiles([s - c.answered for c, s in done]),
        "call_ms": percentiles([c.answered - c.sent for c in calls if c.ok]),
    }


def schedule(n_triggers: int, rate: float, seconds: float) -> list[tuple[float, int, int]]:
    """(due, trigger index, sequence) of every delivery, the triggers evenly interleaved."""
    per, gap = round(rate * seconds), 1 / (rate * n_triggers)
    return sorted((j / rate + k * gap, k, j) for k in range(n_triggers) for j in range(per))
