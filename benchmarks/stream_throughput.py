"""Stream throughput: messages on Kafka and Redis Streams -> runs started, through a stream
trigger, against a raw consumer that starts one workflow per message.

Per broker (each of the script's own, on 127.0.0.1): (a) raw: a consumer group that reads
``BATCH`` messages, calls bare ``client.start_workflow`` for each (a no-op workflow on a
no-op worker, REJECT_DUPLICATE ids from the message key) and acks after they returned;
(b) product: a stream trigger created through the API on a new stream. Both first drain a
pre-published backlog of ``--messages``, then (``--rate`` > 0) get an open-loop rate for
``--seconds``. One JSON object goes to stdout, progress to stderr. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from _brokers import (
    allow_loopback,
    create_stream_trigger,
    make_broker,
    product_group,
)
from _common import (
    CLK_TCK,
    STARTUP_TIMEOUT,
    cpu_delta,
    cpu_seconds,
    isolate_network,
    loadavg,
    log,
    network,
    percentiles,
    run_and_report,
    spawn_noop_worker,
    wait_pollers,
)
from _stack import (
    Stack,
    auth,
    bench_stack,
    history_per_run,
    run_starts,
    runs_query,
    trigger_history,
    trigger_status,
)
from temporalio.client import Client, WorkflowExecution
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from triggers.core.events import run_workflow_id

TARGET = 0.8
POLL = 0.2


def rate(count: int, seconds: float | None) -> float | None:
    return round(count / seconds, 1) if seconds and seconds > 0 and count else None


def ratio(b: float | None, a: float | None) -> float | None:
    return round(b / a, 3) if a and b is not None else None


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of ``pid``'s threads, summed by thread name (Linux /proc): the Python
    main thread is the process name; the Temporal core's are ``tokio-runtime-w``."""
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, IndexError, ValueError):
            raw = (task / "stat").read_text()
            name = raw[raw.index("(") + 1 : raw.rindex(")")]
            fields = raw.rsplit(")", 1)[1].split()
            out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def thread_delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    delta = {k: round(v - before.get(k, 0.0), 2) for k, v in after.items()}
    return dict(sorted(((k, v) for k, v in delta.items() if v > 0), key=lambda kv: -kv[1]))


async def wait_count(check: Callable[[], Awaitable[int]], n: int, timeout: float) -> int:
    deadline, found = time.monotonic() + timeout, 0
    while time.monotonic() < deadline:
        found = await check()
        if found >= n:
            break
        await asyncio.sleep(POLL)
    return found


# Below the stream runtime's default pause mark (1,000 pending events): until then the
# product's intake is not held back by backpressure.
BEFORE_PAUSE = 900


async def watch_acked(broker: Any, stream: str, group: str, n: int, t0: float) -> list[float]:
    """Seconds from ``t0`` until ``group`` acked min(n, BEFORE_PAUSE) and then ``n``
    messages (polled every 0.1 s): on the product side, when the events were persisted in
    the trigger workflow."""
    marks, reached = sorted({min(n, BEFORE_PAUSE), n}), list[float]()
    while len(reached) < len(marks):
        with contextlib.suppress(Exception):
            acked = await broker.acked(stream, group)
            while len(reached) < len(marks) and acked >= marks[len(reached)]:
                reached.append(round(time.time() - t0, 3))
        await asyncio.sleep(0.1)
    return reached


async def acked_stats(watch: asyncio.Task[list[float]], n: int) -> dict[str, Any]:
    try:
        reached = await asyncio.wait_for(watch, 5)
    except TimeoutError:
        return {"acked_per_s": None, "seconds_to_all_acked": None}
    first = min(n, BEFORE_PAUSE)
    return {
        "acked_per_s": rate(n, reached[-1]),
        "seconds_to_all_acked": reached[-1],
        f"acked_per_s_first_{first}": rate(first, reached[0]),
    }


def spans(starts: dict[str, float], closes: list[float], t0: float, n: int) -> dict[str, Any]:
    """Rates from ``t0`` (the consumer's start) and from the first run's start."""
    if not starts:
        return {"runs_started": 0}
    first, last = min(starts.values()), max(starts.values())
    out: dict[str, Any] = {
        "runs_started": len(starts),
        "started_per_s": rate(len(starts), last - t0),
        "started_per_s_after_first": rate(len(starts) - 1, last - first),
        "seconds": {
            "to_first_start": round(first - t0, 3),
            "to_all_started": round(last - t0, 3),
        },
    }
    if closes:
        out["completed_per_s"] = rate(len(closes), max(closes) - t0)
        out["seconds"]["to_all_completed"] = round(max(closes) - t0, 3)
        out["completed"] = len(closes)
    return out


