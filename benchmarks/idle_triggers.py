"""Idle triggers: what N enabled, parked cron triggers cost one worker and the Temporal server.

For each N, a fresh stack: N slow cron triggers are created through the API, the script waits
until every trigger workflow is running with its source loop parked (no pending activity),
then measures worker and server RSS and CPU over a quiet minute. One JSON object goes to
stdout, progress to stderr. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import sqlite3
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import (
    STARTUP_TIMEOUT,
    Http1,
    Procs,
    cpu_delta,
    cpu_seconds,
    loadavg,
    log,
    rss_mib,
    run_and_report,
    start_product,
    wait_pollers,
)
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.service import RPCError

from workers.devserver import DevServer

TARGET_RSS_MIB = 1024.0
TARGET_CPU_PCT = 10.0
SAMPLE = 100  # trigger workflows described per progress check
HISTORY_SAMPLE = 20  # histories read to show what a parked trigger waits on
RSS_EVERY = 5.0


def pct(cpu_s: float, wall_s: float) -> float:
    return round(100 * cpu_s / wall_s, 2) if wall_s > 0 else 0.0


def default_config() -> dict[str, Any]:
    """Hourly, first slot an hour from now: nothing fires while the benchmark runs (the
    plain epoch grid would fire every trigger at once on the next full hour)."""
    first = (datetime.now(UTC) + timedelta(hours=1)).replace(second=0, microsecond=0)
    return {"every": "1h", "start_at": first.isoformat()}


def db_statuses(db_file: Path) -> dict[str, int]:
    """Trigger rows by status (a source that failed shows as degraded or failed here)."""
    with contextlib.closing(sqlite3.connect(f"file:{db_file}?mode=ro", uri=True)) as db:
        rows = db.execute("SELECT status, count(*) FROM triggers GROUP BY status").fetchall()
    return {str(status): int(n) for status, n in rows}


class Idle:
    """Which trigger workflows are parked: running, no pending activity or workflow task."""

    def __init__(self, client: Client, workflow_ids: Sequence[str], deadline: float) -> None:
        self.client = client
        self.deadline = deadline  # time.monotonic(); describing stops there
        self.waiting = set(workflow_ids)
        self.history_length: dict[str, int] = {}
        self.not_running: Counter[str] = Counter()

    async def describe(self, workflow_id: str) -> bool:
        try:
            desc = await self.client.get_workflow_handle(workflow_id).describe()
        except RPCError:
            self.not_running["describe_error"] += 1
            return False
        raw = desc.raw_description
        if desc.status is None or desc.status.name != "RUNNING":
            self.not_running[desc.status.name if desc.status else "unknown"] += 1
            return False
        self.history_length[workflow_id] = raw.workflow_execution_info.history_length
        return not raw.pending_activities and not raw.HasField("pending_workflow_task")

    async def check(self, ids: Sequence[str], concurrency: int) -> list[str]:
        """Describe ``ids`` with bounded concurrency; return those parked."""
        queue = list(ids)
        parked: list[str] = []

        async def loop() -> None:
            while queue and time.monotonic() < self.deadline:
                wid = queue.pop()
                if await self.describe(wid):
                    parked.append(wid)

        await asyncio.gather(*(loop() for _ in range(concurrency)))
        return parked

    async def sample_fraction(self) -> float:
        ids = random.sample(sorted(self.waiting), min(SAMPLE, len(self.waiting)))
        return len(await self.check(ids, 8)) / len(ids) if ids else 1.0

    async def sweep(self) -> None:
        """Describe every workflow not yet seen parked; parked ones stay parked (long timer)."""
        self.not_running.clear()
        self.waiting -= set(await self.check(sorted(self.waiting), 8))


async def parked_history(client: Client, workflow_ids: Sequence[str]) -> dict[str, Any]:
    """What a few parked workflows wait on: their last events and the timer they sleep on."""
    last_events: Counter[str] = Counter()
    timers: list[float] = []
    lengths: list[int] = []
    for wid in workflow_ids:
        with contextlib.suppress(RPCError):
            history = await client.get_workflow_handle(wid).fetch_history()
            lengths.append(len(history.events))
            tail = [EventType.Name(e.event_type) for e in history.events[-3:]]
            last_events[" > ".join(t.removeprefix("EVENT_TYPE_") for t in tail)] += 1
            for event in reversed(history.events):
                if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
                    attrs = event.timer_started_event_attributes
                    timers.append(attrs.start_to_fire_timeout.ToTimedelta().total_seconds())
                    break
    return {
        "sampled": len(workflow_ids),
        "history_events": {"min": min(lengths, default=0), "max": max(lengths, default=0)},
        "last_three_events": dict(last_events.most_common(3)),
        "timer_seconds": {"min": min(timers, default=None), "max": max(timers, default=None)},
    }


async def create_triggers(
    api_url: str, api_key: str, n: int, config: dict[str, Any], concurrency: int, deadline: float
) -> tuple[list[str], dict[str, Any]]:
    """POST /api/triggers ``n`` times with ``concurrency`` keep-alive connections."""
    host, port = api_url.removeprefix("http://").rsplit(":", 1)
    headers = {"content-type": "application/json", "Authorization": f"Bearer {api_key}"}
    ids: list[str] = []
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    indices = iter(range(n))

    async def sender() -> None:
        conn = Http1(host, int(port))
        try:
            for i in indices:
                if time.monotonic() > deadline:
                    return
                body = json.dumps({"name": f"idle-{i}", "provider": "cron", "config": config})
                t = time.perf_counter()
                try:
                    status, data = await conn.post("/api/triggers", body.encode(), headers)
                except (OSError, ValueError, asyncio.IncompleteReadError) as exc:
                    statuses[type(exc).__name__] += 1
                    continue
                latencies.append(time.perf_counter() - t)
                statuses[str(status)] += 1
                if status == 201:
                    ids.append(f"trigger:{json.loads(data)['id']}")
        finally:
            conn.close()

    async def progress() -> None:
        while True:
            await asyncio.sleep(10)
            log(f"created {len(ids)}/{n} ({dict(statuses)})")

    t0 = time.monotonic()
    reporter = asyncio.create_task(progress())
    try:
        await asyncio.gather(*(sender() for _ in range(concurrency)))
    finally:
        reporter.cancel()
    took = time.monotonic() - t0
    latencies.sort()
    return ids, {
        "created": len(ids),
        "seconds": round(took, 1),
        "per_s": round(len(ids) / took, 1) if took > 0 else None,
        "http_status": dict(statuses),
        "latency_ms_p50_p99": [
            round(1000 * latencies[int(q * (len(latencies) - 1))], 1) for q in (0.5, 0.99)
        ]
        if latencies
        else None,
    }


async def one_count(n: int, args: argparse.Namespace) -> dict[str, Any]:
    """A fresh stack with ``n`` triggers: create, wait until parked, measure, stop."""
    config = json.loads(args.config) if args.config else default_config()
    out: dict[str, Any] = {"count": n, "trigger_config": config, "loadavg_start": loadavg()}
    with tempfile.TemporaryDirectory(prefix="triggers-bench-") as tmpdir:
        tmp, server = Path(tmpdir), None
        procs = Procs(tmp)
        try:
            db_file = tmp / "temporal.db" if args.db_file else None
            server = DevServer(headless=True, db_filename=db_file, log_file=tmp / "t.log")
            log(f"[N={n}] starting Temporal dev server")
            await server.start()
            api_url, api_key, queue = await start_product(server.address, tmp, procs)
            client = await Client.connect(server.address, namespace=args.namespace)
            await wait_pollers(client, queue, procs)
            pids = procs.pids()
            assert server.pid is not None
            pids["temporal"] = server.pid
            await asyncio.sleep(5)  # let start-up settle before the empty-stack reading
            out["rss_mib_empty"] = {name: rss_mib(pid) for name, pid in pids.items()}
            await measure_into(out, n, args, client, pids, queue, api_url, api_key, tmp, config)
        except Exception:
            procs.dump_logs()
            raise
        finally:
            log(f"[N={n}] stopping")
            stopping = time.monotonic()
            await procs.stop_all()
            if server is not None:
                await server.stop()
            log(f"[N={n}] stopped everything in {time.monotonic() - stopping:.1f}s")
    out["loadavg_end"] = loadavg()
    return out


async def measure_into(
    out: dict[str, Any],
    n: int,
    args: argparse.Namespace,
    client: Client,
    pids: dict[str, int],
    queue: str,
    api_url: str,
    api_key: str,
    tmp: Path,
    config: dict[str, Any],
) -> None:
    t_setup = time.monotonic()
    deadline = t_setup + args.setup_timeout
    cpu0 = cpu_seconds(pids)
    log(f"[N={n}] creating {n} cron triggers via the API with {args.concurrency} connections")
    ids, out["creation"] = await create_triggers(
        api_url, api_key, n, config, args.concurrency, deadline
    )
    cpu1 = cpu_seconds(pids)
    out["creation"]["cpu_s"] = cpu_delta(cpu1, cpu0)
    out["creation"]["rss_mib_after"] = {name: rss_mib(pid) for name, pid in pids.items()}
    log(f"[N={n}] created {len(ids)} in {out['creation']['seconds']}s; waiting until parked")
    idle = Idle(client, ids, deadline)
    running_q = 'WorkflowType="TriggerWorkflow" AND ExecutionStatus="Running" '
    running_q += f'AND TaskQueue="{queue}"'
    t_created, swept, last_log, fraction = time.monotonic(), False, 0.0, 0.0
    while time.monotonic() < deadline:
        # Samples first (cheap), then sweeps of whatever is not parked yet: the describes
        # load the same server, so the first full sweep waits until ~90% look parked.
        fraction = 0.0 if swept else await idle.sample_fraction()
        if swept or fraction >= 0.9:
            await idle.sweep()
            swept = True
            if not idle.waiting:
                break
        if time.monotonic() - last_log > 10:
            running = (await client.count_workflows(running_q)).count
            left = len(idle.waiting) if swept else f"~{round((1 - fraction) * len(ids))}"
            log(f"[N={n}] {running} running, not parked yet: {left}")
            last_log = time.monotonic()
        await asyncio.sleep(max(0.0, min(3 if swept else 10, deadline - time.monotonic())))
    cpu2 = cpu_seconds(pids)
    parked = len(ids) - len(idle.waiting) if swept else None
    all_idle = swept and not idle.waiting and len(ids) == n
    out["settle"] = {
        "seconds": round(time.monotonic() - t_created, 1),
        "setup_seconds_total": round(time.monotonic() - t_setup, 1),
        "parked": parked,
        "not_parked": len(idle.waiting) if swept else None,
        # Before the first full sweep, only a sample's view (SAMPLE random workflows).
        "parked_estimate": None if swept else round(fraction * len(ids)),
        "not_running": dict(idle.not_running),
        "cpu_s": cpu_delta(cpu2, cpu1),
        "rss_mib_peak": {name: peak_mib(pid) for name, pid in pids.items()},
        "trigger_rows_by_status": db_statuses(tmp / "triggers.db"),
    }
    setup_cpu = cpu_delta(cpu2, cpu0)
    out["settle"]["setup_cpu_ms_per_trigger"] = {
        name: round(1000 * cpu / max(1, len(ids)), 1) for name, cpu in setup_cpu.items()
    }
    lengths = sorted(idle.history_length.values())
    if lengths:
        out["settle"]["history_length"] = {"median": lengths[len(lengths) // 2], "max": lengths[-1]}
    if not all_idle:
        log(f"[N={n}] not all idle within {args.setup_timeout}s: no idle measurement")
        out["idle"] = None
        return
    log(f"[N={n}] all {n} parked after {out['settle']['setup_seconds_total']}s; measuring")
    sample = random.sample(ids, min(HISTORY_SAMPLE, len(ids)))
    out["parked_history"] = await parked_history(client, sample)
    await asyncio.sleep(args.quiet)
    before = {w: length for w, length in idle.history_length.items() if w in sample}
    out["idle"] = await measure_idle(pids, args.measure)
    idle.deadline = time.monotonic() + 60  # setup is over; these few describes may run
    await idle.check(sample, 4)  # refreshes history lengths: did anything happen?
    grown = sum(idle.history_length[w] - before[w] for w in before if w in idle.history_length)
    out["idle"]["history_events_added_in_sample"] = grown
    runs = await client.count_workflows(f'WorkflowType="RunWorkflow" AND TaskQueue="{queue}"')
    out["idle"]["runs_started_during_benchmark"] = runs.count
    empty = out.get("rss_mib_empty", {})
    out["idle"]["rss_kib_per_trigger_over_empty"] = {
        name: round(1024 * (out["idle"][name]["rss_mib_last"] - empty[name]) / n, 1)
        for name in pids
        if empty.get(name) is not None and out["idle"][name]["rss_mib_last"] is not None
    }
    worker = out["idle"]["worker"]
    out["meets_target"] = bool(
        worker["rss_mib_max"] is not None
        and worker["rss_mib_max"] < TARGET_RSS_MIB
        and worker["cpu_pct_of_core"] < TARGET_CPU_PCT
    )


def peak_mib(pid: int) -> float | None:
    """VmHWM: the highest RSS the process reached so far (MiB)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return None


