"""RunWorkflow ``run:<trigger-id>:<event-key>``: the built-in run target. It records the
event and, for a ``graph`` target, runs the trigger's graph over the event's items."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    # Imported here, not only by graph_run, so that the sandbox knows them: the data
    # converter resolves the plan step's dataclasses' type hints through its modules.
    import triggers.core.graph  # noqa: F401
    import triggers.core.graph_steps  # noqa: F401
    from triggers.contracts.names import LOAD_PAYLOAD_ACTIVITY, RUN_WORKFLOW_TYPE, TRIGGER_PROVIDER
    from triggers.contracts.payloads import LoadPayloadInput, LoadPayloadResult
    from triggers.contracts.run import RunResult
    from triggers.core.conditions import TriggerInfo
    from triggers.core.events import Event
    from workflows.graph_run import GraphRun


@workflow.defn(name=RUN_WORKFLOW_TYPE)
class RunWorkflow:
    """The event is this run's input, so it is recorded in the run's history and visible in
    the Web UI; the result summarises it (and, for a graph, what each node did)."""

    @workflow.run
    async def run(self, event: Event, graph: dict[str, Any] | None = None) -> RunResult:
        # ``graph`` is a second argument with a default: runs started with the event alone
        # (kind "run", and every history from before graphs) still decode and replay. The SDK
        # uses the type hints only when the argument count matches them, so a one-argument
        # run gets its event as a plain dict: convert it here.
        event = _event(event)
        if event.data_ref is not None:
            # Claim check: large data waits in the database, not in the trigger's history.
            loaded = await workflow.execute_activity(
                LOAD_PAYLOAD_ACTIVITY,
                LoadPayloadInput(ref=event.data_ref),
                result_type=LoadPayloadResult,
                start_to_close_timeout=timedelta(seconds=30),
                summary="load event data",
            )
            event = replace(event, data=loaded.data)
        workflow.logger.info("run for event %s (%s)", event.id, event.type)
        info = workflow.info()
        trigger_id = info.workflow_id.split(":", 2)[1]
        result = RunResult(
            event_id=event.id,
            event_key=event.key,
            event_type=event.type,
            trigger_id=trigger_id,
            recorded_at=workflow.now().isoformat(),
        )
        if graph is not None:
            trigger = TriggerInfo(
                id=trigger_id,
                # The trigger workflow sets both when it starts the run.
                name=str(workflow.memo_value("trigger_name", "")),
                provider=info.typed_search_attributes.get(TRIGGER_PROVIDER) or "",
            )
            # Absent from runs started before target principals: the activity then uses the
            # trigger's current one.
            principal = workflow.memo_value("target_principal", None, type_hint=str)
            run = GraphRun(graph, event, trigger, principal=principal)
            result.nodes, result.calls = await run.execute()
        return result


def _event(value: object) -> Event:
    if isinstance(value, Event):
        return value
    converter = workflow.payload_converter()
    event: Event = converter.from_payload(converter.to_payload(value), Event)
    return event
