"""Cron lateness: an every-second cron trigger against an every-second Temporal Schedule.

Both fire on the same dev server over the same window. Lateness is a run's start time (as
Temporal's visibility reports it) minus its scheduled slot. One JSON object goes to stdout,
progress to stderr. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from _common import (
    STARTUP_TIMEOUT,
    cpu_delta,
    cpu_seconds,
    isolate_network,
    loadavg,
    log,
    percentiles,
    run_and_report,
    spawn_noop_worker,
    wait_pollers,
)
from _stack import bench_stack
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    WorkflowExecution,
)
from temporalio.common import SearchAttributeKey

CRON = "* * * * * *"  # ours: 6 fields, seconds first = every second
EVERY = timedelta(seconds=1)  # Temporal: its 6-field cron has a year last, not seconds
SETTLE_TIMEOUT = 30.0
SCHEDULED_START = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")


def parse_iso(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def schedule_slot(wf: WorkflowExecution, workflow_id: str) -> datetime | None:
    """The slot a schedule's action was for: the TemporalScheduledStartTime search attribute
    (set by the server), else the ``<workflow-id>-<RFC 3339 time>`` suffix of its ID."""
    slot = wf.typed_search_attributes.get(SCHEDULED_START)
    if slot is not None:
        return slot if slot.tzinfo else slot.replace(tzinfo=UTC)
    with contextlib.suppress(ValueError):
        return parse_iso(wf.id.removeprefix(f"{workflow_id}-"))
    return None


def run_slot(wf: WorkflowExecution) -> datetime | None:
    """Our run's slot: the event key in its ID ``run:<trigger-id>:<ISO slot>``."""
    with contextlib.suppress(ValueError, IndexError):
        return parse_iso(wf.id.split(":", 2)[2])
    return None


def analyse(
    runs: list[tuple[datetime, datetime]], window: tuple[datetime, datetime]
) -> dict[str, Any]:
    """``runs`` as (slot, start time); only slots in ``[start, end)`` count."""
    start, end = window
    inside = [(slot, started) for slot, started in runs if start <= slot < end]
    expected = {start + k * EVERY for k in range(int((end - start) / EVERY))}
    per_slot = Counter(slot for slot, _ in inside)
    late = [(started - slot).total_seconds() for slot, started in inside]
    return {
        "runs_in_window": len(inside),
        "expected_slots": len(expected),
        "lateness_ms": percentiles(late),
        "lateness_mean_ms": round(1000 * sum(late) / len(late), 1) if late else None,
        "lateness_min_ms": round(1000 * min(late), 1) if late else None,
        "missed_slots": len(expected - set(per_slot)),
        "duplicates": sum(n - 1 for n in per_slot.values()),
        "off_grid": len(set(per_slot) - expected),
        "runs_total": len(runs),
    }


async def fired_at(client: Client, run_id: str) -> datetime | None:
    """When our source loop fired the slot: ``data.fired_at`` of the run's input event."""
    with contextlib.suppress(Exception):
        history = await client.get_workflow_handle(run_id).fetch_history()
        attrs = history.events[0].workflow_execution_started_event_attributes
        values = await client.data_converter.decode(attrs.input.payloads)
        return parse_iso(values[0]["data"]["fired_at"])
    return None


async def list_runs(client: Client, query: str, limit: int) -> list[WorkflowExecution]:
    """All matches, once the count stops changing (visibility may trail a little)."""
    deadline, last = time.monotonic() + SETTLE_TIMEOUT, -1
    while time.monotonic() < deadline:
        count = (await client.count_workflows(query)).count
        if count == last:
            break
        last = count
        await asyncio.sleep(1.0)
    return [wf async for wf in client.list_workflows(query, page_size=1000, limit=limit)]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    load_start = loadavg()
    async with bench_stack(namespace=args.namespace, db_file=args.db_file) as stack:
        try:
            queue = f"bench-noop-{uuid.uuid4().hex[:8]}"
            life = args.seconds + 3 * STARTUP_TIMEOUT + 300
            await spawn_noop_worker(
                stack.procs, stack.tmp, stack.address, args.namespace, queue, life
            )
            await wait_pollers(stack.client, queue, stack.procs)
        except Exception:
            stack.procs.dump_logs()
            raise
        pids = {**stack.procs.pids(), **stack.pids}
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as http:
            result = await measure(stack.client, http, stack.api_key, queue, pids, args)
    result["config"].update(persistence=stack.persistence, loadavg_start=load_start)
    result["config"]["loadavg_end"] = loadavg()
    return result


