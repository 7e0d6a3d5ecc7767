"""Metrics: exact counts after a known sequence of webhooks, scraped from the API's
``/metrics`` and the worker's metrics port over HTTP, and no double counting when another
worker replays the trigger workflow's history."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from temporalio.client import Client

from api.app import create_app
from tests.conftest import Stack, eventually, make_stack
from tests.helpers import count_runs, github_body, github_trigger, post_github, status_of
from tests.worker_proc import WorkerProcess
from triggers.core import vendor_signatures
from triggers.infra.metrics import Metrics, Telemetry
from triggers.infra.metrics.serve import serving
from triggers.infra.settings import Settings
from triggers.infra.temporal import connect
from workers.devserver import DevServer
from workers.main import build_worker
from workers.ports import free_port

MAIN = 'event.data.ref == "refs/heads/main"'


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels`` (0 when none)."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples(text).items() if n == name and want <= ls)


@dataclass
class WorkerProc:
    """A worker as a process would run it: its own Temporal runtime (SDK metrics), client,
    registry and metrics port."""

    metrics: Metrics
    url: str

    async def scrape(self) -> str:
        async with httpx.AsyncClient() as http:
            r = await http.get(self.url)
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain")
        return r.text


@asynccontextmanager
async def worker_proc(
    temporal: DevServer, settings: Settings, *, per_trigger: bool = False
) -> AsyncIterator[WorkerProc]:
    metrics = Metrics(per_trigger=per_trigger)
    telemetry = Telemetry(metrics)
    client = await connect(
        settings.model_copy(update={"temporal_address": temporal.address}),
        runtime=telemetry.runtime,
    )
    async with (
        build_worker(client, settings, metrics=metrics),
        serving(metrics, host="127.0.0.1", port=0) as port,
    ):
        yield WorkerProc(metrics, f"http://127.0.0.1:{port}/metrics")


async def api_scrape(http: httpx.AsyncClient) -> str:
    r = await http.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return r.text


@asynccontextmanager
async def metered_stack(
    sqlite_url: str, client: Client, secret_keys: str, *, per_trigger: bool = False
) -> AsyncIterator[tuple[Stack, Settings]]:
    queue = f"metrics-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        task_queue=queue, database_url=sqlite_url, secret_keys=SecretStr(secret_keys)
    )
    async with make_stack(
        sqlite_url, client, queue, secret_keys, metrics=Metrics(per_trigger=per_trigger)
    ) as s:
        yield s, settings


@asynccontextmanager
async def second_api(s: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """Another API process on the same database and Temporal: its own app and metrics."""
    app = create_app(s.settings, client=s.client, metrics=Metrics())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


async def until(fn: Callable[[], Awaitable[bool]]) -> None:
    await eventually(fn, timeout=30)


async def test_a_known_sequence_is_counted_exactly_once(
    temporal: DevServer, client: Client, sqlite_url: str, secret_keys: str
) -> None:
    """N passing webhooks, M repeats the API answers, R repeats only the workflow
    recognises (another API process sent them), K dropped by the condition, one bad
    signature: each counted once, where the README says."""
    n, m, r, k = 4, 3, 2, 2
    async with AsyncExitStack() as stack:
        s, settings = await stack.enter_async_context(
            metered_stack(sqlite_url, client, secret_keys)
        )
        w = await stack.enter_async_context(worker_proc(temporal, settings))
        # A second API process: its recent keys are its own.
        other = await stack.enter_async_context(second_api(s))
        tid = (await s.create_trigger(github_trigger() | {"condition": MAIN}))["id"]
        for i in range(n):
            assert (await post_github(s.http, tid, delivery=f"pass-{i}")).status_code == 202
        for i in range(k):
            body = github_body(ref="refs/heads/dev")
            reply = await post_github(s.http, tid, delivery=f"drop-{i}", body=body)
            assert reply.status_code == 202 and reply.json()["would_start"] is False
        for _ in range(m):
            reply = await post_github(s.http, tid, delivery="pass-0")
            assert reply.json()["duplicate"] is True
        for i in range(r):
            reply = await post_github(other, tid, delivery=f"pass-{i + 1}")
            assert reply.status_code == 202 and reply.json()["duplicate"] is False
        assert (await post_github(s.http, tid, delivery="bad", secret="wrong")).status_code == 401

        async def settled() -> bool:
            st = await status_of(s, tid)
            text = await w.scrape()
            return (
                st["runs_started"] == n
                and st["duplicates"] == r
                and value(text, "triggers_runs_started_total") == n
                and value(text, "triggers_duplicates_total") == r
            )

        await until(settled)
        assert await count_runs(s.client, tid) == n
        api, api2, wk = await api_scrape(s.http), await api_scrape(other), await w.scrape()

    webhook = {"provider": "webhook"}
    # At intake (the API that took each delivery): accepted events, repeats included.
    assert value(api, "triggers_events_received_total", **webhook) == n + k + m
    assert value(api2, "triggers_events_received_total", **webhook) == r
    assert value(api, "triggers_duplicates_total", stage="api", **webhook) == m
    assert value(api, "triggers_webhook_responses_total", code="202") == n + k + m
    assert value(api, "triggers_webhook_responses_total", code="401") == 1
    # In the trigger workflow (the worker's registry).
    assert value(wk, "triggers_events_filtered_total", result="passed", **webhook) == n
    assert value(wk, "triggers_events_filtered_total", result="dropped", **webhook) == k
    assert value(wk, "triggers_events_filtered_total", result="error") == 0
    assert value(wk, "triggers_duplicates_total", stage="recent", **webhook) == r
    assert value(wk, "triggers_duplicates_total", stage="run_id") == 0
    assert value(wk, "triggers_runs_started_total", **webhook) == n
    assert value(wk, "triggers_latency_seconds_count", **webhook) == n
    # Started within the test: every observation is under 5 minutes, none is negative.
    assert value(wk, "triggers_latency_seconds_bucket", le="300.0", **webhook) == n
    assert 0 < value(wk, "triggers_latency_seconds_sum", **webhook) < 300 * n
    # Nothing counted in the wrong process.
    assert value(api, "triggers_runs_started_total") == 0
    assert value(wk, "triggers_events_received_total") == 0
    # The SDK's own metrics come through the same port, with _total on counters.
    assert value(wk, "temporal_workflow_task_execution_latency_count") > 0
    assert value(wk, "temporal_request_total") > 0
    # The triggers by state, from the database (API only).
    assert value(api, "triggers_source_state", state="active", **webhook) == 1
    # Per-trigger labels are off: no trigger id anywhere.
    for text in (api, api2, wk):
        assert tid not in text
        assert "trigger_id" not in text


async def test_a_replayed_history_is_not_counted_again(
    temporal: DevServer, client: Client, sqlite_url: str, secret_keys: str
) -> None:
    """A new worker (a new process: its own runtime and registry) on the same task queue
    replays the trigger workflow's history; it counts only what happens after it."""
    n, k = 3, 1
    async with metered_stack(sqlite_url, client, secret_keys) as (s, settings):
        tid = (await s.create_trigger(github_trigger() | {"condition": MAIN}))["id"]
        async with worker_proc(temporal, settings) as first:
            for i in range(n):
                assert (await post_github(s.http, tid, delivery=f"a-{i}")).status_code == 202
            body = github_body(ref="refs/heads/dev")
            assert (await post_github(s.http, tid, delivery="a-drop", body=body)).status_code == 202

            async def first_done() -> bool:
                return value(await first.scrape(), "triggers_runs_started_total") == n

            await until(first_done)
            before = await first.scrape()
        async with worker_proc(temporal, settings) as second:
            assert (await post_github(s.http, tid, delivery="b-0")).status_code == 202

            async def second_done() -> bool:
                st = await status_of(s, tid)
                return st["runs_started"] == n + 1

            await until(second_done)
            after = await second.scrape()
            # The second worker answered with state it could only have rebuilt by replaying
            # the history (the first n starts, no continue-as-new carried it), and ...
            st = await status_of(s, tid)
        assert await count_runs(s.client, tid) == n + 1

    webhook = {"provider": "webhook"}
    assert value(before, "triggers_runs_started_total", **webhook) == n
    assert value(before, "triggers_events_filtered_total", result="dropped", **webhook) == k
    assert st["runs_started"] == n + 1 and st["continued_as_new"] == 0
    # ... counted the new event alone.
    assert value(after, "triggers_runs_started_total", **webhook) == 1
    assert value(after, "triggers_events_filtered_total", result="passed", **webhook) == 1
    assert value(after, "triggers_events_filtered_total", result="dropped", **webhook) == 0
    assert value(after, "triggers_latency_seconds_count", **webhook) == 1


