"""Helpers shared by the benchmark scripts: child processes, /proc readings, the product stack.

Importing this module puts the repository root first on ``sys.path``, so that a script run
as ``python benchmarks/x.py`` imports this checkout's ``triggers`` package and not whatever
an editable install points at. Run as a script, it serves the no-op baseline workflow
(``python benchmarks/_common.py --serve-noop-worker DIR ...``; see ``spawn_noop_worker``).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout first

import argparse
import asyncio
import contextlib
import importlib
import json
import math
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.worker import Worker

import triggers
from triggers.infra import store
from triggers.infra.crypto import SecretBox
from triggers.infra.db import make_engine, session_factory, upgrade
from triggers.infra.settings import Settings
from workers.ports import free_port
from workers.processes import parent_death_hook

ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT = 120.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Set (to "1") once the script runs in a network namespace of its own; any other value keeps
# it on the host network (then ports come from outside the ephemeral range).
NETNS_ENV = "TRIGGERS_BENCH_NETNS"
# The baseline's workflow lives in a module of its own, written to the temp dir: the sandbox
# re-runs a workflow's whole module for every run, and re-running a benchmark script would
# cost ~15 ms of worker CPU per run instead of ~7 ms (workflows/run.py is as small as this).
NOOP_MODULE = """from temporalio import workflow


@workflow.defn(name="BenchNoop")
class BenchNoop:
    @workflow.run
    async def run(self) -> None:
        return None
"""

assert Path(triggers.__file__).resolve().is_relative_to(ROOT), triggers.__file__


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run_and_report(main: Awaitable[dict[str, Any]], *, hard_cap: float, checked: bool) -> None:
    """Run a benchmark within ``hard_cap`` seconds, print its JSON on stdout and exit:
    130 when interrupted, 1 when ``checked`` and its ``checks_ok`` is false."""
    try:
        result = asyncio.run(asyncio.wait_for(main, timeout=hard_cap))
    except (KeyboardInterrupt, asyncio.CancelledError):
        log("interrupted; everything started was stopped")
        sys.exit(130)
    print(json.dumps(result, indent=2))
    sys.exit(0 if not checked or result["checks_ok"] else 1)


def isolate_network() -> None:
    """Re-exec this script in a network namespace of its own, with only loopback up.

    ``temporal server start-dev`` opens internal ports (membership, HTTP, metrics) that no
    flag controls, picked from the kernel's ephemeral range; so do other engineers' test
    servers on the same machine. In a namespace of its own nothing else can take them. It
    needs root or unprivileged user namespaces (``unshare -rn``); without either, ports we
    choose come from outside the ephemeral range (``workers.ports.free_port``, as
    everywhere). Call it first in ``main``, before anything starts; the process keeps its
    pid, so signals reach it as before.
    """
    if os.environ.get(NETNS_ENV) is not None or sys.platform != "linux":
        return
    unshare, ip = shutil.which("unshare"), shutil.which("ip")
    if unshare and ip:
        for flags in (["-n"], ["-r", "-n"]):  # as root; else in a user namespace
            probe = [unshare, *flags, ip, "link", "set", "lo", "up"]
            if subprocess.run(probe, capture_output=True).returncode == 0:
                os.environ[NETNS_ENV] = "1"
                up = f'{ip} link set lo up && exec "$0" "$@"'
                argv = [unshare, *flags, "--", "sh", "-c", up, sys.executable, *sys.orig_argv[1:]]
                os.execv(unshare, argv)
    os.environ[NETNS_ENV] = "host"
    log("no network namespace (unshare -n failed): ports from outside the ephemeral range")


def network() -> str:
    """Where this benchmark's servers listen: ``own-namespace`` or ``host``."""
    return "own-namespace" if os.environ.get(NETNS_ENV) == "1" else "host"


