"""Cron provider: exact fire instants on a simulated clock, DST policies, catch-up, config."""

from __future__ import annotations

import asyncio
import random
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from api.validation import validate_config
from tests.sink import MemorySink
from triggers.core.schedule import (
    CronSchedule,
    MissingTime,
    RepeatedTime,
    slots_between,
    wall_instants,
)
from triggers.providers import get_provider
from triggers.providers.base import ProviderConfigError, SourceContext, SourceStop
from triggers.providers.cron import MAX_WAIT_SECONDS, CronConfig, CronProvider

CONTEXT = SourceContext(trigger_id="t-1", trigger_name="tick", owner="alice")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def at(text: str) -> datetime:
    """A UTC instant from 'YYYY-MM-DDTHH:MM[:SS]'."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def keys(sink: MemorySink) -> list[str]:
    return [e.key for e in sink.events]


def iso(*texts: str) -> list[str]:
    return [at(t).isoformat() for t in texts]


async def run(
    config: dict[str, Any],
    *,
    clock: datetime,
    events: int | None = None,
    cursor: str | None = None,
    rng: random.Random | None = None,
) -> MemorySink:
    """Run the provider on a simulated clock until ``events`` were emitted (or it returns)."""
    provider = CronProvider(rng=rng)
    await provider.init(CronConfig(**config), {}, CONTEXT)
    sink = MemorySink(cursor=cursor, clock=clock, stop_after_events=events)
    with suppress(SourceStop):
        await provider.run(sink)
    await provider.shutdown()
    return sink


# -- instants ---------------------------------------------------------------------------


async def test_every_n_seconds_fires_on_the_epoch_grid() -> None:
    sink = await run({"every": "10s"}, clock=at("2026-01-01T00:00:03"), events=3)
    assert keys(sink) == iso("2026-01-01T00:00:10", "2026-01-01T00:00:20", "2026-01-01T00:00:30")
    assert sink.waits == [7.0, 10.0, 10.0]
    assert sink.next_at == [at(f"2026-01-01T00:00:{n}") for n in (10, 20, 30)]
    first = sink.events[0]
    assert first.id == first.key
    assert first.source == "/triggers/t-1/cron"
    assert first.type == "cron.tick"
    assert first.subject is None
    assert first.time == "2026-01-01T00:00:10+00:00"
    assert first.data == {
        "scheduled_time": "2026-01-01T00:00:10+00:00",
        "scheduled_local": "2026-01-01T00:00:10+00:00",
        "fired_at": "2026-01-01T00:00:10+00:00",
        "schedule": "10s",
        "timezone": "UTC",
    }
    # A fresh trigger records where it started, then one cursor per slot.
    assert sink.cursors == ["2026-01-01T00:00:02.999999+00:00", *keys(sink)]


async def test_six_fields_put_seconds_first() -> None:
    sink = await run({"cron": "*/5 * * * * *"}, clock=at("2026-01-01T00:00:03"), events=3)
    assert keys(sink) == iso("2026-01-01T00:00:05", "2026-01-01T00:00:10", "2026-01-01T00:00:15")
    # second 15, minute 30, hour 9 (seconds last, this would be hour 30: invalid)
    sink = await run({"cron": "15 30 9 * * *"}, clock=at("2026-01-01T09:30:15"), events=2)
    assert keys(sink) == iso("2026-01-01T09:30:15", "2026-01-02T09:30:15")


async def test_weekday_mornings_in_new_york_across_dst() -> None:
    config = {"cron": "0 9 * * 1-5", "timezone": "America/New_York"}
    sink = await run(config, clock=at("2026-03-05T12:00"), events=3)  # a Thursday, EST
    # Thu and Fri at 09:00 EST (UTC-5); Mon after the switch at 09:00 EDT (UTC-4).
    assert keys(sink) == iso("2026-03-05T14:00", "2026-03-06T14:00", "2026-03-09T13:00")
    assert [e.data["scheduled_local"] for e in sink.events] == [
        "2026-03-05T09:00:00-05:00",
        "2026-03-06T09:00:00-05:00",
        "2026-03-09T09:00:00-04:00",
    ]
    assert max(sink.waits) == MAX_WAIT_SECONDS  # long idles are cut into pieces


@pytest.mark.parametrize(
    ("alias", "expected"),
    [
        ("@yearly", ("2027-01-01T00:00", "2028-01-01T00:00")),
        ("@annually", ("2027-01-01T00:00", "2028-01-01T00:00")),
        ("@monthly", ("2026-02-01T00:00", "2026-03-01T00:00")),
        ("@weekly", ("2026-01-04T00:00", "2026-01-11T00:00")),
        ("@daily", ("2026-01-02T00:00", "2026-01-03T00:00")),
        ("@midnight", ("2026-01-02T00:00", "2026-01-03T00:00")),
        ("@hourly", ("2026-01-01T01:00", "2026-01-01T02:00")),
        ("@Daily", ("2026-01-02T00:00", "2026-01-03T00:00")),
    ],
)
def test_aliases(alias: str, expected: tuple[str, str]) -> None:
    schedule = CronSchedule(alias, ZoneInfo("UTC"))
    found = islice(slots_between(schedule, at("2026-01-01T00:00:30"), at("2029-01-01T00:00")), 2)
    assert [s.isoformat() for s in found] == iso(*expected)


async def test_alias_through_the_provider() -> None:
    sink = await run({"cron": "@hourly"}, clock=at("2026-01-01T00:00:30"), events=2)
    assert keys(sink) == iso("2026-01-01T01:00", "2026-01-01T02:00")
    assert sink.events[0].data["schedule"] == "@hourly"


async def test_every_resumes_on_the_same_grid_after_a_restart() -> None:
    # 11 minutes does not divide a day: slots are 11-minute steps from the unix epoch, not
    # from midnight (00:11) nor from the start (00:11 either), so the first is 00:05.
    config = {"every": "11m"}
    first = await run(config, clock=at("2026-01-01T00:00"), events=3)
    assert keys(first) == iso("2026-01-01T00:05", "2026-01-01T00:16", "2026-01-01T00:27")
    # The process is gone for two minutes; a new one resumes from the cursor.
    second = await run(
        config, clock=first.now() + timedelta(minutes=2), events=3, cursor=first.cursor
    )
    assert keys(second) == iso("2026-01-01T00:38", "2026-01-01T00:49", "2026-01-01T01:00")
    assert second.cursor == "2026-01-01T01:00:00+00:00"
    assert second.cursors == keys(second)  # a resumed trigger does not record a start
    # Resumed mid-wait (the cursor is the last slot), it neither repeats nor skips a slot.
    third = await run(config, clock=at("2026-01-01T01:03"), events=1, cursor=second.cursor)
    assert keys(third) == iso("2026-01-01T01:11")
    assert third.waits == [MAX_WAIT_SECONDS] * 8  # 8 minutes, in pieces


async def test_every_is_anchored_at_start_at() -> None:
    config = {"every": "90s", "start_at": "2026-01-01T00:00:10Z"}
    sink = await run(config, clock=at("2026-01-01T00:00"), events=3)
    assert keys(sink) == iso("2026-01-01T00:00:10", "2026-01-01T00:01:40", "2026-01-01T00:03:10")
    resumed = await run(config, clock=at("2026-01-01T00:05"), events=1, cursor=sink.cursor)
    assert keys(resumed) == iso("2026-01-01T00:04:40")  # latest missed, within the window


# -- catch-up ---------------------------------------------------------------------------

CURSOR = "2026-01-01T00:00:00+00:00"  # last slot handled; then the trigger was down 3.5 h


@pytest.mark.parametrize(
    ("policy", "window", "fired_now"),
    [
        ("skip", "1h", []),
        ("latest", "1h", ["03:30"]),
        ("all", "1h", ["02:45", "03:00", "03:15", "03:30"]),
        ("all", "30m", ["03:15", "03:30"]),
        ("all", "20m", ["03:30"]),
        ("latest", "5m", []),  # 03:30 is 10 min old: outside the window
        ("all", "5m", []),
    ],
)
async def test_catchup(policy: str, window: str, fired_now: list[str]) -> None:
    config = {"every": "15m", "catchup": policy, "catchup_window": window}
    now = at("2026-01-01T03:40")
    sink = await run(config, clock=now, events=len(fired_now) + 1, cursor=CURSOR)
    expected = iso(*(f"2026-01-01T{t}" for t in [*fired_now, "03:45"]))
    assert keys(sink) == expected
    fire_times = [e.time for e in sink.events]
    assert fire_times == [now.isoformat()] * len(fired_now) + ["2026-01-01T03:45:00+00:00"]
    # The newest missed slot becomes the cursor even when it did not fire.
    assert sink.cursors[-2] == "2026-01-01T03:30:00+00:00"
    assert sink.cursor == "2026-01-01T03:45:00+00:00"


async def test_catchup_all_is_capped_by_the_window_and_batched() -> None:
    config = {"cron": "* * * * * *", "catchup": "all", "catchup_window": "250s"}
    now = at("2026-01-01T10:00")
    sink = await run(config, clock=now, events=251, cursor="2026-01-01T08:00:00+00:00")
    missed = [now - timedelta(seconds=n) for n in range(250, 0, -1)]
    assert keys(sink) == [s.isoformat() for s in [*missed, now]]
    assert sink.cursors == [missed[i].isoformat() for i in (99, 199, 249)] + [now.isoformat()]


async def test_fresh_trigger_fires_nothing_from_the_past() -> None:
    config = {"every": "15m", "catchup": "all", "start_at": "2025-01-01T00:00:00Z"}
    sink = await run(config, clock=at("2026-01-01T03:40"), events=1)
    assert keys(sink) == iso("2026-01-01T03:45")


async def test_slot_due_right_now_fires_at_once() -> None:
    sink = await run({"cron": "0 * * * *"}, clock=at("2026-01-01T03:00"), events=1)
    assert keys(sink) == iso("2026-01-01T03:00")
    assert sink.waits == []


# -- start_at / end_at ------------------------------------------------------------------


async def test_start_and_end_bound_the_slots_and_the_loop_finishes() -> None:
    config = {
        "cron": "0 * * * *",
        "start_at": "2026-01-01T05:30:00Z",
        "end_at": "2026-01-01T08:00:00+00:00",
    }
    sink = await run(config, clock=at("2026-01-01T00:00"))  # returns by itself
    assert keys(sink) == iso("2026-01-01T06:00", "2026-01-01T07:00", "2026-01-01T08:00")
    late = await run(config, clock=at("2026-01-01T09:00"), cursor=sink.cursor)
    assert late.events == [] and late.waits == []


async def test_start_at_is_itself_a_slot_for_every() -> None:
    config = {"every": "1h", "start_at": "2026-01-01T05:30:00Z", "end_at": "2026-01-01T07:30:00Z"}
    sink = await run(config, clock=at("2026-01-01T00:00"))
    assert keys(sink) == iso("2026-01-01T05:30", "2026-01-01T06:30", "2026-01-01T07:30")


# -- jitter -----------------------------------------------------------------------------


async def test_jitter_delays_fires_but_keys_stay_on_slots() -> None:
    config = {"every": "1m", "jitter": "20s"}
    sink = await run(config, clock=at("2026-01-01T00:00:30"), events=20, rng=random.Random(7))
    slots = [at("2026-01-01T00:01") + timedelta(minutes=n) for n in range(20)]
    assert keys(sink) == [s.isoformat() for s in slots]
    delays = [
        (datetime.fromisoformat(e.time) - slot).total_seconds()
        for e, slot in zip(sink.events, slots, strict=True)
    ]
    assert all(0 <= d <= 20 for d in delays), delays
    assert len({round(d, 3) for d in delays}) == 20  # really random, not a constant delay
    assert [e.data["fired_at"] for e in sink.events] == [e.time for e in sink.events]


# -- daylight saving time ---------------------------------------------------------------

DST_CASES = [
    # Europe/Berlin 2026-03-29: 02:00 CET -> 03:00 CEST, 02:30 does not exist.
    (
        "Europe/Berlin",
        "30 2 * * *",
        "skip",
        "once",
        "2026-03-27T12:00",
        ["2026-03-28T01:30", "2026-03-30T00:30"],
    ),
    (
        "Europe/Berlin",
        "30 2 * * *",
        "shift",
        "once",
        "2026-03-27T12:00",
        ["2026-03-28T01:30", "2026-03-29T01:30", "2026-03-30T00:30"],
    ),
    # Europe/Berlin 2026-10-25: 03:00 CEST -> 02:00 CET, 02:30 happens twice.
    (
        "Europe/Berlin",
        "30 2 * * *",
        "shift",
        "once",
        "2026-10-23T12:00",
        ["2026-10-24T00:30", "2026-10-25T00:30", "2026-10-26T01:30"],
    ),
    (
        "Europe/Berlin",
        "30 2 * * *",
        "skip",
        "twice",
        "2026-10-23T12:00",
        ["2026-10-24T00:30", "2026-10-25T00:30", "2026-10-25T01:30", "2026-10-26T01:30"],
    ),
    # America/New_York 2026-03-08: 02:00 EST -> 03:00 EDT.
    (
        "America/New_York",
        "30 2 * * *",
        "skip",
        "once",
        "2026-03-06T12:00",
        ["2026-03-07T07:30", "2026-03-09T06:30"],
    ),
    (
        "America/New_York",
        "30 2 * * *",
        "shift",
        "once",
        "2026-03-06T12:00",
        ["2026-03-07T07:30", "2026-03-08T07:30", "2026-03-09T06:30"],
    ),
    # America/New_York 2026-11-01: 02:00 EDT -> 01:00 EST, 01:30 happens twice.
    (
        "America/New_York",
        "30 1 * * *",
        "shift",
        "once",
        "2026-10-30T12:00",
        ["2026-10-31T05:30", "2026-11-01T05:30", "2026-11-02T06:30"],
    ),
    (
        "America/New_York",
        "30 1 * * *",
        "shift",
        "twice",
        "2026-10-30T12:00",
        ["2026-10-31T05:30", "2026-11-01T05:30", "2026-11-01T06:30", "2026-11-02T06:30"],
    ),
]


@pytest.mark.parametrize(("zone", "cron", "missing", "repeated", "start", "expected"), DST_CASES)
async def test_dst_policies(
    zone: str, cron: str, missing: str, repeated: str, start: str, expected: list[str]
) -> None:
    config = {
        "cron": cron,
        "timezone": zone,
        "on_missing_time": missing,
        "on_repeated_time": repeated,
    }
    sink = await run(config, clock=at(start), events=len(expected))
    assert keys(sink) == iso(*expected)


async def test_dst_local_times_in_the_event() -> None:
    config = {"cron": "30 2 * * *", "timezone": "Europe/Berlin", "on_repeated_time": "twice"}
    sink = await run(config, clock=at("2026-03-28T12:00"), events=1)
    assert sink.events[0].data["scheduled_local"] == "2026-03-29T03:30:00+02:00"
    sink = await run(config, clock=at("2026-10-24T12:00"), events=2)
    assert [e.data["scheduled_local"] for e in sink.events] == [
        "2026-10-25T02:30:00+02:00",
        "2026-10-25T02:30:00+01:00",
    ]


@pytest.mark.parametrize(
    ("missing", "repeated", "start", "end", "expected"),
    [
        # Spring: 02:00 and 02:30 shifted land on 03:00 and 03:30 CEST, which fire anyway.
        ("shift", "once", "2026-03-29T00:15", "2026-03-29T01:45", ["00:30", "01:00", "01:30"]),
        ("skip", "once", "2026-03-29T00:15", "2026-03-29T01:45", ["00:30", "01:00", "01:30"]),
        # Autumn: the repeated hour 02:00-03:00 fires once or twice.
        ("shift", "once", "2026-10-24T23:45", "2026-10-25T02:15", ["00:00", "00:30", "02:00"]),
        (
            "shift",
            "twice",
            "2026-10-24T23:45",
            "2026-10-25T02:15",
            ["00:00", "00:30", "01:00", "01:30", "02:00"],
        ),
    ],
)
def test_dst_frequent_expression(
    missing: MissingTime, repeated: RepeatedTime, start: str, end: str, expected: list[str]
) -> None:
    schedule = CronSchedule(
        "*/30 * * * *",
        BERLIN,
        on_missing_time=missing,
        on_repeated_time=repeated,
    )
    found = [s.strftime("%H:%M") for s in slots_between(schedule, at(start), at(end))]
    assert found == expected


def test_wall_instants() -> None:
    gap, fold, plain = (
        datetime(2026, 3, 29, 2, 30),
        datetime(2026, 10, 25, 2, 30),
        datetime(2026, 7, 1, 2, 30),
    )
    assert wall_instants(gap, BERLIN, "shift", "once") == [at("2026-03-29T01:30")]
    assert wall_instants(gap, BERLIN, "skip", "once") == []
    assert wall_instants(fold, BERLIN, "skip", "once") == [at("2026-10-25T00:30")]
    assert wall_instants(fold, BERLIN, "skip", "twice") == [
        at("2026-10-25T00:30"),
        at("2026-10-25T01:30"),
    ]
    assert wall_instants(plain, BERLIN, "skip", "twice") == [at("2026-07-01T00:30")]
    assert wall_instants(datetime(2026, 3, 8, 2, 30), NEW_YORK, "shift", "once") == [
        at("2026-03-08T07:30")
    ]


# -- configuration ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "* * *"}, "cron"),
        ({"cron": "not a cron"}, "cron"),
        ({"cron": "0 0 1 1 * 2030 *"}, "cron"),  # 7 fields
        ({"cron": "H * * * *"}, "cron"),
        ({"cron": "R * * * *"}, "cron"),
        ({"cron": "0 0 30 2 *"}, "cron"),  # never matches
        ({"cron": "@reboot"}, "cron"),
        ({"cron": "* * * * *", "timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"cron": "* * * * *", "timezone": ""}, "timezone"),
        ({"cron": "* * * * *", "every": "5m"}, "every"),
        ({}, "cron"),
        ({"every": "5x"}, "every"),
        ({"every": "0s"}, "every"),
        ({"every": ""}, "every"),
        ({"every": "5m", "jitter": "-1s"}, "jitter"),
        ({"every": "5m", "jitter": "5m"}, "jitter"),
        ({"every": "5m", "catchup_window": "0s"}, "catchup_window"),
        ({"every": "5m", "catchup_window": "1 hour"}, "catchup_window"),
        ({"every": "5m", "catchup": "sometimes"}, "catchup"),
        ({"every": "5m", "overlap": "queue"}, "overlap"),
        ({"every": "5m", "on_missing_time": "later"}, "on_missing_time"),
        ({"every": "5m", "on_repeated_time": "thrice"}, "on_repeated_time"),
        ({"every": "5m", "start_at": "2026-01-01T00:00:00"}, "start_at"),  # naive
        (
            {"every": "5m", "start_at": "2026-01-02T00:00:00Z", "end_at": "2026-01-01T00:00:00Z"},
            "end_at",
        ),
        ({"every": "5m", "color": "red"}, "color"),
    ],
)
def test_invalid_config(config: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        CronConfig.model_validate(config)
    assert [e["loc"] for e in caught.value.errors()] == [(field,)]


def test_valid_config_defaults() -> None:
    config = CronConfig.model_validate({"cron": "*/5 * * * * *"})
    assert config.model_dump() == {
        "cron": "*/5 * * * * *",
        "every": None,
        "timezone": "UTC",
        "start_at": None,
        "end_at": None,
        "jitter": "0s",
        "catchup": "latest",
        "catchup_window": "1h",
        "overlap": "allow",
        "on_missing_time": "shift",
        "on_repeated_time": "once",
    }
    CronConfig.model_validate({"every": "1h30m", "jitter": "1h29m59s", "overlap": "skip"})
    CronConfig.model_validate({"every": "2d", "timezone": "Asia/Kathmandu"})


def test_api_answers_422_naming_config_cron() -> None:
    info = get_provider("cron")
    assert info.source is CronProvider
    assert info.required_secrets == frozenset() and info.optional_secrets == frozenset()
    with pytest.raises(RequestValidationError) as caught:
        validate_config(info, {"cron": "99 * * * *"})
    assert [e["loc"] for e in caught.value.errors()] == [("body", "config", "cron")]


async def test_init_refuses_a_config_that_skipped_validation() -> None:
    with pytest.raises(ProviderConfigError, match="cron"):
        await CronProvider().init(CronConfig.model_construct(cron="nope"), {}, CONTEXT)
    with pytest.raises(ProviderConfigError):
        await CronProvider().init(
            CronConfig.model_construct(every="5m", timezone="Nowhere/Land"), {}, CONTEXT
        )


# -- real time --------------------------------------------------------------------------


async def test_every_second_in_real_time() -> None:
    provider = CronProvider()
    await provider.init(CronConfig(every="1s"), {}, CONTEXT)
    sink = MemorySink()  # no simulated clock: the provider really waits
    started = sink.now()
    asyncio.get_running_loop().call_later(3.5, sink.stop)  # a bound, not a synchronisation
    with pytest.raises(SourceStop):
        await asyncio.wait_for(provider.run(sink), timeout=10)
    assert len(sink.events) in (3, 4), keys(sink)
    for event in sink.events:
        slot = datetime.fromisoformat(event.key)
        assert slot.microsecond == 0 and slot >= started
        late = (datetime.fromisoformat(event.time) - slot).total_seconds()
        assert 0 <= late < 0.3, (event.key, late)
    slots = [datetime.fromisoformat(k) for k in keys(sink)]
    assert [b - a for a, b in zip(slots, slots[1:], strict=False)] == [timedelta(seconds=1)] * (
        len(slots) - 1
    )
    assert sink.cursor == keys(sink)[-1]
