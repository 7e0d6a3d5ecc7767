"""Stream reconnects: one stream trigger fed a slow constant rate for a long time.

Issue 10, guarantee 4: a stream source reconnects only on an error, a config change or a
continue-as-new it really needs; with 1 event/s for 30 minutes, reconnects <= 1. One
Redis Streams (or Kafka) trigger is created through the API on a broker of the script's
own, fed ``--rate`` messages per second for ``--minutes``, and its status is sampled every
``--sample-seconds``. One JSON object goes to stdout, progress to stderr. See
benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
from typing import Any

import httpx
from _brokers import (
    allow_loopback,
    create_stream_trigger,
    make_broker,
    product_group,
)
from _common import (
    STARTUP_TIMEOUT,
    cpu_delta,
    cpu_seconds,
    isolate_network,
    loadavg,
    log,
    network,
    percentiles,
    rss_mib,
    run_and_report,
)
from _stack import auth, bench_stack, run_starts, runs_query, trigger_history, trigger_status

from triggers.core.events import run_workflow_id

TARGET_RECONNECTS = 1


def sample(
    status: dict[str, Any], t: float, published: int, pids: dict[str, int]
) -> dict[str, Any]:
    stream = status.get("stream") or {}
    return {
        "t_s": round(t, 1),
        "published": published,
        "runs_started": status.get("runs_started"),
        "pending": status.get("pending"),
        "state": stream.get("state"),
        "connections": stream.get("connections"),
        "reconnects": stream.get("reconnects"),
        "continued_as_new": status.get("continued_as_new"),
        "history_length": status.get("history_length"),
        "history_size": status.get("history_size"),
        "worker_rss_mib": rss_mib(pids["worker"]),
        **({"error": status["error"]} if "error" in status else {}),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    load_start, seconds = loadavg(), args.minutes * 60 if args.seconds is None else args.seconds
    total = max(1, round(seconds * args.rate))
    async with bench_stack(namespace=args.namespace, db_file=args.db_file) as st:
        broker = make_broker(args.broker)
        await broker.start(st.procs)
        pids = {**st.procs.pids(), **st.pids}
        try:
            async with httpx.AsyncClient(base_url=st.api_url, timeout=30) as http:
                await allow_loopback(http, st.api_key)
                stream = await broker.new_stream()
                tid = await create_stream_trigger(http, st.api_key, broker, stream)
                try:
                    result = await feed(args, st, broker, http, tid, stream, total, pids)
                finally:
                    with contextlib.suppress(httpx.HTTPError):
                        await http.delete(f"/api/triggers/{tid}", headers=auth(st.api_key))
        finally:
            await broker.close()
        persistence = st.persistence
    stream_final = result["status_final"].get("stream") or {}
    reconnects = stream_final.get("reconnects")
    result["config"] = {
        "broker": args.broker,
        "rate_per_s": args.rate,
        "seconds": seconds,
        "messages": total,
        "persistence": persistence,
        "network": network(),
        "cpu_count": os.cpu_count(),
        "loadavg_start": load_start,
        "loadavg_end": loadavg(),
    }
    result["target"] = {
        "reconnects": reconnects,
        "max_reconnects": TARGET_RECONNECTS,
        "meets_target": reconnects is not None and reconnects <= TARGET_RECONNECTS,
    }
    return result


async def feed(
    args: argparse.Namespace,
    st: Any,
    broker: Any,
    http: httpx.AsyncClient,
    tid: str,
    stream: str,
    total: int,
    pids: dict[str, int],
) -> dict[str, Any]:
    async def status() -> dict[str, Any]:
        return await trigger_status(http, st.api_key, tid)

    deadline = time.monotonic() + STARTUP_TIMEOUT
    while ((await status()).get("stream") or {}).get("state") != "connected":
        if time.monotonic() > deadline:
            raise RuntimeError(f"the stream never connected: {await status()}")
        await asyncio.sleep(0.5)
    log(f"connected; publishing {total} messages at {args.rate}/s")
    published: dict[str, float] = {}
    samples: list[dict[str, Any]] = []
    cpu0, t0 = cpu_seconds(pids), time.time()
    loop = asyncio.get_running_loop()
    start = loop.time()
    errors = 0

    async def sampler() -> None:
        while True:
            await asyncio.sleep(args.sample_seconds)
            row = sample(await status(), time.time() - t0, len(published), pids)
            samples.append(row)
            log(f"sample {row}")

    sampling = asyncio.create_task(sampler())
    lags: list[float] = []
    try:
        for i in range(total):
            delay = start + i / args.rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            lags.append(max(0.0, loop.time() - start - i / args.rate))
            try:
                await broker.publish_one(stream, i, published)
            except Exception as exc:  # counted; the schedule goes on
                errors += 1
                log(f"publish {i} failed: {type(exc).__name__}: {exc}")
        send_end = time.time()
        log(f"published {len(published)}; draining")
        drain_deadline = time.monotonic() + args.drain_timeout
        while time.monotonic() < drain_deadline:
            if ((await status()).get("runs_started") or 0) >= len(published):
                break
            await asyncio.sleep(0.5)
        drained_s = round(time.time() - send_end, 2)
    finally:
        sampling.cancel()
    cpu1 = cpu_seconds(pids)
    final = await status()
    samples.append(sample(final, time.time() - t0, len(published), pids))
    expected = {run_workflow_id(tid, key): t for key, t in published.items()}
    starts = await run_starts(st.client, runs_query(tid), expected, limit=2 * total + 10)
    found = [wid for wid in expected if wid in starts]
    history = await trigger_history(st.client, tid)
    runs = final.get("runs_started") or 0
    unacked = await broker.unacked(stream, product_group(broker, tid), len(published))
    return {
        "trigger_id": tid,
        "published": len(published),
        "publish_errors": errors,
        "publish_lag_ms": percentiles(lags),
        "runs_started": runs,
        "runs_found": len(found),
        "missing_runs": len(expected) - len(found),
        "unexpected_runs": len(set(starts) - set(expected)),
        "publish_to_run_start_ms": percentiles(
            [starts[w].timestamp() - expected[w] for w in found]
        ),
        "drain_seconds_after_last_publish": drained_s,
        "unacked_at_end": unacked,
        "stream": final.get("stream"),
        "continued_as_new": final.get("continued_as_new"),
        "trigger_history": {
            **history,
            "events_per_run": round(history["history_events"] / runs, 2) if runs else None,
        },
        "cpu_s": cpu_delta(cpu1, cpu0),
        "cpu_ms_per_message": {
            k: round(1000 * v / max(1, len(published)), 2) for k, v in cpu_delta(cpu1, cpu0).items()
        },
        "samples": samples,
        "status_final": final,
        "checks_ok": len(found) == len(expected) == total and not unacked,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--broker", choices=("redis", "kafka"), default="redis")
    p.add_argument("--minutes", type=float, default=30.0, help="how long to feed (30)")
    p.add_argument("--seconds", type=float, help="instead of --minutes")
    p.add_argument("--rate", type=float, default=1.0, help="messages per second (1)")
    p.add_argument("--sample-seconds", type=float, default=60.0, help="status every (60)")
    p.add_argument("--drain-timeout", type=float, default=120.0)
    p.add_argument("--db-file", action="store_true", help="dev server on a SQLite file")
    p.add_argument("--namespace", default="default")
    args = p.parse_args()
    if args.rate <= 0 or (args.seconds or args.minutes) <= 0:
        p.error("--rate and the duration must be > 0")
    isolate_network()
    seconds = args.minutes * 60 if args.seconds is None else args.seconds
    hard_cap = seconds + args.drain_timeout + 3 * STARTUP_TIMEOUT + 300
    run_and_report(run(args), hard_cap=hard_cap, checked=True)


if __name__ == "__main__":
    main()
