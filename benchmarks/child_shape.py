"""Child-workflow shape: how fast one parent starts N children, against N bare client starts.

What the product's burst ratio can reach at best: a run is a child of its trigger workflow,
so its start goes through the parent's workflow task and the server's child-start path.
Each scenario runs on a fresh in-memory dev server with a no-op workflow and no product
code (no API, no signals, no sandbox: the workflows run unsandboxed so only the server's
side of the shape is measured):

- ``bare``: N ``client.start_workflow`` calls from C callers;
- ``child``: one parent workflow starting N children, at most W starts in flight;
- each also ``_noexec``: the workflows go to a task queue nobody polls, so only the start
  path is measured (no workflow task of the started workflow competes with it).

One JSON object goes to stdout (rates, server CPU per workflow, child / bare ratios),
progress to stderr. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from temporalio import workflow
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.worker import UnsandboxedWorkflowRunner, Worker
from temporalio.workflow import ChildWorkflowCancellationType, ParentClosePolicy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import isolate_network  # noqa: E402

from workers.devserver import DevServer  # noqa: E402

NOBODY = "nobody-polls-this"


@workflow.defn(name="ShapeNoop")
class ShapeNoop:
    @workflow.run
    async def run(self, data: dict[str, Any]) -> None:
        return None


@workflow.defn(name="ShapeParent")
class ShapeParent:
    """Starts ``n`` children with a sliding window of ``window`` starts in flight, as the
    trigger workflow does (ABANDON, REJECT_DUPLICATE), and returns once all have started."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.started = 0

    @workflow.run
    async def run(self, n: int, window: int, prefix: str, queue: str) -> int:
        async def one(i: int) -> None:
            await workflow.start_child_workflow(
                "ShapeNoop",
                {"ref": "refs/heads/main", "i": i},
                id=f"{prefix}-{i}",
                task_queue=queue or None,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                parent_close_policy=ParentClosePolicy.ABANDON,
                cancellation_type=ChildWorkflowCancellationType.ABANDON,
            )
            self.in_flight -= 1
            self.started += 1

        tasks = []
        for i in range(n):
            await workflow.wait_condition(lambda: self.in_flight < window)
            self.in_flight += 1
            tasks.append(asyncio.ensure_future(one(i)))
        await workflow.wait_condition(lambda: self.started == n)
        return self.started


def log(msg: str) -> None:
    print(f"[shape {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU of ``pid`` (Linux /proc), or of this process when ``None``."""
    if pid is None:
        return sum(os.times()[:2])
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


Scenario = Callable[[Client, str, argparse.Namespace], Awaitable[None]]


def bare(noexec: bool) -> Scenario:
    async def go(client: Client, queue: str, args: argparse.Namespace) -> None:
        indices = iter(range(args.n))

        async def caller() -> None:
            for i in indices:
                await client.start_workflow(
                    "ShapeNoop",
                    {"ref": "refs/heads/main", "i": i},
                    id=f"bare-{i}",
                    task_queue=NOBODY if noexec else queue,
                )

        await asyncio.gather(*(caller() for _ in range(args.concurrency)))

    return go


def child(noexec: bool, own_queue: bool = False) -> Scenario:
    async def go(client: Client, queue: str, args: argparse.Namespace) -> None:
        children = NOBODY if noexec else f"{queue}-children" if own_queue else ""
        await client.execute_workflow(
            "ShapeParent",
            args=[args.n, args.window, "child", children],
            id="shape-parent",
            task_queue=queue,
        )

    return go


async def count(client: Client, query: str) -> int:
    return (await client.count_workflows(query)).count


async def measure(name: str, scenario: Scenario, args: argparse.Namespace) -> dict[str, Any]:
    server = DevServer(headless=True)
    await server.start()
    try:
        client = await Client.connect(server.address)
        queue = f"shape-{uuid.uuid4().hex[:8]}"
        worker = Worker(
            client,
            task_queue=queue,
            workflows=[ShapeNoop, ShapeParent],
            workflow_runner=UnsandboxedWorkflowRunner(),
            max_concurrent_workflow_task_polls=10,
        )
        # Children on a queue of their own (``child_own_queue``): a second worker in this
        # process, so the parent's tasks never wait behind its children's.
        children = Worker(
            client,
            task_queue=f"{queue}-children",
            workflows=[ShapeNoop],
            workflow_runner=UnsandboxedWorkflowRunner(),
            max_concurrent_workflow_task_polls=10,
        )
        async with worker, children:
            s0, w0, t0 = cpu_seconds(server.pid), cpu_seconds(None), time.time()
            await scenario(client, queue, args)
            deadline = time.monotonic() + args.timeout
            done = 'WorkflowType="ShapeNoop"'
            if not name.endswith("_noexec"):
                done += ' AND ExecutionStatus="Completed"'
            while await count(client, done) < args.n and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            finished = time.time() - t0
            server_s, worker_s = cpu_seconds(server.pid) - s0, cpu_seconds(None) - w0
            starts = [
                wf.start_time.timestamp()
                async for wf in client.list_workflows('WorkflowType="ShapeNoop"', page_size=1000)
            ]
    finally:
        await server.stop()
    last = max(starts) - t0 if starts else None
    result = {
        "started": len(starts),
        "started_per_s": round(len(starts) / last, 1) if last else None,
        "seconds_to_all_done": round(finished, 2),
        "server_cpu_ms_per_workflow": round(1000 * server_s / args.n, 2),
        "worker_cpu_ms_per_workflow": round(1000 * worker_s / args.n, 2),
    }
    log(f"{name}: {result}")
    return result


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


async def run(args: argparse.Namespace) -> dict[str, Any]:
    scenarios: dict[str, Scenario] = {
        "bare": bare(False),
        "child": child(False),
        "child_own_queue": child(False, own_queue=True),
        "bare_noexec": bare(True),
        "child_noexec": child(True),
    }
    rounds: list[dict[str, Any]] = []
    for r in range(args.rounds):
        log(f"round {r + 1} of {args.rounds}")
        rounds.append({name: await measure(name, fn, args) for name, fn in scenarios.items()})
    ratios = [
        {
            "child_over_bare_started": ratio(
                rd["child"]["started_per_s"], rd["bare"]["started_per_s"]
            ),
            "child_own_queue_over_bare_started": ratio(
                rd["child_own_queue"]["started_per_s"], rd["bare"]["started_per_s"]
            ),
            "child_over_bare_started_noexec": ratio(
                rd["child_noexec"]["started_per_s"], rd["bare_noexec"]["started_per_s"]
            ),
        }
        for rd in rounds
    ]
    return {
        "config": {
            "n": args.n,
            "concurrency": args.concurrency,
            "window": args.window,
            "cpu_count": os.cpu_count(),
            "loadavg_1m_end": round(os.getloadavg()[0], 2),
        },
        "rounds": rounds,
        "ratios": ratios,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--n", type=int, default=1000, help="workflows per scenario (default 1000)")
    p.add_argument("--concurrency", type=int, default=32, help="bare callers (default 32)")
    p.add_argument("--window", type=int, default=200, help="child starts in flight (200)")
    p.add_argument("--rounds", type=int, default=1, help="repeat every scenario (default 1)")
    p.add_argument("--timeout", type=float, default=300.0, help="max wait per scenario")
    args = p.parse_args()
    if min(args.n, args.concurrency, args.window, args.rounds) < 1:
        p.error("--n, --concurrency, --window and --rounds must be >= 1")
    isolate_network()
    print(json.dumps(asyncio.run(run(args)), indent=2))


if __name__ == "__main__":
    main()