def percentiles(seconds: list[float]) -> dict[str, float | None]:
    """Nearest-rank p50/p90/p99 and max, in milliseconds."""
    s = sorted(seconds)
    pick = {f"p{p}": max(0, math.ceil(p / 100 * len(s)) - 1) for p in (50, 90, 99)}
    return {k: round(s[i] * 1000, 1) if s else None for k, i in {**pick, "max": -1}.items()}


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _stat_fields(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def group_pids(pid: int) -> list[int]:
    """``pid`` and every process in its process group (our children lead their own)."""
    found = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != pid:
            with contextlib.suppress(OSError, IndexError, ValueError):
                if int(_stat_fields(int(entry.name))[2]) == pid:  # field 5: pgrp
                    found.append(int(entry.name))
    return found


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds (user + system) used so far by this process and by each of ``pids`` with
    its process group (Linux /proc)."""
    out = {"bench": sum(os.times()[:2])}
    for name, pid in pids.items():
        total = 0.0
        for member in group_pids(pid):
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = _stat_fields(member)
                total += (int(fields[11]) + int(fields[12])) / CLK_TCK
        out[name] = total
    return out


def cpu_delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: round(v - before[k], 2) for k, v in after.items() if k in before}


def rss_mib(pid: int) -> float | None:
    """Resident memory of ``pid`` and its process group, MiB (VmRSS of /proc/<pid>/status)."""
    total, seen = 0, False
    for member in group_pids(pid):
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total, seen = total + int(line.split()[1]), True
    return round(total / 1024, 1) if seen else None


class Procs:
    """Child processes in their own sessions, logging to files; they die with us (Linux)."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.procs: list[tuple[str, asyncio.subprocess.Process]] = []

    async def spawn(self, name: str, argv: list[str], env: dict[str, str]) -> int:
        with (self.logdir / f"{name}.log").open("ab") as out:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                cwd=ROOT,
                env={**os.environ, **env},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
                preexec_fn=parent_death_hook(),
            )
        self.procs.append((name, proc))
        log(f"started {name} (pid {proc.pid})")
        return proc.pid

    def pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self.procs}

    def check(self) -> None:
        for name, proc in self.procs:
            if proc.returncode is not None:
                raise RuntimeError(f"{name} exited early with code {proc.returncode}")

    def dump_logs(self, lines: int = 20) -> None:
        for path in sorted(self.logdir.glob("*.log")):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            log(f"--- tail of {path.name} ---\n" + "\n".join(tail))

    async def stop_all(self) -> None:
        for _, proc in self.procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        for _, proc in self.procs:
            try:
                await asyncio.wait_for(proc.wait(), timeout=15)
            except TimeoutError:  # ignored SIGTERM
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # stragglers in the group, just reaped
        self.procs.clear()


class Http1:
    """One keep-alive HTTP/1.1 connection for hot loops. httpx.AsyncClient spends ~5 ms of
    client CPU per request at C=32 (measured: /healthz 190/s vs 1700/s with this), which on
    2 cores would take CPU from the stack under test. Plain http:// only."""

    # uvicorn closes a keep-alive connection idle for 5 s; one idle for longer than this is
    # not reused (reusing it races the server's close and fails the request).
    MAX_IDLE = 4.0

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self.last_used = 0.0

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        if self.streams is not None and time.monotonic() - self.last_used > self.MAX_IDLE:
            self.close()
        self.last_used = time.monotonic()
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.streams
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        request = f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Length: {len(body)}\r\n"
        try:
            writer.write(f"{request}{head}\r\n".encode() + body)
            status, length = int((await reader.readuntil(b"\r\n")).split()[1]), 0
            while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
                name, _, value = line.partition(b":")
                length = int(value) if name.strip().lower() == b"content-length" else length
            data = await reader.readexactly(length)
            self.last_used = time.monotonic()
            return status, data
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


