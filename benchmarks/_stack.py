"""The stack a benchmark runs against, and what it asks of the product: webhook triggers,
signed GitHub deliveries, runs and trigger histories as Temporal reports them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from _common import Procs, log, start_product, wait_pollers
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from triggers.core import vendor_signatures
from workers.devserver import DevServer
from workers.ports import free_port

SECRET = "bench-signing-secret-0001"
# Out of the way: the benchmarks measure intake and run starts, not the limiter.
NO_RATE_LIMIT = {"rate_limit_per_second": 100000, "rate_limit_burst": 100000}


@dataclass
class Stack:
    """Where the benchmark sends: the API, its key, Temporal and the product's task queue
    (``None`` for a stack the benchmark did not start); ``pids`` for CPU readings."""

    tmp: Path
    procs: Procs
    client: Client
    address: str
    api_url: str
    api_key: str
    queue: str | None
    persistence: str
    pids: dict[str, int] = field(default_factory=dict)


@contextlib.asynccontextmanager
async def bench_stack(
    *,
    namespace: str,
    db_file: bool = False,
    against: tuple[str, str, str] | None = None,
    env: dict[str, str] | None = None,
    python_args: dict[str, list[str]] | None = None,
) -> AsyncIterator[Stack]:
    """A temporary directory and, unless ``against`` = (API URL, API key, Temporal address)
    names a running stack, a headless dev server (in memory, or on a SQLite file) with
    ``triggers worker`` and ``triggers api`` on fresh ports (``env`` and ``python_args`` as
    for ``start_product``); all stopped on exit. SIGTERM
    cancels the running task, so the same cleanup runs."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    with tempfile.TemporaryDirectory(prefix="triggers-bench-") as tmpdir:
        tmp, server = Path(tmpdir), None
        procs = Procs(tmp)
        try:
            if against:
                (api_url, api_key, address), queue, persistence = against, None, "external"
            else:
                persistence = "sqlite-file" if db_file else "in-memory"
                server = DevServer(
                    port=free_port(),
                    headless=True,
                    db_filename=tmp / "temporal.db" if db_file else None,
                    log_file=tmp / "t.log",
                )
                log(f"starting Temporal dev server ({persistence})")
                await server.start()
                address = server.address
                log(f"Temporal dev server at {address} (pid {server.pid})")
                api_url, api_key, queue = await start_product(
                    address, tmp, procs, env=env, python_args=python_args
                )
            client = await Client.connect(address, namespace=namespace)
            if queue is not None:
                await wait_pollers(client, queue, procs)
            stack = Stack(tmp, procs, client, address, api_url, api_key, queue, persistence)
            stack.pids = {"temporal": server.pid} if server and server.pid else {}
            yield stack
        except Exception:
            procs.dump_logs()
            raise
        finally:
            log("stopping")
            stopping = time.monotonic()
            await procs.stop_all()
            if server is not None:
                await server.stop()
            log(f"stopped everything in {time.monotonic() - stopping:.1f}s")


async def create_github_trigger(http: httpx.AsyncClient, api_key: str, name: str) -> str:
    """A ``github`` webhook trigger through ``POST /api/triggers``; returns its id."""
    config = {"preset": "github", **NO_RATE_LIMIT}
    body = {"name": name, "provider": "webhook", "config": config}
    body["secrets"] = {"signing_secret": SECRET}
    resp = await http.post("/api/triggers", json=body, headers=auth(api_key))
    if resp.status_code != 201:
        raise RuntimeError(f"creating the trigger: {resp.status_code} {resp.text[:300]}")
    return str(resp.json()["id"])


def runs_query(tid: str) -> str:
    """The visibility query for a trigger's runs (its trigger workflow has the same
    ``TriggerId``; the benchmarks' triggers start the built-in ``RunWorkflow``)."""
    return f'TriggerId="{tid}" AND WorkflowType="RunWorkflow"'


def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


def github_delivery(delivery: str, i: int) -> tuple[bytes, dict[str, str]]:
    """A push delivery with its own ``X-GitHub-Delivery`` id, signed as GitHub signs it."""
    payload = {"ref": "refs/heads/main", "repository": {"full_name": "acme/bench"}, "i": i}
    raw = json.dumps(payload).encode()
    headers = {"content-type": "application/json", "X-GitHub-Event": "push"}
    headers.update(vendor_signatures.sign_github(SECRET, raw, delivery_id=delivery))
    return raw, headers


async def trigger_status(http: httpx.AsyncClient, api_key: str, tid: str) -> dict[str, Any]:
    """``GET /api/triggers/{id}/status``, or ``{"error": ...}`` if it does not answer 200."""
    try:
        resp = await http.get(f"/api/triggers/{tid}/status", headers=auth(api_key))
    except httpx.HTTPError as exc:
        return {"error": type(exc).__name__}
    if resp.status_code != 200:
        return {"error": f"HTTP {resp.status_code}"}
    found: dict[str, Any] = resp.json()
    return found


async def run_starts(
    client: Client, query: str, expected: Iterable[str], *, limit: int
) -> dict[str, datetime]:
    """Workflow id -> start time of the runs that ``query`` lists, plus any of ``expected``
    that visibility does not list yet, described one by one (visibility may lag)."""
    starts = {
        wf.id: wf.start_time
        async for wf in client.list_workflows(query, page_size=1000, limit=limit)
    }
    missing = [wid for wid in expected if wid not in starts]
    sem = asyncio.Semaphore(16)

    async def describe(wid: str) -> None:
        async with sem:
            with contextlib.suppress(RPCError):
                starts[wid] = (await client.get_workflow_handle(wid).describe()).start_time

    await asyncio.gather(*(describe(wid) for wid in missing))
    return starts


async def trigger_history(client: Client, tid: str) -> dict[str, int]:
    """Events in the history of ``trigger:<tid>`` summed over all its runs (it continues as
    new), each run described for its length: visibility fills ``history_length`` only when a
    run closes."""
    wid, total, runs = f"trigger:{tid}", 0, 0
    async for wf in client.list_workflows(f'WorkflowId="{wid}"', page_size=100):
        try:
            desc = await client.get_workflow_handle(wid, run_id=wf.run_id).describe()
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            continue
        total, runs = total + desc.raw_description.workflow_execution_info.history_length, runs + 1
    return {"history_events": total, "workflow_runs": runs}


def history_per_run(histories: list[dict[str, int]], runs_started: int) -> dict[str, Any]:
    """The ``trigger_history`` of each trigger, summed, per run started."""
    total = sum(h["history_events"] for h in histories)
    return {
        "trigger_history_events": total,
        "trigger_workflow_runs": sum(h["workflow_runs"] for h in histories),
        "runs_started": runs_started,
        "per_run": round(total / runs_started, 2) if runs_started else None,
    }
