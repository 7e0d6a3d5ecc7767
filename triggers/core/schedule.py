"""Schedule arithmetic for the cron provider: fire instants, DST policies and catch-up.

Pure functions and small classes with no I/O and no clock of their own, so every rule here is
tested with plain datetimes. ``triggers.providers.cron`` wraps them in a loop.

A *slot* is an instant (an aware UTC datetime) at which a schedule fires. Every schedule
answers one question, ``next_after(t)``: the first slot strictly after ``t``. It is stateless,
so a restart that resumes from the last slot handled neither repeats nor loses a slot.

Cron fields are wall-clock times in the schedule's zone. Croniter walks *naive* wall times
(pure calendar arithmetic) and ``wall_instants`` maps each one to UTC under the two DST
policies; see ``docs/cron.md`` for worked examples.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Literal, Protocol
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, CroniterError, croniter

MissingTime = Literal["skip", "shift"]
RepeatedTime = Literal["once", "twice"]
CatchUp = Literal["skip", "latest", "all"]

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TICK = timedelta(microseconds=1)
# croniter's hashed (H) and random (R) fields give different slots per process or per hash
# id; a slot must be the same instant after a restart, so they are refused.
_NONDETERMINISTIC = re.compile(r"(?<![a-z])[hr](?![a-z])", re.IGNORECASE)
# How far apart two UTC offsets of one zone can be around an instant: offsets are sampled
# hourly this far either side (every real transition, even Samoa's 2011 day jump, fits).
_SWING_SPAN_HOURS = 26


def cron_fields(expression: str) -> str:
    """Validate a cron expression; return it with an alias expanded.

    Five fields (minute hour day-of-month month day-of-week) or six with *seconds first*
    (``"*/5 * * * * *"`` = every 5 seconds), or one of the ``ALIASES``.

    Raises:
        ValueError: croniter cannot parse it, it has another number of fields, it uses
            hashed/random fields, or it never matches.
    """
    text = " ".join(expression.split())
    text = ALIASES.get(text.lower(), text)
    if text.startswith("@"):
        raise ValueError(f"unknown alias {text!r}; known: {', '.join(ALIASES)}")
    fields = len(text.split(" "))
    if fields not in (5, 6):
        raise ValueError(f"a cron expression has 5 or 6 fields (seconds first), not {fields}")
    if _NONDETERMINISTIC.search(text):
        raise ValueError("hashed (H) and random (R) cron fields are not supported")
    try:
        croniter(text, EPOCH.replace(tzinfo=None), second_at_beginning=True).get_next(datetime)
    except CroniterBadDateError:
        raise ValueError(f"{expression!r} never matches a date") from None
    except (CroniterError, ValueError, KeyError, IndexError) as exc:
        raise ValueError(f"invalid cron expression {expression!r}: {exc}") from None
    return text


def wall_instants(
    wall: datetime, zone: ZoneInfo, on_missing: MissingTime, on_repeated: RepeatedTime
) -> list[datetime]:
    """The UTC instants at which the naive wall-clock time ``wall`` in ``zone`` fires.

    - An ordinary time: one instant.
    - A time in a spring-forward gap: none with ``skip``; with ``shift`` the wall time moved
      forward by the gap (02:30 on a day that jumps 02:00→03:00 fires at 03:30).
    - A time repeated by a fall-back: the first occurrence (earlier offset) with ``once``;
      both, oldest first, with ``twice``.
    """
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first == second:
        return [first]
    if first.astimezone(zone).replace(tzinfo=None) != wall:  # in a gap: neither fold exists
        # PEP 495: fold=0 reads a gap time with the offset before the transition, which is
        # the wall time moved forward by the gap; take the later reading whatever the sign.
        return [max(first, second)] if on_missing == "shift" else []
    both = sorted((first, second))
    return both if on_repeated == "twice" else both[:1]


def _swing(zone: ZoneInfo, at: datetime) -> timedelta:
    """How far the zone's UTC offsets differ within a day either side of ``at``."""
    return _swing_around_hour(zone, int(at.timestamp()) // 3600)


@lru_cache(maxsize=4096)
def _swing_around_hour(zone: ZoneInfo, hour: int) -> timedelta:
    offsets = set()
    for step in range(-_SWING_SPAN_HOURS - 1, _SWING_SPAN_HOURS + 2):
        offset = datetime.fromtimestamp((hour + step) * 3600, zone).utcoffset()
        assert offset is not None
        offsets.add(offset)
    return max(offsets) - min(offsets)


class Schedule(Protocol):
    def next_after(self, after: datetime) -> datetime | None:
        """The first slot strictly after ``after`` (aware), in UTC; None when none is left."""


class CronSchedule:
    """A 5- or 6-field cron expression (see ``cron_fields``) on the wall clock of a zone."""

    def __init__(
        self,
        expression: str,
        zone: ZoneInfo,
        *,
        on_missing_time: MissingTime = "shift",
        on_repeated_time: RepeatedTime = "once",
    ) -> None:
        self.expression = cron_fields(expression)
        self.zone = zone
        self.on_missing_time: MissingTime = on_missing_time
        self.on_repeated_time: RepeatedTime = on_repeated_time
        self._iter = croniter(self.expression, EPOCH.replace(tzinfo=None), second_at_beginning=True)

    def _walls(self, start: datetime) -> Iterator[datetime]:
        """Naive wall times matching the expression, strictly after ``start``, ascending."""
        current = start
        while True:
            try:
                current = self._iter.get_next(datetime, start_time=current)
            except CroniterBadDateError:  # nothing within croniter's 50-year horizon
                return
            yield current

    def _local(self, instant: datetime) -> datetime:
        return instant.astimezone(self.zone).replace(tzinfo=None)

    def next_after(self, after: datetime) -> datetime | None:
        after = after.astimezone(UTC)
        # A wall time earlier than after's own can still fire later when a fall-back is
        # near, so start the walk that much earlier (zero away from transitions) ...
        start = self._local(after) - _swing(self.zone, after) - _TICK
        best: datetime | None = None
        limit: datetime | None = None
        for wall in self._walls(start):
            # ... and keep walking past the first candidate while a later wall time could
            # still map to an earlier instant (shifted gap times, a repeated hour).
            if limit is not None and wall > limit:
                break
            for instant in wall_instants(
                wall, self.zone, self.on_missing_time, self.on_repeated_time
            ):
                if instant > after and (best is None or instant < best):
                    best = instant
                    limit = self._local(best) + _swing(self.zone, best)
        return best


class IntervalSchedule:
    """Every ``every`` in absolute time, on the grid ``anchor + k * every``."""

    def __init__(self, every: timedelta, anchor: datetime = EPOCH) -> None:
        if every < timedelta(seconds=1):
            raise ValueError("an interval is at least 1s")
        self.every = every
        self.anchor = anchor.astimezone(UTC)

    def next_after(self, after: datetime) -> datetime:
        steps = (after.astimezone(UTC) - self.anchor) // self.every + 1
        return self.anchor + steps * self.every


class Bounded:
    """A schedule with no slot before ``start_at`` nor after ``end_at`` (both inclusive)."""

    def __init__(
        self, inner: Schedule, start_at: datetime | None = None, end_at: datetime | None = None
    ) -> None:
        self.inner = inner
        self.start_at = start_at
        self.end_at = end_at

    def next_after(self, after: datetime) -> datetime | None:
        if self.start_at is not None and after < self.start_at:
            after = self.start_at - _TICK
        slot = self.inner.next_after(after)
        if slot is None or (self.end_at is not None and slot > self.end_at):
            return None
        return slot


def slots_between(schedule: Schedule, after: datetime, before: datetime) -> Iterator[datetime]:
    """The slots ``s`` with ``after < s < before``, oldest first."""
    slot = schedule.next_after(after)
    while slot is not None and slot < before:
        yield slot
        slot = schedule.next_after(slot)


def latest_before(schedule: Schedule, before: datetime, *, after: datetime) -> datetime | None:
    """The latest slot ``s`` with ``after < s < before``, or None.

    Looks back over a doubling span, so finding it costs about as much as walking the slots
    near ``before``, however old ``after`` is.
    """
    span = timedelta(seconds=1)
    while True:
        low = max(after, before - span)
        tail = deque(slots_between(schedule, low, before), maxlen=1)
        if tail:
            return tail[0]
        if low == after:
            return None
        span *= 2


def catchup_slots(
    schedule: Schedule,
    *,
    last: datetime,
    now: datetime,
    policy: CatchUp,
    window: timedelta,
) -> Iterator[datetime]:
    """The missed slots to fire now, oldest first, when the last slot handled was ``last``.

    Missed slots are those after ``last`` and before ``now``; only those no older than
    ``now - window`` are ever fired: none with ``skip``, the most recent with ``latest``,
    all of them with ``all``.
    """
    if policy == "skip":
        return
    oldest = max(last, now - window - _TICK)
    if policy == "latest":
        slot = latest_before(schedule, now, after=oldest)
        if slot is not None:
            yield slot
        return
    yield from slots_between(schedule, oldest, now)
