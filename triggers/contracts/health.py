"""One health shape for every provider kind (webhook, cron, polling, streams, plugins): the
``health`` of a trigger's status (``TriggerStatus.health``), filled by the trigger workflow
in its status query (``workflows/health.py``), and what ``GET /api/health/triggers`` lists.

Pure: the workflow imports this module through the sandbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# The health's ``state``, one word. The first that applies, in this order:
DISABLED: Final = "disabled"  # the trigger is disabled
FINISHED: Final = "finished"  # its source's schedule is over (a cron past its end_at)
# Its source cannot run: a configuration error (a refused login, a bad URL), or it has
# failed FAILING_AFTER or more times in a row; or no trigger workflow runs while enabled.
FAILING: Final = "failing"
# Its source is retrying after fewer than FAILING_AFTER errors in a row, a stream is
# reconnecting, or the latest run starts failed.
DEGRADED: Final = "degraded"
PAUSED: Final = "paused"  # a push stream paused by backpressure (the trigger's backlog)
# Behind: the broker's lag, or the events accepted whose runs are not started yet
# (``backlog``), at LAGGING_AT or more.
LAGGING: Final = "lagging"
ACTIVE: Final = "active"  # none of the above
# Only the API says this: the trigger workflow did not answer (or is of older code).
UNKNOWN: Final = "unknown"

STATES: Final = (DISABLED, FINISHED, FAILING, DEGRADED, PAUSED, LAGGING, ACTIVE, UNKNOWN)
# Consecutive source errors from which a retrying source is failing, not degraded.
FAILING_AFTER: Final = 3
# Lag (or backlog) at which the workflow calls a trigger lagging: a stream's default
# ``pause_pending`` (the API's threshold is the caller's).
LAGGING_AT: Final = 1_000


@dataclass
class TriggerHealth:
    """A trigger's health, the same fields for every provider kind; ``None`` where this
    kind of trigger has no such thing (a webhook has no cursor, a poll source no lag).

    Times are ISO 8601 (UTC). ``reason`` says in words why the state is not ``active``.
    """

    state: str = UNKNOWN
    reason: str | None = None
    # When the trigger workflow last accepted an event; when it last started a run (a
    # start that succeeded, not a duplicate).
    last_event_time: str | None = None
    last_run_start: str | None = None
    # Seconds since the source's cursor (watermark, slot, row position) last moved, at the
    # moment of the query; pull sources (cron, http_poll, sql_poll, plugins) only.
    cursor_age_seconds: float | None = None
    # Messages behind the newest, where the broker tells (Kafka: end minus committed
    # offsets; Redis: the group's lag); streams only.
    lag: int | None = None
    # Events accepted whose runs are not started yet (pending, spilled and starting).
    backlog: int = 0
    # New connections after an error or a restart (streams: every connection after the
    # first; pull sources: attempts after an error).
    reconnects: int = 0
    consecutive_errors: int = 0
    next_retry_at: str | None = None
    # Stream messages that could not become events (see the dead-letter API).
    dead_letters: int = 0
    paused_by_backpressure: bool = False
