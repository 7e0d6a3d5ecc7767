"""Cron provider: a schedule becomes one ``cron.tick`` event per slot.

Exactly one of ``cron`` (5 fields, 6 fields with seconds first, or an alias such as
``@daily``) and ``every`` (``"30s"``, ``"1h30m"``: absolute time on the grid
``start_at + k * every``, or the unix epoch without ``start_at``).

The event key is the slot, the scheduled instant in UTC (``2026-03-29T01:30:00+00:00``), and
the cursor is the last slot handled, so a restarted loop never fires a slot twice and the run
for a slot is started at most once (its workflow ID is ``run:<trigger>:<slot>``).

Daylight saving time, for wall-clock cron fields in ``timezone`` (``every`` is absolute time
and is not affected). With ``timezone="Europe/Berlin"`` and ``cron="30 2 * * *"``:

- 2026-03-29, clocks jump 02:00 → 03:00, so 02:30 does not exist. ``on_missing_time="shift"``
  (default) fires at 03:30 CEST = 01:30 UTC, the wall time moved forward by the gap;
  ``"skip"`` fires nothing that day.
- 2026-10-25, clocks go back 03:00 → 02:00, so 02:30 happens twice. ``on_repeated_time=
  "once"`` (default) fires at the first, 02:30 CEST = 00:30 UTC; ``"twice"`` fires at
  00:30 UTC and again at 02:30 CET = 01:30 UTC.

Frequent expressions obey the same rules: ``"*/15 * * * *"`` with ``once`` is silent for the
repeated hour (its wall times already fired); choose ``twice`` to keep a steady cadence.

Catch-up: when the loop starts (or wakes) after slots went by unfired, ``catchup`` picks
which of them fire now: ``skip`` none, ``latest`` the most recent, ``all`` every one, oldest
first, but never one older than ``catchup_window``. Skipped slots still move the cursor.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Literal, Self
from zoneinfo import ZoneInfo, available_timezones

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from triggers.core.durations import DURATION_PATTERN, parse_duration
from triggers.core.events import Event
from triggers.core.schedule import (
    Bounded,
    CatchUp,
    CronSchedule,
    IntervalSchedule,
    MissingTime,
    RepeatedTime,
    Schedule,
    catchup_slots,
    cron_fields,
    latest_before,
)
from triggers.providers import ProviderInfo
from triggers.providers.base import (
    EventSink,
    ProviderConfigError,
    SourceContext,
    SourceProvider,
    event_time,
)

log = logging.getLogger(__name__)

EVENT_TYPE = "cron.tick"
# Long idles are cut into pieces so a wall-clock step (NTP, a suspended laptop) is noticed
# within a minute instead of after a monotonic sleep of hours.
MAX_WAIT_SECONDS = 60.0
# Missed slots fired by catch-up travel this many per signal.
CATCHUP_BATCH = 100


# The zone names ZoneInfo knows here (tzdata is a dependency), as the schema's enum.
_ZONES: list[JsonValue] = [*sorted(available_timezones())]


class CronConfig(BaseModel):
    """Configuration of a schedule trigger. No secrets."""

    model_config = ConfigDict(
        extra="forbid",
        # Exactly one of cron and every (checked below), as the published schema says it.
        json_schema_extra={
            "oneOf": [
                {"required": ["cron"], "properties": {"cron": {"type": "string"}}},
                {"required": ["every"], "properties": {"every": {"type": "string"}}},
            ]
        },
    )

    cron: str | None = Field(
        default=None,
        # As close as a pattern gets: an alias, or 5-6 fields of cron characters (ranges
        # and values are checked by the validator below).
        json_schema_extra={
            "pattern": "^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)"
            "|[0-9*/,?LW#-]+( [0-9*/,?LW#-]+){4,5})$"
        },
        description="Cron expression: 5 fields (minute hour day month weekday), 6 fields with "
        "seconds first ('*/5 * * * * *' = every 5 seconds), or @yearly, @annually, @monthly, "
        "@weekly, @daily, @midnight, @hourly. Wall-clock times in `timezone`.",
    )
    every: str | None = Field(
        default=None,
        json_schema_extra={"pattern": DURATION_PATTERN},
        description="Fixed interval instead of `cron`, e.g. '30s', '5m', '1h30m', '2d' "
        "(at least 1s), on the grid start_at + k*every (the unix epoch without start_at).",
    )
    timezone: str = Field(
        default="UTC",
        description="IANA zone of the cron fields.",
        json_schema_extra={"enum": _ZONES},
    )
    start_at: AwareDatetime | None = Field(default=None, description="No slot before this.")
    end_at: AwareDatetime | None = Field(
        default=None, description="No slot after this; the schedule then finishes."
    )
    jitter: str = Field(
        default="0s",
        json_schema_extra={"pattern": DURATION_PATTERN},
        description="Delay each fire by a random 0..jitter (e.g. '30s'); the event key stays "
        "the scheduled slot.",
    )
    catchup: CatchUp = Field(
        default="latest",
        description="Slots missed while the trigger was not running: 'skip' fires none, "
        "'latest' the most recent, 'all' every one, oldest first.",
    )
    catchup_window: str = Field(
        default="1h",
        json_schema_extra={"pattern": DURATION_PATTERN},
        description="Missed slots older than this are never fired (e.g. '1h').",
    )
    overlap: Literal["allow", "skip"] = Field(
        default="allow",
        description="'skip': no new run while the previous one is still running (enforced by "
        "the trigger workflow).",
    )
    on_missing_time: MissingTime = Field(
        default="shift",
        description="A wall time that a spring-forward skips: 'shift' fires it moved forward "
        "by the gap (02:30 → 03:30), 'skip' not at all.",
    )
    on_repeated_time: RepeatedTime = Field(
        default="once",
        description="A wall time that a fall-back repeats: 'once' fires the first occurrence, "
        "'twice' both.",
    )

    @field_validator("cron")
    @classmethod
    def _check_cron(cls, value: str | None) -> str | None:
        if value is not None:
            cron_fields(value)
        return value

    @field_validator("every", "jitter", "catchup_window")
    @classmethod
    def _check_duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @field_validator("every", "catchup_window")
    @classmethod
    def _at_least_a_second(cls, value: str | None) -> str | None:
        if value is not None and parse_duration(value) < timedelta(seconds=1):
            raise ValueError("must be at least 1s")
        return value

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ValueError, KeyError, OSError):  # ZoneInfoNotFoundError is a KeyError
            raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _check_together(self) -> Self:
        if self.cron is None and self.every is None:
            raise _field_error("cron", "set either cron or every")
        if self.cron is not None and self.every is not None:
            raise _field_error("every", "set either cron or every, not both")
        if self.start_at and self.end_at and self.end_at <= self.start_at:
            raise _field_error("end_at", "must be after start_at")
        if self.every is not None and parse_duration(self.jitter) >= parse_duration(self.every):
            raise _field_error("jitter", "must be shorter than every")
        return self


def _field_error(field: str, message: str) -> ValidationError:
    """A cross-field error located at ``field`` (so the API answers 422 naming it)."""
    error = PydanticCustomError("value_error", message)
    return ValidationError.from_exception_data(
        CronConfig.__name__, [InitErrorDetails(type=error, loc=(field,), input=None)]
    )


def build_schedule(config: CronConfig) -> Schedule:
    """The pure schedule a config describes (see ``triggers.core.schedule``)."""
    inner: Schedule
    if config.cron is not None:
        inner = CronSchedule(
            config.cron,
            ZoneInfo(config.timezone),
            on_missing_time=config.on_missing_time,
            on_repeated_time=config.on_repeated_time,
        )
    else:
        assert config.every is not None
        anchor = config.start_at or datetime(1970, 1, 1, tzinfo=UTC)
        inner = IntervalSchedule(parse_duration(config.every), anchor)
    return Bounded(inner, config.start_at, config.end_at)


def slot_key(slot: datetime) -> str:
    """Event key, id and cursor of a slot: its instant in UTC, ISO 8601."""
    return slot.astimezone(UTC).isoformat()


def parse_cursor(cursor: object) -> datetime | None:
    """The instant a cursor records, or None (fresh trigger or unreadable cursor)."""
    if cursor is None:
        return None
    try:
        value = datetime.fromisoformat(str(cursor))
    except ValueError:
        log.warning("cron: ignoring unreadable cursor %r; starting fresh", cursor)
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def tick_event(config: CronConfig, *, trigger_id: str, slot: datetime, fired_at: datetime) -> Event:
    """The event for one slot; ``time`` is when it actually fired."""
    key = slot_key(slot)
    return Event(
        id=key,
        key=key,
        source=f"/triggers/{trigger_id}/cron",
        type=EVENT_TYPE,
        time=event_time(fired_at.astimezone(UTC)),
        data={
            "scheduled_time": key,
            "scheduled_local": slot.astimezone(ZoneInfo(config.timezone)).isoformat(),
            "fired_at": fired_at.astimezone(UTC).isoformat(),
            "schedule": config.cron if config.cron is not None else config.every,
            "timezone": config.timezone,
        },
        subject=None,
    )


class CronProvider(SourceProvider):
    """Fires ``cron.tick`` events on a schedule; resumes from the last slot handled."""

    name = "cron"
    Config = CronConfig
    destination_fields = ()  # connects nowhere, holds no secrets

    def __init__(self, *, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()
        self._config: CronConfig | None = None
        self._schedule: Schedule | None = None
        self._trigger_id = ""

    async def init(
        self, config: BaseModel, secrets: Mapping[str, str], context: SourceContext
    ) -> None:
        try:
            # Validate again whatever was handed over (a model built without validation, an
            # older stored config) so nothing invalid reaches the loop.
            checked = CronConfig.model_validate(config.model_dump())
            self._schedule = build_schedule(checked)
        except (ValidationError, ValueError) as exc:
            raise ProviderConfigError(f"invalid cron config: {exc}") from None
        self._config = checked
        self._trigger_id = context.trigger_id

    async def run(self, sink: EventSink) -> None:
        config, schedule = self._config, self._schedule
        if config is None or schedule is None:
            raise ProviderConfigError("init was not called")
        last = parse_cursor(sink.cursor)
        if last is None:
            # Fresh: nothing from the past fires. Record the start so that a restart after
            # a slot went by unfired catches it up like any other missed slot.
            last = sink.now() - timedelta(microseconds=1)
            await sink.checkpoint(slot_key(last))
        jitter = parse_duration(config.jitter).total_seconds()
        while True:
            now = sink.now()
            due = schedule.next_after(last)
            if due is not None and due < now:
                last = await self._catch_up(sink, config, schedule, last=last, now=now)
                due = schedule.next_after(last)
            if due is None:
                return  # past end_at (or a cron that never matches again): finished
            fire_at = due + timedelta(seconds=self._rng.uniform(0, jitter)) if jitter else due
            while (remaining := (fire_at - sink.now()).total_seconds()) > 0:
                await sink.wait(min(remaining, MAX_WAIT_SECONDS), next_at=fire_at)
            event = tick_event(config, trigger_id=self._trigger_id, slot=due, fired_at=sink.now())
            await sink.emit([event], cursor=slot_key(due))
            last = due

    async def _catch_up(
        self,
        sink: EventSink,
        config: CronConfig,
        schedule: Schedule,
        *,
        last: datetime,
        now: datetime,
    ) -> datetime:
        """Fire the missed slots the policy keeps; return the newest missed slot."""
        newest = latest_before(schedule, now, after=last)
        assert newest is not None  # the caller saw at least one missed slot
        chosen = catchup_slots(
            schedule,
            last=last,
            now=now,
            policy=config.catchup,
            window=parse_duration(config.catchup_window),
        )
        fired: datetime | None = None
        while batch := list(islice(chosen, CATCHUP_BATCH)):
            fired_at = sink.now()
            events = [
                tick_event(config, trigger_id=self._trigger_id, slot=slot, fired_at=fired_at)
                for slot in batch
            ]
            await sink.emit(events, cursor=slot_key(batch[-1]))
            fired = batch[-1]
        if fired != newest:
            await sink.checkpoint(slot_key(newest))
        return newest

    async def shutdown(self) -> None:
        self._config = self._schedule = None


info = ProviderInfo.of(CronProvider)