def sustained_stats(
    published: dict[str, float], starts: dict[str, float], send_end: float
) -> dict[str, Any]:
    found = [(k, s) for k, s in starts.items() if k in published]
    return {
        "published": len(published),
        "runs_started": len(found),
        "publish_to_run_start_ms": percentiles([s - published[k] for k, s in found]),
        "last_run_start_after_last_publish_s": (
            round(max(s for _, s in found) - send_end, 3) if found else None
        ),
    }


async def open_loop_publish(
    broker: Any, stream: str, rate_per_s: float, seconds: float, published: dict[str, float]
) -> tuple[float, dict[str, Any]]:
    """Publish at ``rate_per_s`` for ``seconds``, each message in its own task at its due
    time (open loop); returns (time of the last publish, the schedule's lag)."""
    total, loop = round(rate_per_s * seconds), asyncio.get_running_loop()
    start, lags, tasks = loop.time() + 0.1, list[float](), set[asyncio.Task[None]]()
    for i in range(total):
        delay = start + i / rate_per_s - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        lags.append(max(0.0, loop.time() - start - i / rate_per_s))
        task = asyncio.create_task(broker.publish_one(stream, 1_000_000 + i, published))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)
    return time.time(), {"send_lag_ms": percentiles(lags)}


# -- (a) the raw consumer ------------------------------------------------------------------