async def measure(
    client: Client,
    http: httpx.AsyncClient,
    api_key: str,
    queue: str,
    pids: dict[str, int],
    args: argparse.Namespace,
) -> dict[str, Any]:
    auth = {"Authorization": f"Bearer {api_key}"}
    suffix = uuid.uuid4().hex[:8]
    schedule_id, action_id = f"bench-schedule-{suffix}", f"bench-scheduled-{suffix}"
    body = {"name": "bench-cron", "provider": "cron", "config": {"cron": CRON}}
    schedule = Schedule(
        action=ScheduleActionStartWorkflow("BenchNoop", id=action_id, task_queue=queue),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=EVERY)]),
        # Like the trigger's default overlap="allow": a run never waits for the previous one.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.ALLOW_ALL),
    )

    async def create_trigger() -> str:
        resp = await http.post("/api/triggers", json=body, headers=auth)
        if resp.status_code != 201:
            raise RuntimeError(f"creating the trigger: {resp.status_code} {resp.text[:300]}")
        return str(resp.json()["id"])

    log("creating the cron trigger and the Temporal Schedule, both every second")
    tid, handle = await asyncio.gather(
        create_trigger(), client.create_schedule(schedule_id, schedule)
    )
    created = time.time()
    start = datetime.fromtimestamp(math.ceil(created) + args.warmup, UTC)
    end = start + timedelta(seconds=args.seconds)
    stop_at = end.timestamp() + args.grace
    log(f"trigger {tid}, schedule {schedule_id}; window {start:%H:%M:%S}-{end:%H:%M:%S} UTC")
    try:
        await asyncio.sleep(max(0.0, start.timestamp() - time.time()))
        cpu0 = cpu_seconds(pids)
        while (left := end.timestamp() - time.time()) > 0:
            await asyncio.sleep(min(left, 10.0))
            log(f"{max(0.0, end.timestamp() - time.time()):.0f}s of the window left")
        cpu1 = cpu_seconds(pids)
        await asyncio.sleep(max(0.0, stop_at - time.time()))
    finally:
        with contextlib.suppress(Exception):
            await handle.delete()
        with contextlib.suppress(httpx.HTTPError):
            await http.delete(f"/api/triggers/{tid}", headers=auth)
    log("schedule and trigger deleted; reading runs from visibility")
    limit = 4 * (args.seconds + args.warmup + int(args.grace)) + 100
    theirs = await list_runs(client, f'TemporalScheduledById="{schedule_id}"', limit)
    ours = await list_runs(client, f'TriggerId="{tid}" AND WorkflowType="RunWorkflow"', limit)
    temporal_runs = [(s, wf.start_time) for wf in theirs if (s := schedule_slot(wf, action_id))]
    our_runs = [(s, wf.start_time) for wf in ours if (s := run_slot(wf))]
    temporal = analyse(temporal_runs, (start, end))
    trigger = analyse(our_runs, (start, end))
    # Where our lateness goes: the source loop waking up (fired_at - slot), then the signal,
    # the trigger workflow's task and the child start (start_time - fired_at).
    in_window = [wf for wf in ours if (s := run_slot(wf)) and start <= s < end]
    fired = await asyncio.gather(*(fired_at(client, wf.id) for wf in in_window))
    wake, to_start = [], []
    for wf, at in zip(in_window, fired, strict=True):
        slot = run_slot(wf)
        if at is not None and slot is not None:
            wake.append((at - slot).total_seconds())
            to_start.append((wf.start_time - at).total_seconds())
    trigger["breakdown_ms"] = {
        "slot_to_fired": percentiles(wake),
        "fired_to_run_start": percentiles(to_start),
    }
    p50 = (trigger["lateness_ms"]["p50"], temporal["lateness_ms"]["p50"])
    p99 = (trigger["lateness_ms"]["p99"], temporal["lateness_ms"]["p99"])
    ratios = {
        "p50_ours_over_temporal": round(p50[0] / p50[1], 3) if None not in p50 and p50[1] else None,
        "p99_ours_over_temporal": round(p99[0] / p99[1], 3) if None not in p99 and p99[1] else None,
    }
    meets = all(r is not None and r <= 1 for r in ratios.values())
    ok = trigger["missed_slots"] == 0 and trigger["duplicates"] == 0 and not trigger["off_grid"]
    return {
        "config": {
            "seconds": args.seconds,
            "warmup_s": args.warmup,
            "window_utc": [start.isoformat(), end.isoformat()],
            "trigger_config": body["config"],
            "temporal_spec": "ScheduleIntervalSpec(every=1s), overlap ALLOW_ALL",
            "cpu_count": os.cpu_count(),
        },
        "temporal_schedule": {"schedule_id": schedule_id, **temporal},
        "cron_trigger": {"trigger_id": tid, **trigger},
        "ratio": {**ratios, "target": "<= 1", "meets_target": meets},
        "cpu_s_in_window": cpu_delta(cpu1, cpu0),
        "checks_ok": ok,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--seconds", type=int, default=60, help="measured window (default 60)")
    p.add_argument("--warmup", type=int, default=3, help="seconds ignored first (default 3)")
    p.add_argument("--grace", type=float, default=5.0, help="seconds kept after the window")
    p.add_argument("--db-file", action="store_true", help="dev server on a SQLite file")
    p.add_argument("--namespace", default="default")
    args = p.parse_args()
    if args.seconds < 1 or args.warmup < 0 or args.grace < 0:
        p.error("--seconds must be >= 1, --warmup and --grace >= 0")
    hard_cap = args.seconds + args.warmup + args.grace + 4 * STARTUP_TIMEOUT + 120
    isolate_network()
    run_and_report(run(args), hard_cap=hard_cap, checked=True)


if __name__ == "__main__":
    main()
