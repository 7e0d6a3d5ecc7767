"""Sustained webhooks: N triggers at a constant delivery rate; do run starts keep up?

First a short baseline: bare ``start_workflow`` of ``RunWorkflow`` at the same total rate.
Then N ``github`` webhook triggers each get ``--rate`` signed deliveries per second for the
duration, sent open-loop (each at its due time, whatever earlier answers do). Per minute:
deliveries accepted (202) and runs started (Temporal's start time), then the backlog's
drain. One JSON object goes to stdout, progress to stderr. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from functools import partial
from typing import Any

import httpx
from _common import (
    STARTUP_TIMEOUT,
    Http1,
    cpu_delta,
    cpu_seconds,
    isolate_network,
    loadavg,
    log,
    network,
    run_and_report,
    until,
)
from _openloop import Call, latencies, open_loop, per_minute, schedule
from _stack import (
    Stack,
    bench_stack,
    create_github_trigger,
    github_delivery,
    history_per_run,
    run_starts,
    runs_query,
    trigger_history,
    trigger_status,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy

from triggers.contracts.names import RUN_WORKFLOW_TYPE, TRIGGER_ID
from triggers.core.events import Event

TARGET_RATIO = 0.95  # runs started / accepted, every minute after the first
TARGET_P99_S = 5.0  # receipt (request sent) -> run start
REQUEST_TIMEOUT = 30.0
POLL_INTERVAL = 0.5
STATUS_FIELDS = (
    *("pending", "events_received", "runs_started", "duplicates"),
    *("continued_as_new", "history_length"),
)


async def wait_counts(stack: Stack, expected: dict[str, int], timeout: float) -> bool:
    """Poll visibility until each query counts at least its number; False on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        counts = [(await stack.client.count_workflows(q)).count for q in expected]
        if all(c >= n for c, n in zip(counts, expected.values(), strict=True)):
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(POLL_INTERVAL)


async def statuses(http: httpx.AsyncClient, stack: Stack, tids: list[str]) -> dict[str, Any]:
    found = await asyncio.gather(*(trigger_status(http, stack.api_key, t) for t in tids))
    return {
        t: {k: f.get(k) for k in ("error", *STATUS_FIELDS) if k in f}
        for t, f in zip(tids, found, strict=True)
    }


async def sample_status(
    http: httpx.AsyncClient, stack: Stack, tids: list[str], every: float, out: list[Any]
) -> None:
    """Every ``every`` seconds, the triggers' pending events and continue-as-new count,
    summed (``None`` when a status did not answer): is a backlog building up?"""
    while True:
        await asyncio.sleep(every)
        found = (await statuses(http, stack, tids)).values()
        sums = {k: sum(f.get(k, 0) for f in found) for k in ("pending", "continued_as_new")}
        out.append({"at": time.time(), **(sums if all("error" not in f for f in found) else {})})


async def phase_baseline(stack: Stack, args: argparse.Namespace) -> dict[str, Any]:
    """Bare ``start_workflow`` of the run workflow type, open-loop at the total rate, on the
    product's task queue and worker: what Temporal alone does at this rate."""
    assert stack.queue is not None
    bid, total_rate = f"bench-baseline-{uuid.uuid4().hex[:8]}", args.triggers * args.rate
    n = round(total_rate * args.baseline_seconds)
    calls = [Call(key=f"run:{bid}:{i}", n=i, due=i / total_rate) for i in range(n)]
    errors = Counter[str]()
    attrs = TypedSearchAttributes([SearchAttributePair(TRIGGER_ID, bid)])

    async def fire(call: Call) -> None:
        key = f"{bid}-{call.n}"
        data = {"ref": "refs/heads/main", "repository": {"full_name": "acme/bench"}, "i": call.n}
        now = datetime.now(UTC).isoformat()
        event = Event(id=key, key=key, source="bench", type="push", time=now, data=data)
        call.sent = time.time()
        try:
            start = stack.client.start_workflow(
                RUN_WORKFLOW_TYPE,
                event,
                id=call.key,
                task_queue=stack.queue or "",
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                search_attributes=attrs,
            )
            await asyncio.wait_for(start, REQUEST_TIMEOUT)
        except Exception as exc:  # counted by type; the schedule goes on
            errors[type(exc).__name__] += 1
            return
        call.answered, call.ok = time.time(), True

    log(f"baseline: {n} starts of {RUN_WORKFLOW_TYPE} at {total_rate:g}/s")
    t0, tasks, sched = await open_loop(calls, fire)
    await asyncio.gather(*tasks)
    accepted = [c.key for c in calls if c.ok]
    query = runs_query(bid)
    # Let the runs finish, so the webhook phase starts on a quiet worker.
    done = await wait_counts(
        stack, {f'{query} AND ExecutionStatus="Completed"': len(accepted)}, args.drain_timeout
    )
    starts = await run_starts(stack.client, query, accepted, limit=2 * n + 10)
    log(f"baseline: {len(accepted)}/{n} accepted, {len(starts)} started")
    return {
        "workflow_type": RUN_WORKFLOW_TYPE,
        "rate_per_s": total_rate,
        "calls": n,
        "accepted": len(accepted),
        "errors": dict(errors),
        "runs_found": len(starts),
        "all_completed": done,
        "per_minute": per_minute(calls, starts, t0, args.bucket_seconds, args.baseline_seconds),
        "latency": latencies(calls, starts),
        **sched,
    }


