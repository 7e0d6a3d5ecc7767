"""The worker process: trigger workflows, built-in runs and their activities."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.worker import Worker

from activities.graph_plan import GraphPlanActivities
from activities.http_request import HttpActivities
from activities.payloads import PayloadActivities
from activities.recovery import RecoveryActivities
from activities.source import SourceActivities
from triggers.infra.crypto import SecretBox
from triggers.infra.db import make_engine, session_factory
from triggers.infra.metrics import Metrics
from triggers.infra.settings import Settings
from workflows.run import RunWorkflow
from workflows.trigger import TriggerWorkflow


class TriggersWorker(Worker):
    """A Worker that owns its database engine and closes it once it has shut down: an engine
    left open keeps connections (aiosqlite threads) alive into interpreter finalization,
    where a stop could abort with "Fatal Python error" or hang."""

    def __init__(self, client: Client, *, engine: AsyncEngine, **kwargs: Any) -> None:
        super().__init__(client, **kwargs)
        self._engine = engine

    async def shutdown(self) -> None:
        try:
            await super().shutdown()
        finally:
            await self._engine.dispose()


def build_worker(
    client: Client,
    settings: Settings,
    *,
    task_queue: str | None = None,
    part: Literal["all", "workflows", "activities"] = "all",
    metrics: Metrics | None = None,
) -> TriggersWorker:
    """A worker for the triggers task queue.

    Pollers are raised above the SDK defaults: run starts are bounded by how fast workflow
    tasks are picked up, not by CPU. Every running source loop holds an activity slot, so
    the activity limit is high; loops that idle long give theirs back (they park).

    At shutdown, source loops return at once (their workflow starts the next attempt on a
    worker that runs); other activities get ``worker_shutdown_grace_seconds`` to finish
    before they are cancelled and retried elsewhere.

    ``part``: everything, or only the workflows, or only the activities (two workers that
    split one queue, e.g. to keep sources running while workflows cannot).

    ``metrics`` is where the activities count (source loops, events received); what the
    workflows count goes to the client's runtime (``triggers.infra.metrics.Telemetry``).

    Tracing comes with the client: ``triggers.infra.temporal.connect`` gives it the SDK's
    OpenTelemetry plugin when tracing is on, and a worker takes its client's plugins.
    """
    keys = settings.secret_keys.get_secret_value()
    engine = make_engine(settings.resolved_database_url)
    sessions = session_factory(engine)
    sources = SourceActivities(
        client, sessions, SecretBox.from_setting(keys) if keys else None, metrics=metrics
    )
    http = HttpActivities(sessions)
    recovery = RecoveryActivities(client)
    payloads = PayloadActivities(sessions)
    graphs = GraphPlanActivities()
    activities: list[Any] = [
        sources.run_source,
        http.http_request,
        graphs.plan_graph,
        recovery.recover_trigger,
        recovery.wait_run,
        payloads.load_payload,
        payloads.spill_events,
        payloads.unspill_events,
    ]
    return TriggersWorker(
        client,
        engine=engine,
        task_queue=task_queue or settings.task_queue,
        workflows=[] if part == "activities" else [TriggerWorkflow, RunWorkflow],
        activities=[] if part == "workflows" else activities,
        max_concurrent_activities=settings.worker_max_concurrent_activities,
        max_concurrent_workflow_tasks=settings.worker_max_concurrent_workflow_tasks,
        max_concurrent_workflow_task_polls=settings.worker_workflow_task_pollers,
        max_concurrent_activity_task_polls=settings.worker_activity_task_pollers,
        graceful_shutdown_timeout=timedelta(seconds=settings.worker_shutdown_grace_seconds),
        max_heartbeat_throttle_interval=timedelta(
            seconds=settings.worker_heartbeat_throttle_seconds
        ),
    )
