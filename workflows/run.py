"""RunWorkflow ``run:<trigger-id>:<event-key>``: the built-in run target; records the event."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from triggers.events import Event
    from workflows.types import RunResult


@workflow.defn(name="RunWorkflow")
class RunWorkflow:
    """The event is this run's input, so it is recorded in the run's history and visible in
    the Web UI; the result summarises it."""

    @workflow.run
    async def run(self, event: Event) -> RunResult:
        workflow.logger.info("run for event %s (%s)", event.id, event.type)
        trigger_id = workflow.info().workflow_id.split(":", 2)[1]
        return RunResult(
            event_id=event.id,
            event_key=event.key,
            event_type=event.type,
            trigger_id=trigger_id,
            recorded_at=workflow.now().isoformat(),
        )
