"""Temporal is down for 30 s while a Redis stream keeps receiving messages: nothing is lost,
nothing runs twice, memory stays flat, and the source resumes by itself once Temporal is
back. The worker is a separate process (its RSS is what is measured) and Temporal a dev
server of the test's own, stopped and started again on the same port and database file.

Bounds stated: while Temporal is down, the source holds at most ``max_in_flight`` (50)
entries it has not acked (the group's pending count, sampled every 0.5 s: the signal fails,
the activity ends, nothing more is read), and the worker's RSS grows by less than 64 MiB
while 1,000 messages wait in Redis."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from temporalio.client import Client

from tests.conftest import eventually, make_stack
from tests.helpers import count_runs, dead_letter_count
from tests.stream_sides import RedisSide, payloads, runs_reach, stream_trigger
from tests.worker_proc import WorkerProcess
from workers.devserver import DevServer
from workers.ports import free_port

DOWN_FOR = 30.0
BEFORE, DURING = 300, 1_000
MAX_IN_FLIGHT = 50
RSS_GROWTH = 64 * 1024 * 1024
SETTLE = 120.0


def rss(pid: int) -> int:
    """Resident memory of a process, in bytes (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


async def test_temporal_down_for_30s_mid_stream(
    tmp_path: Path, sqlite_url: str, secret_keys: str
) -> None:
    broker = await RedisSide.connect()
    port, db_file = free_port(), tmp_path / "temporal.db"
    server = DevServer(headless=True, port=port, db_filename=db_file)
    await server.start()
    queue = f"down-{uuid.uuid4().hex[:8]}"
    worker = WorkerProcess(
        temporal=server.address,
        database_url=sqlite_url,
        task_queue=queue,
        secret_keys=secret_keys,
        log=tmp_path / "worker.log",
    )
    try:
        client = await Client.connect(server.address)
        await worker.start()
        assert worker.proc is not None
        async with make_stack(sqlite_url, client, queue, secret_keys) as s:
            config = broker.config(max_in_flight=MAX_IN_FLIGHT, count=MAX_IN_FLIGHT)
            tid = await stream_trigger(s, "redis_streams", config)
            await broker.publish(payloads(0, BEFORE))
            await runs_reach(client, tid, BEFORE // 3, timeout=SETTLE)

            await server.stop()
            base = rss(worker.proc.pid)
            await broker.publish(payloads(BEFORE, DURING))
            samples: list[tuple[int, int]] = []
            loop = asyncio.get_running_loop()
            until = loop.time() + DOWN_FOR
            while loop.time() < until:  # the outage itself: sampled, not waited on
                samples.append((await broker.pending(), rss(worker.proc.pid)))
                await asyncio.sleep(0.5)
            assert worker.proc.poll() is None, "the worker died while Temporal was down"
            most_pending = max(p for p, _ in samples)
            most_rss = max(r for _, r in samples)
            assert most_pending <= MAX_IN_FLIGHT, samples
            assert most_rss - base < RSS_GROWTH, (base, most_rss)
            # Nothing was read beyond the in-flight bound: the rest waits in Redis.
            assert await broker.unacked() >= DURING

            server = DevServer(headless=True, port=port, db_filename=db_file)
            await server.start()
            back = loop.time()
            # Nothing is done to help it: the worker and the source find Temporal again.
            await runs_reach(client, tid, BEFORE + 1, timeout=SETTLE)
            resumed = loop.time() - back
            await runs_reach(client, tid, BEFORE + DURING, timeout=SETTLE)
            drained = loop.time() - back

            async def all_acked() -> bool:
                return await broker.unacked() == 0

            await eventually(all_acked, timeout=SETTLE, interval=0.5)
            assert await count_runs(client, tid) == BEFORE + DURING
            assert await broker.pending() == 0
            assert await dead_letter_count(sqlite_url, tid) == 0
            print(
                f"\ndown {DOWN_FOR:.0f}s: pending at most {most_pending}, worker RSS "
                f"{base / 2**20:.0f} -> at most {most_rss / 2**20:.0f} MiB; run {BEFORE + 1} after "
                f"{resumed:.1f}s, all {DURING} after {drained:.1f}s"
            )
    finally:
        worker.stop()
        await server.stop()
        await broker.close()
