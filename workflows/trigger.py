"""TriggerWorkflow ``trigger:<trigger-id>``: receives events, starts one run per event key."""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.workflow import ChildWorkflowCancellationType, ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from triggers.events import Event, EventBatch, run_workflow_id
    from workflows.types import (
        RUN_WORKFLOW_TYPE,
        TRIGGER_ID,
        TRIGGER_OWNER,
        TRIGGER_PROVIDER,
        TriggerInput,
        TriggerSpec,
        TriggerState,
        TriggerStatus,
    )

# Child starts awaiting the server at once; bounds one workflow task's command count.
MAX_IN_FLIGHT = 200
RECENT_KEYS = 500
# Far below the server's hard limit (50K events), far above its suggestion (4K).
FORCE_CONTINUE_AT = 20_000


@workflow.defn(name="TriggerWorkflow")
class TriggerWorkflow:
    """One per enabled trigger. Events arrive by the ``events`` signal; each becomes a child
    run ``run:<trigger-id>:<event-key>`` unless that run already exists."""

    @workflow.init
    def __init__(self, inp: TriggerInput) -> None:
        self._spec: TriggerSpec = inp.spec
        self._state: TriggerState = inp.state or TriggerState()
        self._recent: dict[str, None] = dict.fromkeys(self._state.recent_keys)
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()

    @workflow.run
    async def run(self, inp: TriggerInput) -> TriggerState:
        while True:
            await workflow.wait_condition(
                lambda: (
                    (bool(self._state.pending) and self._in_flight < MAX_IN_FLIGHT)
                    or self._ready_to_continue()
                    or self._finished()
                )
            )
            if self._ready_to_continue():
                await workflow.wait_condition(workflow.all_handlers_finished)
                self._state.continued_as_new += 1
                self._state.recent_keys = list(self._recent)[-RECENT_KEYS:]
                workflow.continue_as_new(TriggerInput(spec=self._spec, state=self._state))
            # A sliding window of child starts: a slow start never holds back the others.
            while self._state.pending and self._in_flight < MAX_IN_FLIGHT:
                self._launch(self._state.pending.pop(0))
            if self._finished():
                await workflow.wait_condition(workflow.all_handlers_finished)
                if self._finished():
                    return self._state

    def _ready_to_continue(self) -> bool:
        """Continue-as-new once suggested and every accepted event has started, so the next
        run's input stays small; past a hard mark, carry what is still pending instead."""
        info = workflow.info()
        if not info.is_continue_as_new_suggested() or self._in_flight:
            return False
        return not self._state.pending or info.get_current_history_length() > FORCE_CONTINUE_AT

    def _finished(self) -> bool:
        """Disabled, and everything it accepted has been started."""
        return not self._spec.enabled and not self._state.pending and self._in_flight == 0

    def _launch(self, event: Event) -> None:
        self._in_flight += 1
        task = asyncio.create_task(self._start_run(event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @workflow.signal(name="events")
    def on_events(self, batch: EventBatch) -> None:
        self._state.events_received += len(batch.events)
        self._state.last_event_time = workflow.now().isoformat()
        for event in batch.events:
            if event.key in self._recent:
                self._state.duplicates += 1
                continue
            self._remember(event.key)
            self._state.pending.append(event)

    @workflow.signal(name="configure")
    def on_configure(self, spec: TriggerSpec) -> None:
        if spec.config_version < self._spec.config_version:
            return  # an older update delivered late
        if spec.name != self._spec.name:
            workflow.upsert_memo({"trigger_name": spec.name})
        self._spec = spec

    @workflow.query(name="status")
    def status(self) -> TriggerStatus:
        s = self._state
        return TriggerStatus(
            trigger_id=self._spec.trigger_id,
            name=self._spec.name,
            enabled=self._spec.enabled,
            config_version=self._spec.config_version,
            events_received=s.events_received,
            runs_started=s.runs_started,
            duplicates=s.duplicates,
            pending=len(s.pending),
            last_event_time=s.last_event_time,
            last_error=s.last_error,
            continued_as_new=s.continued_as_new,
            history_length=workflow.info().get_current_history_length(),
        )

    def _remember(self, key: str) -> None:
        self._recent[key] = None
        if len(self._recent) > 2 * RECENT_KEYS:
            # Keep the newest keys (dicts keep insertion order); the run ID is the real dedup.
            self._recent = dict.fromkeys(list(self._recent)[-RECENT_KEYS:])

    async def _start_run(self, event: Event) -> None:
        try:
            await self._start_child(event)
        except WorkflowAlreadyStartedError:
            self._state.duplicates += 1
            return
        finally:
            self._in_flight -= 1
        self._state.runs_started += 1
        workflow.metric_meter().create_counter(
            "triggers_runs_started_total", "Runs started by triggers"
        ).add(1, {"provider": self._spec.provider})

    async def _start_child(self, event: Event) -> None:
        spec = self._spec
        if spec.target.kind == "workflow" and spec.target.workflow_type:
            workflow_type = spec.target.workflow_type
            task_queue = spec.target.task_queue or workflow.info().task_queue
        else:
            workflow_type = RUN_WORKFLOW_TYPE
            task_queue = workflow.info().task_queue
        await workflow.start_child_workflow(
            workflow_type,
            event,
            id=run_workflow_id(spec.trigger_id, event.key),
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            # ABANDON: the default TERMINATE would also fire on continue-as-new.
            parent_close_policy=ParentClosePolicy.ABANDON,
            cancellation_type=ChildWorkflowCancellationType.ABANDON,
            memo={"trigger_name": spec.name, "event_id": event.id},
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(TRIGGER_ID, spec.trigger_id),
                    SearchAttributePair(TRIGGER_PROVIDER, spec.provider),
                    SearchAttributePair(TRIGGER_OWNER, spec.owner),
                ]
            ),
            static_summary=f"{event.type} {event.key}"[:200],
        )