async def test_latency_runs_from_the_senders_signed_time(
    temporal: DevServer, client: Client, sqlite_url: str, secret_keys: str
) -> None:
    """Stripe signs its send time: the latency starts there, not at receipt. A delivery
    signed 150 s ago is above the 120 s bucket and within the 300 s one."""
    async with metered_stack(sqlite_url, client, secret_keys) as (s, settings):
        trigger = await s.create_trigger(
            {
                "name": "stripe",
                "provider": "webhook",
                "config": {"preset": "stripe"},
                "secrets": {"signing_secret": "whsec_metrics_test_secret"},
            }
        )
        async with worker_proc(temporal, settings) as w:
            body = json.dumps({"id": "evt_1", "type": "charge.succeeded", "data": {}}).encode()
            signed = vendor_signatures.sign_stripe(
                "whsec_metrics_test_secret", body, timestamp=int(time.time()) - 150
            )
            reply = await s.http.post(
                f"/webhooks/stripe/{trigger['id']}",
                content=body,
                headers={"content-type": "application/json", **signed},
            )
            assert reply.status_code == 202, reply.text

            async def counted() -> bool:
                return value(await w.scrape(), "triggers_latency_seconds_count") == 1

            await until(counted)
            text = await w.scrape()
    assert value(text, "triggers_latency_seconds_bucket", le="120.0") == 0
    assert value(text, "triggers_latency_seconds_bucket", le="300.0") == 1
    assert 150 <= value(text, "triggers_latency_seconds_sum") < 300


