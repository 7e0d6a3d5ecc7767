"""Activities that let a trigger workflow resume what an earlier run of it held.

``recover_trigger``: a trigger workflow that begins without state finds the previous run of
``trigger:<id>`` and resumes from it: a completed run (disabled, then enabled again) from
its result; a terminated, failed or timed-out one from its state as a query replays it, or,
when that fails, from its last input plus every event signalled to it. Nothing it accepted
is lost and its counters continue; runs it had started are not started twice (run IDs).

``wait_run``: the overlap guard across continue-as-new waits for a run it can no longer
await as a child.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from triggers.contracts.names import (
    CONFIGURE_SIGNAL,
    EVENTS_SIGNAL,
    RECOVER_TRIGGER_ACTIVITY,
    SNAPSHOT_QUERY,
    WAIT_RUN_ACTIVITY,
)
from triggers.contracts.trigger import (
    EventBatch,
    RecoverInput,
    RecoverResult,
    Recovery,
    TriggerInput,
    TriggerSpec,
    TriggerState,
    WaitRunInput,
)
from triggers.core.events import trigger_workflow_id

log = logging.getLogger("triggers.recovery")

# Visibility is searched for this many earlier runs at most (newest first).
_SCAN = 50


class RecoveryActivities:
    def __init__(self, client: Client) -> None:
        self._client = client

    @activity.defn(name=RECOVER_TRIGGER_ACTIVITY)
    async def recover_trigger(self, inp: RecoverInput) -> RecoverResult:
        previous = await self._previous_run(inp)
        now = datetime.now(UTC).isoformat()
        if previous is None or previous.status is None:
            return RecoverResult(state=None, recovery=None)
        status = previous.status.name.lower()
        handle = self._client.get_workflow_handle(previous.id, run_id=previous.run_id)
        if previous.status == WorkflowExecutionStatus.COMPLETED:
            done = self._client.get_workflow_handle(
                previous.id, run_id=previous.run_id, result_type=TriggerState
            )
            state = await done.result()
            # A completed run ended by a disable: resuming it is the normal path, not news.
            return RecoverResult(state=state, recovery=None)
        try:
            state = await handle.query(SNAPSHOT_QUERY, result_type=TriggerState)
            source, error = "query", None
        except Exception as exc:  # a history the code cannot replay: rebuild it instead
            log.warning("trigger %s: snapshot query failed (%s)", inp.trigger_id, exc)
            state, source, error = await self._from_history(previous), "history", str(exc)
        recovery = Recovery(
            at=now,
            previous_run_id=previous.run_id,
            previous_status=status,
            source=source,
            pending_recovered=len(state.pending),
            error=error[:300] if error else None,
        )
        log.warning(
            "trigger %s: previous run %s was %s; resumed from its %s with %d pending events",
            inp.trigger_id,
            previous.run_id,
            status,
            source,
            len(state.pending),
        )
        return RecoverResult(state=state, recovery=recovery)

    async def _previous_run(self, inp: RecoverInput) -> WorkflowExecution | None:
        """The latest closed run of this trigger's workflow other than ``inp.run_id``."""
        wid = trigger_workflow_id(inp.trigger_id)
        latest: WorkflowExecution | None = None
        seen = 0
        async for wf in self._client.list_workflows(f'WorkflowId = "{wid}"'):
            seen += 1
            if seen > _SCAN:
                break
            if wf.run_id == inp.run_id or wf.close_time is None:
                continue
            if wf.status == WorkflowExecutionStatus.CONTINUED_AS_NEW:
                continue  # its successor closed later (or is this run's predecessor chain)
            if latest is None or (latest.close_time and wf.close_time > latest.close_time):
                latest = wf
        return latest

    async def _from_history(self, previous: WorkflowExecution) -> TriggerState:
        """The run's input state plus every event batch signalled to it, in order."""
        handle = self._client.get_workflow_handle(previous.id, run_id=previous.run_id)
        converter = self._client.data_converter
        state = TriggerState()
        spec: TriggerSpec | None = None
        seen: set[str] = set()
        async for event in handle.fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
                attrs = event.workflow_execution_started_event_attributes
                (inp,) = await converter.decode(attrs.input.payloads, [TriggerInput])
                state, spec = inp.state or TriggerState(), inp.spec
                seen = {e.key for e in state.pending} | set(state.recent_keys)
                continue
            if event.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
                continue
            signalled = event.workflow_execution_signaled_event_attributes
            if signalled.signal_name == CONFIGURE_SIGNAL:
                (newer,) = await converter.decode(signalled.input.payloads, [TriggerSpec])
                if spec is None or newer.config_version >= spec.config_version:
                    spec = newer
                continue
            if signalled.signal_name != EVENTS_SIGNAL:
                continue
            (batch,) = await converter.decode(signalled.input.payloads, [EventBatch])
            if batch.config_version is not None and (
                spec is None or not spec.enabled or batch.config_version != spec.config_version
            ):
                continue  # the workflow refused these too (a stale source)
            if batch.cursor is not None:
                state.cursor = batch.cursor
            for ev in batch.events:
                if ev.key in seen:
                    continue
                seen.add(ev.key)
                state.events_received += 1
                if ev.verdict is None or ev.verdict.result == "passed":
                    state.pending.append(ev)
        return state

    @activity.defn(name=WAIT_RUN_ACTIVITY)
    async def wait_run(self, inp: WaitRunInput) -> None:
        handle = self._client.get_workflow_handle(inp.run_id)
        while True:
            activity.heartbeat()
            try:
                desc = await handle.describe()
            except RPCError as exc:
                if exc.status == RPCStatusCode.NOT_FOUND:
                    return
                raise
            if desc.status != WorkflowExecutionStatus.RUNNING:
                return
            await asyncio.sleep(inp.poll_seconds)