async def phase_webhooks(
    stack: Stack, http: httpx.AsyncClient, args: argparse.Namespace
) -> dict[str, Any]:
    tids = [
        await create_github_trigger(http, stack.api_key, f"sustained-{k}")
        for k in range(args.triggers)
    ]

    async def running(wid: str) -> bool:
        desc = await stack.client.get_workflow_handle(wid).describe()
        return desc.status is not None and desc.status.name == "RUNNING"

    for tid in tids:
        await until(partial(running, f"trigger:{tid}"), f"trigger:{tid} running", stack.procs)
    prefix = uuid.uuid4().hex[:12]
    calls = [
        Call(key=f"run:{tids[k]}:{prefix}-{k}-{j}", n=j, due=due)
        for due, k, j in schedule(args.triggers, args.rate, args.seconds)
    ]
    answers, flags = Counter[str](), Counter[str]()
    idle: list[Http1] = []
    opened = 0

    async def fire(call: Call) -> None:
        nonlocal opened
        _, tid, delivery = call.key.split(":", 2)
        raw, headers = github_delivery(delivery, call.n)
        if not idle:
            idle.append(Http1(http.base_url.host, http.base_url.port or 80))
            opened += 1
        conn = idle.pop()
        call.sent = time.time()
        try:
            post = conn.post(f"/webhooks/github/{tid}", raw, headers)
            status, data = await asyncio.wait_for(post, REQUEST_TIMEOUT)
        except (OSError, ValueError, asyncio.IncompleteReadError, TimeoutError) as exc:
            answers[type(exc).__name__] += 1  # the connection closed itself; reused, it reopens
            return
        finally:
            idle.append(conn)
        call.answered = time.time()
        answers[str(status)] += 1
        if status == 202:
            answer = json.loads(data)
            call.ok = True
            flags["duplicate_202s"] += bool(answer.get("duplicate"))
            flags["run_id_mismatches"] += answer.get("run_id") != call.key

    log(f"webhooks: {len(calls)} deliveries to {len(tids)} triggers at {args.rate:g}/s each")
    samples: list[dict[str, Any]] = []
    every = min(args.bucket_seconds, 60.0)
    sampler = asyncio.create_task(sample_status(http, stack, tids, every, samples))
    try:
        t0, tasks, sched = await open_loop(calls, fire)
    finally:
        sampler.cancel()
    send_end = t0 + args.seconds
    at_send_end = await statuses(http, stack, tids)
    await asyncio.gather(*tasks)
    for conn in idle:
        conn.close()
    accepted = {t: [c.key for c in calls if c.ok and c.key.startswith(f"run:{t}:")] for t in tids}
    log(f"webhooks: sent; {sum(map(len, accepted.values()))} accepted; waiting for the backlog")
    drained = await wait_counts(
        stack, {runs_query(t): len(keys) for t, keys in accepted.items()}, args.drain_timeout
    )
    drain_s = round(time.time() - send_end, 1)
    starts: dict[str, datetime] = {}
    for t, keys in accepted.items():
        starts |= await run_starts(stack.client, runs_query(t), keys, limit=2 * len(keys) + 10)
    histories = [await trigger_history(stack.client, t) for t in tids]
    expected = {k for keys in accepted.values() for k in keys}
    last_start = max((v.timestamp() for v in starts.values()), default=send_end)
    log(f"webhooks: {len(expected & set(starts))}/{len(expected)} runs found")
    return {
        "trigger_ids": tids,
        "deliveries": len(calls),
        "accepted": len(expected),
        "http_status": dict(sorted(answers.items())),
        "non_202": {k: v for k, v in sorted(answers.items()) if k != "202"},
        "per_minute": per_minute(calls, starts, t0, args.bucket_seconds, args.seconds),
        "latency": latencies(calls, starts),
        **sched,
        "connections_opened": opened,
        "status_samples": [
            {"at_s": round(x.pop("at") - t0, 1), "pending": None, **x} for x in samples
        ],
        "pending_at_send_end": {t: s.get("pending") for t, s in at_send_end.items()},
        "drain": {
            "drained": drained,
            "seconds_after_send_end": drain_s,
            "last_run_start_after_send_end_s": round(last_start - send_end, 2),
        },
        "status_after_drain": await statuses(http, stack, tids),
        "runs_found": len(expected & set(starts)),
        "missing_runs": len(expected - set(starts)),
        "runs_without_202": len(set(starts) - expected),
        **{k: flags[k] for k in ("duplicate_202s", "run_id_mismatches")},
        "trigger_history_per_run": history_per_run(histories, len(starts)),
    }