async def test_a_source_loop_counts_at_intake_and_its_reconnects(
    temporal: DevServer, client: Client, sqlite_url: str, secret_keys: str
) -> None:
    """A polling source: its events are counted as received in the worker (the source
    loop is the intake), its retry after an error as a reconnect, its running loop in the
    gauge until the trigger is disabled."""
    items = ["a", "b", "c"]
    async with metered_stack(sqlite_url, client, secret_keys) as (s, settings):
        body = {
            "name": "list",
            "provider": "test_list",
            "config": {"items": items, "fail_times": 1, "idle_seconds": 0.2},
        }
        tid = (await s.create_trigger(body))["id"]
        async with worker_proc(temporal, settings) as w:

            async def started() -> bool:
                text = await w.scrape()
                return value(text, "triggers_runs_started_total") == len(items)

            await until(started)
            running = await w.scrape()
            api = await api_scrape(s.http)
            r = await s.http.post(f"/api/triggers/{tid}/disable", headers=s.alice)
            assert r.status_code == 200, r.text

            async def stopped() -> bool:
                return value(await w.scrape(), "triggers_source_loops") == 0

            await until(stopped)
            after = await w.scrape()
            api_after = await api_scrape(s.http)
    source = {"provider": "test_list"}
    assert value(running, "triggers_events_received_total", **source) == len(items)
    assert value(running, "triggers_source_reconnects_total", **source) == 1
    assert value(running, "triggers_source_loops", **source) == 1
    assert value(after, "triggers_events_received_total", **source) == len(items)
    assert value(after, "triggers_runs_started_total", **source) == len(items)
    assert value(after, "triggers_latency_seconds_count", **source) == len(items)
    assert value(api, "triggers_source_state", state="active", **source) == 1
    assert value(api_after, "triggers_source_state", state="disabled", **source) == 1
    assert value(api_after, "triggers_source_state", state="active", **source) == 0


async def test_per_trigger_labels_are_opt_in(
    temporal: DevServer, client: Client, sqlite_url: str, secret_keys: str
) -> None:
    """With per-trigger labels on, each count also carries the trigger's id (never its
    name)."""
    async with metered_stack(sqlite_url, client, secret_keys, per_trigger=True) as (s, settings):
        trigger = await s.create_trigger(github_trigger(name="secret-project-name"))
        tid = trigger["id"]
        async with worker_proc(temporal, settings, per_trigger=True) as w:
            assert (await post_github(s.http, tid, delivery="one")).status_code == 202

            async def started() -> bool:
                return value(await w.scrape(), "triggers_runs_started_total", trigger_id=tid) == 1

            await until(started)
            wk = await w.scrape()
        api = await api_scrape(s.http)
    assert value(api, "triggers_events_received_total", trigger_id=tid, provider="webhook") == 1
    assert value(wk, "triggers_latency_seconds_count", trigger_id=tid) == 1
    assert value(wk, "triggers_events_filtered_total", trigger_id=tid) == 0  # no condition
    for text in (api, wk):
        assert "secret-project-name" not in text


async def test_the_worker_command_serves_its_metrics_port(
    temporal: DevServer, sqlite_url: str, secret_keys: str, tmp_path: Path
) -> None:
    """``triggers worker`` with TRIGGERS_WORKER_METRICS_PORT: Prometheus text on that port,
    the SDK's metrics in it (its runtime reports there); a taken port stops it at start."""
    port = free_port()
    proc = WorkerProcess(
        temporal=temporal.address,
        database_url=sqlite_url,
        task_queue=f"metrics-cli-{uuid.uuid4().hex[:8]}",
        secret_keys=secret_keys,
        log=tmp_path / "worker.log",
        env={"TRIGGERS_WORKER_METRICS_PORT": str(port)},
    )
    await proc.start()
    try:

        async def scraped() -> str:
            async with httpx.AsyncClient() as http:
                r = await http.get(f"http://127.0.0.1:{port}/metrics")
            assert r.status_code == 200
            return r.text if "temporal_num_pollers" in r.text else ""

        text = await eventually(scraped, timeout=30)
        assert "# TYPE triggers_runs_started_total counter" in text
        assert "# TYPE triggers_latency_seconds histogram" in text
        assert f"worker metrics at http://127.0.0.1:{port}/metrics" in proc.log_text()
        # A second worker asked for the same port refuses to start, saying why.
        second = subprocess.run(
            [sys.executable, "-m", "workers.cli", "worker"],
            env={**proc.env, "TRIGGERS_TASK_QUEUE": "metrics-cli-other"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode != 0
        assert f"metrics port 127.0.0.1:{port} cannot be opened" in second.stderr
    finally:
        proc.stop()