async def measure_idle(pids: dict[str, int], seconds: float) -> dict[str, Any]:
    """RSS every few seconds and CPU over ``seconds``, per process."""
    samples: dict[str, list[float]] = {name: [] for name in pids}
    cpu0, t0 = cpu_seconds(pids), time.monotonic()
    while True:
        for name, pid in pids.items():
            if (value := rss_mib(pid)) is not None:
                samples[name].append(value)
        left = seconds - (time.monotonic() - t0)
        if left <= 0:
            break
        await asyncio.sleep(min(RSS_EVERY, left))
    wall = time.monotonic() - t0
    cpu = cpu_delta(cpu_seconds(pids), cpu0)
    return {
        "seconds": round(wall, 1),
        **{
            name: {
                "rss_mib_last": values[-1] if values else None,
                "rss_mib_max": max(values) if values else None,
                "cpu_s": cpu.get(name),
                "cpu_pct_of_core": pct(cpu.get(name, 0.0), wall),
            }
            for name, values in samples.items()
        },
        "bench_cpu_s": cpu.get("bench"),
        "loadavg": loadavg(),
    }


async def run(args: argparse.Namespace, counts: list[int]) -> dict[str, Any]:
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    results = []
    for n in counts:
        results.append(await one_count(n, args))
    return {
        "config": {
            "counts": counts,
            "creation": f"POST /api/triggers, {args.concurrency} keep-alive connections",
            "measure_s": args.measure,
            "setup_timeout_s": args.setup_timeout,
            "persistence": "sqlite-file" if args.db_file else "in-memory",
            "cpu_count": os.cpu_count(),
            "targets": {"worker_rss_mib_below": TARGET_RSS_MIB, "worker_cpu_pct_below": 10.0},
        },
        "results": results,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--counts", default="1000,10000", help="trigger counts (default 1000,10000)")
    p.add_argument("--concurrency", type=int, default=16, help="API connections (default 16)")
    p.add_argument("--measure", type=float, default=60.0, help="idle window (default 60 s)")
    p.add_argument("--quiet", type=float, default=10.0, help="pause before measuring (10 s)")
    p.add_argument("--setup-timeout", type=float, default=600.0, help="create + park (600 s)")
    p.add_argument("--config", help="cron config JSON (default: every 1h, first slot in 1h)")
    p.add_argument("--db-file", action="store_true", help="dev server on a SQLite file")
    p.add_argument("--namespace", default="default")
    args = p.parse_args()
    try:
        counts = [int(c) for c in args.counts.split(",") if c.strip()]
    except ValueError:
        p.error("--counts takes comma-separated integers")
    if not counts or min(counts) < 1 or args.concurrency < 1 or args.measure <= 0:
        p.error("counts, --concurrency and --measure must be positive")
    per_count = args.setup_timeout + args.measure + args.quiet + 3 * STARTUP_TIMEOUT + 120
    run_and_report(run(args, counts), hard_cap=len(counts) * per_count, checked=False)


if __name__ == "__main__":
    main()