async def until(
    check: Callable[[], Awaitable[bool]],
    what: str,
    procs: Procs,
    timeout: float = STARTUP_TIMEOUT,
    interval: float = 0.2,
) -> None:
    """Poll ``check`` (errors count as "not yet") until true; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        procs.check()
        with contextlib.suppress(Exception):
            if await check():
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"not ready after {timeout}s: {what}")
        await asyncio.sleep(interval)


async def wait_pollers(client: Client, queue: str, procs: Procs) -> None:
    request = DescribeTaskQueueRequest(
        namespace=client.namespace,
        task_queue=TaskQueue(name=queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    )

    async def polled() -> bool:
        return bool((await client.workflow_service.describe_task_queue(request)).pollers)

    await until(polled, f"a worker polling task queue {queue}", procs)


async def start_product(
    address: str,
    tmp: Path,
    procs: Procs,
    *,
    env: dict[str, str] | None = None,
    python_args: dict[str, list[str]] | None = None,
) -> tuple[str, str, str]:
    """Fresh SQLite database, user + API key, then ``triggers worker`` and ``triggers api``.

    Returns (API base URL, API key, task queue). ``env`` adds TRIGGERS_* settings;
    ``python_args`` interpreter arguments per command (``{"worker": ["-m", "cProfile",
    "-o", path]}`` profiles the worker).
    """
    db_url = f"sqlite+aiosqlite:///{tmp / 'triggers.db'}"
    await asyncio.to_thread(upgrade, db_url)
    engine = make_engine(db_url)
    try:
        async with session_factory(engine)() as session:
            user = await store.create_user(session, name="bench")
            key = await store.create_api_key(session, user=user, name="bench")
    finally:
        await engine.dispose()
    port, queue = free_port(), f"triggers-bench-{uuid.uuid4().hex[:8]}"
    full_env = {
        "TRIGGERS_TEMPORAL_ADDRESS": address,
        "TRIGGERS_DATABASE_URL": db_url,
        "TRIGGERS_SECRET_KEYS": SecretBox.generate_key(),
        "TRIGGERS_API_HOST": "127.0.0.1",
        "TRIGGERS_API_PORT": str(port),
        "TRIGGERS_TASK_QUEUE": queue,
        "TRIGGERS_HOME": str(tmp),
        **(env or {}),
    }
    for command in ("worker", "api"):
        extra = (python_args or {}).get(command, [])
        argv = [sys.executable, *extra, "-m", "workers.cli", command]
        await procs.spawn(command, argv, full_env)
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=url, timeout=2) as http:

        async def ready() -> bool:
            return (await http.get("/readyz")).status_code == 200

        await until(ready, f"{url}/readyz", procs)
    return url, key, queue


async def spawn_noop_worker(
    procs: Procs, tmp: Path, address: str, namespace: str, queue: str, max_seconds: float
) -> None:
    """A worker subprocess serving ``BenchNoop`` on ``queue`` with the product worker's
    settings (pollers, max concurrent tasks); it stops by itself after ``max_seconds``."""
    (tmp / "bench_noop.py").write_text(NOOP_MODULE)
    argv = [sys.executable, str(Path(__file__).resolve()), "--serve-noop-worker", str(tmp)]
    argv += ["--temporal", address, "--namespace", namespace, "--task-queue", queue]
    await procs.spawn("baseline-worker", [*argv, "--max-seconds", str(max_seconds)], {})


async def _serve_noop_worker(args: argparse.Namespace) -> None:
    sys.path.insert(0, args.serve_noop_worker)
    noop = importlib.import_module("bench_noop").BenchNoop
    client = await Client.connect(args.temporal, namespace=args.namespace)
    s = Settings()  # the same knobs as workers/main.py build_worker
    worker = Worker(
        client,
        task_queue=args.task_queue,
        workflows=[noop],
        max_concurrent_workflow_tasks=s.worker_max_concurrent_workflow_tasks,
        max_concurrent_workflow_task_polls=s.worker_workflow_task_pollers,
        max_concurrent_activity_task_polls=s.worker_activity_task_pollers,
    )
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    async with worker:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=args.max_seconds)


def main() -> None:
    p = argparse.ArgumentParser(description="Serve the BenchNoop baseline workflow.")
    p.add_argument("--serve-noop-worker", metavar="DIR", required=True)
    p.add_argument("--temporal", required=True)
    p.add_argument("--namespace", default="default")
    p.add_argument("--task-queue", required=True)
    p.add_argument("--max-seconds", type=float, default=3600.0)
    asyncio.run(_serve_noop_worker(p.parse_args()))


if __name__ == "__main__":
    main()