async def phase_raw(
    broker: Any, client: Client, queue: str, args: argparse.Namespace, cpu: Any
) -> dict[str, Any]:
    n, prefix = args.messages, f"raw-{broker.name}-{uuid.uuid4().hex[:6]}"
    stream, published = await broker.new_stream(), dict[str, float]()
    log(f"(a) raw {broker.name}: publishing {n} messages to {stream}")
    await broker.publish(stream, n, 0, published)
    accepted, duplicates, stop = Counter[str](), Counter[str](), asyncio.Event()
    receives: dict[str, float] = {}

    async def start_one(key: str) -> None:
        try:
            await client.start_workflow(
                "BenchNoop",
                {"key": key, "kind": "order"},
                id=f"{prefix}:{key}",
                task_queue=queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
        except WorkflowAlreadyStartedError:
            duplicates["n"] += 1
        accepted["n"] += 1

    before = cpu()
    t0 = time.time()
    consumer = asyncio.create_task(broker.raw_consume(stream, start_one, stop, receives))
    watch = asyncio.create_task(watch_acked(broker, stream, _raw_group(broker, stream), n, t0))
    query = f'WorkflowType="BenchNoop" AND TaskQueue="{queue}"'

    async def listed(extra: str = "") -> dict[str, WorkflowExecution]:
        return {
            wf.id: wf
            async for wf in client.list_workflows(query + extra, page_size=1000)
            if wf.id.startswith(prefix)
        }

    async def acc() -> int:
        if consumer.done():
            consumer.result()
        return accepted["n"]

    try:
        await wait_count(acc, n, args.timeout)
        accepted_s = time.time() - t0
        done = ' AND ExecutionStatus="Completed"'
        await wait_count(lambda: _len(listed(done)), n, args.timeout)
        after = cpu()
        wfs = await listed()
        result = spans(
            {k: w.start_time.timestamp() for k, w in wfs.items()},
            [w.close_time.timestamp() for w in wfs.values() if w.close_time],
            t0,
            n,
        )
        result["accepted_per_s"] = rate(accepted["n"], accepted_s)
        result.update(await acked_stats(watch, n))
        result["duplicates"] = duplicates["n"]
        result["receives"] = dict(receives)
        log(f"(a) raw {broker.name}: {result}")
        result["cpu_s"] = cpu_delta(after[0], before[0])
        result["worker_threads_cpu_s"] = thread_delta(after[1], before[1])
        if args.rate > 0:
            result["sustained"] = await raw_sustained(broker, stream, prefix, listed, args)
    finally:
        watch.cancel()
        stop.set()
        await asyncio.wait({consumer}, timeout=10)
    total = n + (round(args.rate * args.seconds) if args.rate > 0 else 0)
    result["unacked_at_end"] = await broker.unacked(stream, _raw_group(broker, stream), total)
    return result


async def _len(found: Awaitable[dict[str, Any]]) -> int:
    return len(await found)


def _raw_group(broker: Any, stream: str) -> str:
    return "raw" if broker.name == "redis" else f"raw-{stream}"


async def raw_sustained(
    broker: Any,
    stream: str,
    prefix: str,
    listed: Callable[[], Awaitable[dict[str, WorkflowExecution]]],
    args: argparse.Namespace,
) -> dict[str, Any]:
    published: dict[str, float] = {}
    log(f"(a) raw {broker.name}: {args.rate}/s for {args.seconds}s")
    send_end, sched = await open_loop_publish(broker, stream, args.rate, args.seconds, published)
    want = {f"{prefix}:{k}": t for k, t in published.items()}

    async def started() -> int:
        return len(set(await listed()) & set(want))

    await wait_count(started, len(want), args.timeout)
    wfs = await listed()
    starts = {w: wfs[w].start_time.timestamp() for w in want if w in wfs}
    return {**sched, **sustained_stats(want, starts, send_end)}


# -- (b) the product -----------------------------------------------------------------------


async def phase_product(
    broker: Any, st: Stack, http: httpx.AsyncClient, args: argparse.Namespace, cpu: Any
) -> dict[str, Any]:
    n, client = args.messages, st.client
    stream, published = await broker.new_stream(), dict[str, float]()
    log(f"(b) product {broker.name}: publishing {n} messages to {stream}")
    await broker.publish(stream, n, 0, published)
    before = cpu()
    t0 = time.time()
    tid = await create_stream_trigger(http, st.api_key, broker, stream)
    query = runs_query(tid)
    watch = asyncio.create_task(watch_acked(broker, stream, product_group(broker, tid), n, t0))
    try:

        async def count(extra: str = "") -> int:
            return (await client.count_workflows(query + extra)).count

        await wait_count(count, n, args.timeout)
        await wait_count(lambda: count(' AND ExecutionStatus="Completed"'), n, args.timeout)
        after = cpu()
        expected = {run_workflow_id(tid, k): t for k, t in published.items()}
        wfs = [wf async for wf in client.list_workflows(query, page_size=1000, limit=4 * n)]
        by_id = {w.id: w for w in wfs}
        mine = [by_id[w] for w in expected if w in by_id]
        result = spans(
            {w.id: w.start_time.timestamp() for w in mine},
            [w.close_time.timestamp() for w in mine if w.close_time],
            t0,
            n,
        )
        result.update(await acked_stats(watch, n))
        result["missing_runs"] = len(set(expected) - set(by_id))
        result["unexpected_runs"] = len(set(by_id) - set(expected))
        log(f"(b) product {broker.name}: {result}")
        result["cpu_s"] = cpu_delta(after[0], before[0])
        result["worker_threads_cpu_s"] = thread_delta(after[1], before[1])
        result["trigger_history_per_run"] = history_per_run(
            [await trigger_history(client, tid)], result["runs_started"]
        )
        if args.rate > 0:
            result["sustained"] = await product_sustained(broker, st, stream, tid, args)
        status = await trigger_status(http, st.api_key, tid)
        result["status"] = {
            k: status.get(k)
            for k in ("stream", "continued_as_new", "runs_started", "pending", "duplicates")
        }
        total = n + (round(args.rate * args.seconds) if args.rate > 0 else 0)
        result["unacked_at_end"] = await broker.unacked(stream, product_group(broker, tid), total)
    finally:
        watch.cancel()
        with contextlib.suppress(httpx.HTTPError):
            await http.delete(f"/api/triggers/{tid}", headers=auth(st.api_key))
    return result


async def product_sustained(
    broker: Any, st: Stack, stream: str, tid: str, args: argparse.Namespace
) -> dict[str, Any]:
    published: dict[str, float] = {}
    log(f"(b) product {broker.name}: {args.rate}/s for {args.seconds}s")
    send_end, sched = await open_loop_publish(broker, stream, args.rate, args.seconds, published)
    want = {run_workflow_id(tid, k): t for k, t in published.items()}
    query = runs_query(tid)

    async def started() -> int:
        return int((await st.client.count_workflows(query)).count) - int(args.messages)

    await wait_count(started, len(want), args.timeout)
    found = await run_starts(st.client, query, want, limit=4 * (args.messages + len(want)))
    starts = {w: t.timestamp() for w, t in found.items() if w in want}
    return {**sched, **sustained_stats(want, starts, send_end)}


# -- the run -------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, Any]:
    load_start = loadavg()
    profile = None
    if args.profile_worker:
        profile = {"worker": ["-m", "cProfile", "-o", str(Path(args.profile_worker).resolve())]}
    async with bench_stack(
        namespace=args.namespace, db_file=args.db_file, python_args=profile
    ) as st:
        queue = f"bench-noop-{uuid.uuid4().hex[:8]}"
        await spawn_noop_worker(st.procs, st.tmp, st.address, args.namespace, queue, 7200)
        await wait_pollers(st.client, queue, st.procs)
        brokers = [make_broker(name, args.partitions) for name in args.brokers]
        results: dict[str, Any] = {}
        try:
            for broker in brokers:
                await broker.start(st.procs)
            pids = {**st.procs.pids(), **st.pids}
            worker_pid = pids["worker"]

            def cpu() -> tuple[dict[str, float], dict[str, float]]:
                return cpu_seconds(pids), thread_cpu(worker_pid)

            async with httpx.AsyncClient(base_url=st.api_url, timeout=30) as http:
                await allow_loopback(http, st.api_key)
                for broker in brokers:
                    raw = await phase_raw(broker, st.client, queue, args, cpu)
                    product = await phase_product(broker, st, http, args, cpu)
                    results[broker.name] = summarize(raw, product, args)
        finally:
            for broker in brokers:
                await broker.close()
        persistence = st.persistence
    checks = all(r["checks_ok"] for r in results.values())
    return {
        "config": {
            "messages": args.messages,
            "batch": 100,
            "sustained": {"rate_per_s": args.rate, "seconds": args.seconds} if args.rate else None,
            "kafka_partitions": args.partitions,
            "persistence": persistence,
            "network": network(),
            "cpu_count": os.cpu_count(),
            "loadavg_start": load_start,
            "loadavg_end": loadavg(),
        },
        **results,
        "checks_ok": checks,
    }


def summarize(
    raw: dict[str, Any], product: dict[str, Any], args: argparse.Namespace
) -> dict[str, Any]:
    n = args.messages
    ok = product.get("runs_started") == n and not product.get("missing_runs")
    ok = ok and not product.get("unexpected_runs") and not product.get("unacked_at_end")
    sus = product.get("sustained")
    if sus:
        ok = ok and sus["runs_started"] == sus["published"]
    started = ratio(product.get("started_per_s"), raw.get("started_per_s"))
    return {
        "raw": raw,
        "product": product,
        "ratio": {
            "started_per_s": started,
            "started_per_s_after_first": ratio(
                product.get("started_per_s_after_first"), raw.get("started_per_s_after_first")
            ),
            "completed_per_s": ratio(product.get("completed_per_s"), raw.get("completed_per_s")),
            "target": TARGET,
            "meets_target": bool(started and started >= TARGET),
        },
        "checks_ok": bool(ok),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--brokers", default="redis,kafka", help="comma-separated: redis,kafka")
    p.add_argument("--messages", type=int, default=2000, help="backlog per phase (2000)")
    p.add_argument("--rate", type=float, default=0.0, help="then this many msg/s (0: no)")
    p.add_argument("--seconds", type=float, default=30.0, help="for this long (30)")
    p.add_argument("--partitions", type=int, default=1, help="Kafka topic partitions (1)")
    p.add_argument("--db-file", action="store_true", help="dev server on a SQLite file")
    p.add_argument("--namespace", default="default")
    p.add_argument("--timeout", type=float, default=300.0, help="max wait per phase")
    p.add_argument("--profile-worker", metavar="FILE", help="cProfile the product worker")
    args = p.parse_args()
    args.brokers = [b.strip() for b in args.brokers.split(",") if b.strip()]
    if not args.brokers or set(args.brokers) - {"redis", "kafka"}:
        p.error("--brokers takes redis and/or kafka")
    if args.messages < 1:
        p.error("--messages must be >= 1")
    isolate_network()
    phases = len(args.brokers) * 2
    hard_cap = phases * (3 * args.timeout + args.seconds) + 3 * STARTUP_TIMEOUT + 300
    run_and_report(run(args), hard_cap=hard_cap, checked=True)


if __name__ == "__main__":
    main()
