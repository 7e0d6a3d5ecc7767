"""The worker process: trigger workflows, built-in runs and their activities."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.worker import Worker

from activities.graph_plan import GraphPlanActivities
from activities.http_request import HttpActivities
from activities.payloads import PayloadActivities
from activities.recovery import RecoveryActivities
from activities.source import SourceActivities
from triggers.crypto import SecretBox
from triggers.db import make_engine, session_factory
from triggers.settings import Settings
from workflows.run import RunWorkflow
from workflows.trigger import TriggerWorkflow


def build_worker(client: Client, settings: Settings, *, task_queue: str | None = None) -> Worker:
    """A worker for the triggers task queue.

    Pollers are raised above the SDK defaults: run starts are bounded by how fast workflow
    tasks are picked up, not by CPU. Every running source loop holds an activity slot, so
    the activity limit is high; loops that idle long give theirs back (they park).
    """
    keys = settings.secret_keys.get_secret_value()
    sessions = session_factory(make_engine(settings.resolved_database_url))
    sources = SourceActivities(client, sessions, SecretBox.from_setting(keys) if keys else None)
    http = HttpActivities(sessions)
    recovery = RecoveryActivities(client)
    payloads = PayloadActivities(sessions)
    graphs = GraphPlanActivities()
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=[TriggerWorkflow, RunWorkflow],
        activities=[
            sources.run_source,
            http.http_request,
            graphs.plan_graph,
            recovery.recover_trigger,
            recovery.wait_run,
            payloads.load_payload,
            payloads.spill_events,
            payloads.unspill_events,
        ],
        max_concurrent_activities=settings.worker_max_concurrent_activities,
        max_concurrent_workflow_tasks=settings.worker_max_concurrent_workflow_tasks,
        max_concurrent_workflow_task_polls=settings.worker_workflow_task_pollers,
        max_concurrent_activity_task_polls=settings.worker_activity_task_pollers,
    )
