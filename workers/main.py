"""The worker process: trigger workflows, built-in runs and their activities."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.worker import Worker

from triggers.settings import Settings
from workflows.run import RunWorkflow
from workflows.trigger import TriggerWorkflow


def build_worker(client: Client, settings: Settings, *, task_queue: str | None = None) -> Worker:
    """A worker for the triggers task queue.

    Pollers are raised above the SDK defaults: run starts are bounded by how fast workflow
    tasks are picked up, not by CPU.
    """
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=[TriggerWorkflow, RunWorkflow],
        max_concurrent_workflow_tasks=settings.worker_max_concurrent_workflow_tasks,
        max_concurrent_workflow_task_polls=settings.worker_workflow_task_pollers,
        max_concurrent_activity_task_polls=settings.worker_activity_task_pollers,
    )