def target(webhooks: dict[str, Any]) -> dict[str, Any]:
    checked = [row["ratio"] for row in webhooks["per_minute"] if row["checked"]]
    worst = min((r if r is not None else 0.0 for r in checked), default=None)
    p99 = webhooks["latency"]["from_sent_ms"]["p99"]
    ratio_ok = worst is not None and worst >= TARGET_RATIO
    p99_ok = p99 is not None and p99 <= TARGET_P99_S * 1000
    return {
        "ratio_min": TARGET_RATIO,
        "p99_max_ms": TARGET_P99_S * 1000,
        "minutes_checked": len(checked),
        "worst_minute_ratio": worst,
        "p99_receipt_to_run_start_ms": p99,
        "ratio_ok": ratio_ok,
        "p99_ok": p99_ok,
        "meets_target": ratio_ok and p99_ok,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    load_start = loadavg()[0]
    async with bench_stack(namespace=args.namespace, db_file=args.db_file) as stack:
        pids = {**stack.procs.pids(), **stack.pids}
        cpu0 = cpu_seconds(pids)
        baseline = await phase_baseline(stack, args) if args.baseline_seconds > 0 else None
        cpu1 = cpu_seconds(pids)
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as http:
            webhooks = await phase_webhooks(stack, http, args)
        cpu2 = cpu_seconds(pids)
        if baseline is not None:
            baseline["cpu_s"] = cpu_delta(cpu1, cpu0)
        webhooks["cpu_s"] = cpu_delta(cpu2, cpu1)
        persistence = stack.persistence
    checks_ok = webhooks["drain"]["drained"] and not webhooks["non_202"]
    checks_ok = checks_ok and not any(
        webhooks[k] for k in ("missing_runs", "duplicate_202s", "run_id_mismatches")
    )
    return {
        "config": {
            "triggers": args.triggers,
            "rate_per_trigger": args.rate,
            "seconds": args.seconds,
            "baseline_seconds": args.baseline_seconds,
            "bucket_seconds": args.bucket_seconds,
            "receipt": "request sent (from_sent_ms); from_answer_ms: 202 received",
            "persistence": persistence,
            "network": network(),
            "cpu_count": os.cpu_count(),
            "loadavg_1m_start_end": [load_start, loadavg()[0]],
        },
        "baseline": baseline,
        "webhooks": webhooks,
        "checks_ok": checks_ok,
        "target": target(webhooks),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--triggers", type=int, default=5, help="webhook triggers (default 5)")
    p.add_argument("--rate", type=float, default=4.0, help="deliveries/s per trigger (4)")
    span = p.add_mutually_exclusive_group()
    span.add_argument("--minutes", type=float, help="send phase length (default 10)")
    span.add_argument("--seconds", type=float, help="send phase length in seconds")
    p.add_argument("--baseline-seconds", type=float, default=60.0, help="0 skips it (60)")
    p.add_argument("--bucket-seconds", type=float, default=60.0, help="table rows (60)")
    p.add_argument("--drain-timeout", type=float, default=300.0, help="max backlog wait")
    p.add_argument("--db-file", action="store_true", help="dev server on a SQLite file")
    p.add_argument("--namespace", default="default")
    args = p.parse_args()
    args.seconds = args.seconds if args.seconds is not None else 60 * (args.minutes or 10)
    if args.triggers < 1 or args.rate <= 0 or args.seconds <= 0 or args.bucket_seconds <= 0:
        p.error("--triggers, --rate, the duration and --bucket-seconds must be positive")
    isolate_network()
    hard_cap = args.baseline_seconds + args.seconds + 2 * args.drain_timeout
    run_and_report(run(args), hard_cap=hard_cap + 3 * STARTUP_TIMEOUT + 600, checked=True)


if __name__ == "__main__":
    main()
