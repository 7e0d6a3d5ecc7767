"""Webhook throughput: signed deliveries -> runs, against bare Temporal workflow starts.

(a) N no-op workflow starts by C callers; (b) N signed GitHub deliveries by C senders, each
of which must become exactly one run. Without --against it runs its own stack on 127.0.0.1.
One JSON object goes to stdout, progress to stderr. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from _common import (
    STARTUP_TIMEOUT,
    Http1,
    cpu_delta,
    cpu_seconds,
    isolate_network,
    log,
    network,
    percentiles,
    run_and_report,
    spawn_noop_worker,
    wait_pollers,
)
from _stack import (
    auth,
    bench_stack,
    create_github_trigger,
    github_delivery,
    history_per_run,
    runs_query,
    trigger_history,
)
from temporalio.client import Client, WorkflowExecution

TARGET = 0.8
POLL_INTERVAL = 0.1
CHECKS = ("duplicate_202s", "run_id_mismatches", "duplicate_runs", "missing_runs")


def rate(count: int, seconds: float | None) -> float | None:
    return round(count / seconds, 1) if seconds and seconds > 0 and count else None


def ratio(b: float | None, a: float | None) -> float | None:
    return round(b / a, 3) if a and b is not None else None


async def fan_out(n: int, c: int, one: Callable[[int], Awaitable[None]]) -> tuple[float, float]:
    """Run ``one(0..n-1)`` on ``c`` concurrent coroutines; (wall-clock t0, seconds taken)."""
    indices = iter(range(n))  # shared, so n calls in all

    async def loop() -> None:
        for i in indices:
            await one(i)

    t0 = time.time()
    await asyncio.gather(*(loop() for _ in range(c)))
    return t0, time.time() - t0


async def settle(
    client: Client, query: str, n: int, timeout: float, t0: float
) -> tuple[list[WorkflowExecution], dict[str, Any]]:
    """Wait for ``n`` matches and ``n`` completed (or timeout); spans use server timestamps."""
    deadline = time.monotonic() + timeout
    for q in (query, query + ' AND ExecutionStatus="Completed"'):
        while (await client.count_workflows(q)).count < n and time.monotonic() < deadline:
            await asyncio.sleep(POLL_INTERVAL)
    wfs = [wf async for wf in client.list_workflows(query, page_size=1000, limit=2 * n + 10)]
    starts = [wf.start_time.timestamp() - t0 for wf in wfs]
    closes = [wf.close_time.timestamp() - t0 for wf in wfs if wf.close_time is not None]
    started_s = round(max(starts), 3) if starts else None
    completed_s = round(max(closes), 3) if closes else None
    return wfs, {
        "started_per_s": rate(len(starts), started_s),
        "completed_per_s": rate(len(closes), completed_s),
        "seconds": {"all_started": started_s, "all_completed": completed_s},
        "completed": len(closes),
    }


async def phase_baseline(
    client: Client, queue: str, n: int, c: int, timeout: float
) -> dict[str, Any]:
    prefix, latencies = f"bench-noop-{uuid.uuid4().hex[:8]}", list[float]()

    async def start(i: int) -> None:
        t = time.perf_counter()
        await client.start_workflow("BenchNoop", id=f"{prefix}-{i}", task_queue=queue)
        latencies.append(time.perf_counter() - t)

    log(f"(a) baseline: starting {n} BenchNoop workflows with {c} callers")
    t0, accepted_s = await fan_out(n, c, start)
    query = f'WorkflowType="BenchNoop" AND TaskQueue="{queue}"'
    _, stats = await settle(client, query, n, timeout, t0)
    stats["seconds"]["accepted"] = round(accepted_s, 3)
    log(f"(a) accepted in {accepted_s:.2f}s; {stats['completed']}/{n} completed")
    return {"accepted_per_s": rate(n, accepted_s), **stats, "latency_ms": percentiles(latencies)}


async def phase_webhooks(
    http: httpx.AsyncClient, client: Client, api_key: str, args: argparse.Namespace
) -> dict[str, Any]:
    n, c = args.events, args.concurrency
    tid, prefix = await create_github_trigger(http, api_key, "bench"), uuid.uuid4().hex[:12]
    sent: dict[str, float] = {}  # run id -> client-side send time
    statuses, flags, latencies = Counter[str](), Counter[str](), list[float]()
    free = [Http1(http.base_url.host, http.base_url.port or 80) for _ in range(c)]

    async def send(i: int) -> None:
        delivery, run_id = f"{prefix}-{i}", f"run:{tid}:{prefix}-{i}"
        raw, headers = github_delivery(delivery, i)
        conn, path = free.pop(), f"/webhooks/github/{tid}"  # c senders, c connections
        sent[run_id], t = time.time(), time.perf_counter()
        try:
            if args.httpx:
                r = await http.post(path, content=raw, headers=headers)
                status, data = r.status_code, r.content
            else:
                status, data = await conn.post(path, raw, headers)
        except (OSError, ValueError, asyncio.IncompleteReadError, httpx.HTTPError) as exc:
            statuses[type(exc).__name__] += 1
            return
        finally:
            free.append(conn)
        latencies.append(time.perf_counter() - t)
        statuses[str(status)] += 1
        if status == 202:
            answer = json.loads(data)
            flags["duplicate_202s"] += bool(answer.get("duplicate"))
            flags["run_id_mismatches"] += answer.get("run_id") != run_id

    log(f"(b) webhooks: sending {n} signed deliveries with {c} senders to trigger {tid}")
    try:
        t0, accepted_s = await fan_out(n, c, send)
        wfs, stats = await settle(client, runs_query(tid), n, args.timeout, t0)
        # Before the delete: disabling adds the trigger workflow's closing events.
        history = history_per_run([await trigger_history(client, tid)], len(wfs))
    finally:
        for conn in free:
            conn.close()
        with contextlib.suppress(httpx.HTTPError):  # its workflow finishes, then completes
            await http.delete(f"/api/triggers/{tid}", headers=auth(api_key))
    stats["seconds"]["accepted"] = round(accepted_s, 3)
    log(f"(b) accepted in {accepted_s:.2f}s; {len(wfs)}/{n} runs, {stats['completed']} completed")
    ids = [wf.id for wf in wfs]
    return {
        "trigger_id": tid,
        "accepted_per_s": rate(statuses["202"], accepted_s),
        "runs_started_per_s": stats.pop("started_per_s"),
        "runs_completed_per_s": stats.pop("completed_per_s"),
        **stats,
        "http_latency_ms": percentiles(latencies),
        "receipt_to_start_ms": percentiles(
            [wf.start_time.timestamp() - sent[wf.id] for wf in wfs if wf.id in sent]
        ),
        "non_202": {k: v for k, v in sorted(statuses.items()) if k != "202"},
        "runs_found": len(ids),
        **{k: flags[k] for k in CHECKS[:2]},
        "duplicate_runs": len(ids) - len(set(ids)),
        "missing_runs": len(set(sent) - set(ids)),
        "unexpected_runs": len(set(ids) - set(sent)),
        "trigger_history_per_run": history,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    n, c, load_start = args.events, args.concurrency, os.getloadavg()
    against = (args.against.rstrip("/"), args.api_key, args.temporal) if args.against else None
    async with bench_stack(namespace=args.namespace, db_file=args.db_file, against=against) as st:
        queue = f"bench-noop-{uuid.uuid4().hex[:8]}"
        life = 4 * args.timeout + 600
        await spawn_noop_worker(st.procs, st.tmp, st.address, args.namespace, queue, life)
        await wait_pollers(st.client, queue, st.procs)
        pids = {**st.procs.pids(), **st.pids}
        cpu0 = cpu_seconds(pids)
        baseline = await phase_baseline(st.client, queue, n, c, args.timeout)
        cpu1 = cpu_seconds(pids)
        limits = httpx.Limits(max_connections=c, max_keepalive_connections=c)
        async with httpx.AsyncClient(base_url=st.api_url, limits=limits, timeout=30) as http:
            webhooks = await phase_webhooks(http, st.client, st.api_key, args)
        cpu2 = cpu_seconds(pids)
        baseline["cpu_s"], webhooks["cpu_s"] = cpu_delta(cpu1, cpu0), cpu_delta(cpu2, cpu1)
        persistence = st.persistence
    ok = webhooks["runs_found"] == n and not webhooks["non_202"]
    ok = ok and not any(webhooks[k] for k in (*CHECKS, "unexpected_runs"))
    started = ratio(webhooks["runs_started_per_s"], baseline["accepted_per_s"])
    completed = ratio(webhooks["runs_completed_per_s"], baseline["completed_per_s"])
    return {
        "config": {
            "n": n,
            "concurrency": c,
            "persistence": persistence,
            "http_client": "httpx" if args.httpx else "raw-http1-keepalive",
            "network": network(),
            "cpu_count": os.cpu_count(),
            "loadavg_1m_start_end": [round(load_start[0], 2), round(os.getloadavg()[0], 2)],
        },
        "baseline": baseline,
        "webhooks": webhooks,
        "checks_ok": ok,
        "ratio": {
            "runs_started_b_over_a": started,
            "runs_completed_b_over_a": completed,
            "target": TARGET,
            "meets_target": bool(started and completed and min(started, completed) >= TARGET),
        },
    }


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--events", type=int, default=1000, help="N per phase (default 1000)")
    p.add_argument("--concurrency", type=int, default=32, help="C per phase (default 32)")
    p.add_argument("--db-file", action="store_true", help="dev server on a SQLite file")
    p.add_argument("--against", metavar="URL", help="use a running API instead of own stack")
    p.add_argument("--api-key", help="API key for --against")
    p.add_argument("--temporal", default="127.0.0.1:7233", help="Temporal address for --against")
    p.add_argument("--namespace", default="default")
    p.add_argument("--timeout", type=float, default=300.0, help="max wait for runs, per phase")
    p.add_argument("--httpx", action="store_true", help="send with httpx (costly client)")
    args = p.parse_args()
    if args.against and not args.api_key:
        p.error("--against needs --api-key")
    if args.events < 1 or args.concurrency < 1:
        p.error("--events and --concurrency must be >= 1")
    if not args.against:
        isolate_network()
    hard_cap = 2 * args.timeout + 3 * STARTUP_TIMEOUT + 300  # sends, starts and waits
    run_and_report(run(args), hard_cap=hard_cap, checked=True)


if __name__ == "__main__":
    main()
