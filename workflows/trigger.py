"""TriggerWorkflow ``trigger:<trigger-id>``: receives events, starts one run per event key.

Events arrive by the ``events`` signal: from the API (webhooks) or from the trigger's own
source loop, an activity this workflow runs for providers such as cron and polling.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import (
    RetryPolicy,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    WorkflowAlreadyStartedError,
)
from temporalio.workflow import (
    ActivityCancellationType,
    ActivityHandle,
    ChildWorkflowCancellationType,
    ParentClosePolicy,
)

with workflow.unsafe.imports_passed_through():
    # Passed through: the CEL parser touches the file system when it is first imported.
    from triggers.conditions import ConditionOutcome, RunDecision, TriggerInfo, decide_run
    from triggers.events import Event, EventBatch, run_workflow_id
    from triggers.sources import CONFIG_ERROR, SourceInput, SourceResult
    from workflows.types import (
        RUN_WORKFLOW_TYPE,
        TRIGGER_ID,
        TRIGGER_OWNER,
        TRIGGER_PROVIDER,
        RecentEvent,
        RecentEvents,
        TriggerInput,
        TriggerSpec,
        TriggerState,
        TriggerStatus,
    )

# Child starts awaiting the server at once; bounds one workflow task's command count.
MAX_IN_FLIGHT = 200
RECENT_KEYS = 500
CONDITION_ERRORS_KEPT = 20
# The dry run's ``last`` reaches this far back; data larger than this is not kept (bytes).
RECENT_EVENTS_KEPT = 20
RECENT_EVENT_DATA_LIMIT = 16 * 1024
# Far below the server's hard limit (50K events), far above its suggestion (4K).
FORCE_CONTINUE_AT = 20_000
SOURCE_LIFETIME = timedelta(minutes=5)
# The SDK sends heartbeats at most every 0.8 x this; that bounds how fast a config change
# (a cancel) reaches the loop and how fast a dead worker is noticed.
SOURCE_HEARTBEAT_TIMEOUT = timedelta(seconds=10)
# Seconds: the longest backoff between attempts of a failing source.
SOURCE_BACKOFF_CAP = 300.0


@workflow.defn(name="TriggerWorkflow")
class TriggerWorkflow:
    """One per enabled trigger. Each event becomes a child run
    ``run:<trigger-id>:<event-key>`` unless that run already exists."""

    @workflow.init
    def __init__(self, inp: TriggerInput) -> None:
        self._spec: TriggerSpec = inp.spec
        self._state: TriggerState = inp.state or TriggerState()
        self._recent: dict[str, None] = dict.fromkeys(self._state.recent_keys)
        self._in_flight = 0
        self._runs_running = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._source: ActivityHandle[SourceResult] | None = None
        self._source_running = False
        self._failed_version: int | None = None

    @workflow.run
    async def run(self, inp: TriggerInput) -> TriggerState:
        if self._spec.source:
            self._spawn(self._source_loop())
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
                self._in_flight += 1
                self._spawn(self._start_run(self._state.pending.pop(0)))
            if self._finished():
                await workflow.wait_condition(workflow.all_handlers_finished)
                if self._finished():
                    self._state.status = "disabled"
                    return self._state

    def _ready_to_continue(self) -> bool:
        """Continue-as-new once suggested and nothing is mid-flight (accepted events started,
        the source loop between activities, no overlap-guarded run running), so the next
        run's input stays small; past a hard mark, carry what is still pending instead."""
        info = workflow.info()
        if not info.is_continue_as_new_suggested() or self._in_flight or self._source_running:
            return False
        forced = info.get_current_history_length() > FORCE_CONTINUE_AT
        return forced or (not self._state.pending and not self._runs_running)

    def _finished(self) -> bool:
        """Disabled, and everything it accepted has been started."""
        return (
            not self._spec.enabled
            and not self._state.pending
            and self._in_flight == 0
            and not self._source_running
        )

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @workflow.signal(name="events")
    def on_events(self, batch: EventBatch) -> None:
        if batch.events:
            self._state.events_received += len(batch.events)
            self._state.last_event_time = workflow.now().isoformat()
        if batch.cursor is not None:
            self._state.cursor = batch.cursor
        for event in batch.events:
            if event.key in self._recent:
                self._state.duplicates += 1
                continue
            self._remember(event.key)
            self._keep_recent(event)
            self._state.pending.append(event)

    @workflow.signal(name="configure")
    def on_configure(self, spec: TriggerSpec) -> None:
        if spec.config_version < self._spec.config_version:
            return  # an older update delivered late
        if spec.name != self._spec.name:
            workflow.upsert_memo({"trigger_name": spec.name})
        changed = spec.config_version != self._spec.config_version
        self._spec = spec
        if changed and self._source is not None:
            # The source restarts with the new config (or stops, when disabled).
            self._source.cancel()

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
            skipped=s.skipped,
            filtered=dict(s.filtered),
            condition_errors=list(s.condition_errors),
            status=s.status if self._spec.enabled else "disabled",
            consecutive_errors=s.consecutive_errors,
            next_retry_at=s.next_retry_at,
            cursor=s.cursor,
            next_at=s.next_at,
            runs_in_flight=self._runs_running,
            pending=len(s.pending),
            last_event_time=s.last_event_time,
            last_error=s.last_error,
            continued_as_new=s.continued_as_new,
            history_length=workflow.info().get_current_history_length(),
        )

    @workflow.query(name="recent_events")
    def recent_events(self) -> RecentEvents:
        return RecentEvents(events=list(self._state.recent_events))

    def _keep_recent(self, event: Event) -> None:
        try:
            size = len(json.dumps(event.data, separators=(",", ":")).encode())
        except (TypeError, ValueError):
            size = RECENT_EVENT_DATA_LIMIT + 1
        cut = size > RECENT_EVENT_DATA_LIMIT
        kept = self._state.recent_events
        kept.append(
            RecentEvent(
                id=event.id,
                key=event.key,
                type=event.type,
                time=event.time,
                source=event.source,
                subject=event.subject,
                data=None if cut else event.data,
                headers=dict(event.headers),
                data_truncated=cut,
                data_size=size,
            )
        )
        del kept[:-RECENT_EVENTS_KEPT]

    def _remember(self, key: str) -> None:
        self._recent[key] = None
        if len(self._recent) > 2 * RECENT_KEYS:
            # Keep the newest keys (dicts keep insertion order); the run ID is the real dedup.
            self._recent = dict.fromkeys(list(self._recent)[-RECENT_KEYS:])

    # -- the source loop ---------------------------------------------------------------

    async def _source_loop(self) -> None:
        while self._spec.enabled and not self._state.source_finished:
            if workflow.info().is_continue_as_new_suggested():
                return  # the main loop continues as new; the next run resumes here
            version = self._spec.config_version
            if self._failed_version == version:
                await self._config_change(version)
                continue
            if self._state.resume_at and not await self._park(version):
                continue
            await self._run_source_once(version)

    async def _config_change(self, version: int, timeout: timedelta | None = None) -> None:
        await workflow.wait_condition(
            lambda: not self._spec.enabled or self._spec.config_version != version,
            timeout=timeout,
        )

    async def _park(self, version: int) -> bool:
        """Sleep on a durable timer until the source is due again; False if woken early
        by a config change or a disable."""
        assert self._state.resume_at is not None
        delay = datetime.fromisoformat(self._state.resume_at) - workflow.now()
        if delay.total_seconds() > 0:
            try:
                await self._config_change(version, timeout=delay)
                self._state.resume_at = None
                return False
            except TimeoutError:
                pass
        self._state.resume_at = None
        return True

    async def _run_source_once(self, version: int) -> None:
        if self._state.status == "failed":
            # That failure belonged to an older config.
            self._state.status, self._state.last_error = "active", None
        self._source_running = True
        self._source = workflow.start_activity(
            "run_source",
            SourceInput(
                trigger_id=self._spec.trigger_id,
                config_version=version,
                # Every emit and checkpoint signals its cursor, so this is the newest one.
                cursor=self._state.cursor,
                lifetime_seconds=SOURCE_LIFETIME.total_seconds(),
            ),
            result_type=SourceResult,
            start_to_close_timeout=SOURCE_LIFETIME + timedelta(minutes=2),
            # Always set a heartbeat timeout on a long-running activity: it is how a dead
            # worker is noticed and how cancellation reaches the activity.
            heartbeat_timeout=SOURCE_HEARTBEAT_TIMEOUT,
            # This workflow retries, not the server: a new attempt then starts from the
            # workflow's cursor, and errors and backoff are visible in its state.
            retry_policy=RetryPolicy(maximum_attempts=1),
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            summary="source loop",
        )
        try:
            result = await self._source
        except ActivityError as err:
            cause = err.cause
            if isinstance(cause, CancelledError):
                return
            if isinstance(cause, ApplicationError) and cause.type == CONFIG_ERROR:
                self._state.status = "failed"
                self._state.last_error = cause.message
                self._failed_version = version
                return
            await self._retry_later(version, cause or err)
            return
        finally:
            self._source = None
            self._source_running = False
        if result.cursor is not None:
            self._state.cursor = result.cursor
        self._state.next_at = result.next_at
        self._state.resume_at = result.resume_at
        self._state.status = "finished" if result.finished else "active"
        self._state.last_error = None
        self._state.consecutive_errors = 0
        self._state.source_finished = result.finished

    async def _retry_later(self, version: int, error: BaseException) -> None:
        """Transient failure (or a dead worker): capped exponential backoff with jitter, or
        the source's own Retry-After; a config change or a disable cuts the wait short."""
        self._state.consecutive_errors += 1
        self._state.status = "degraded"
        self._state.last_error = (
            error.message if isinstance(error, ApplicationError | ActivityError) else str(error)
        ) or type(error).__name__
        hinted = error.next_retry_delay if isinstance(error, ApplicationError) else None
        if hinted is None:
            ceiling = min(SOURCE_BACKOFF_CAP, 2.0 ** (self._state.consecutive_errors - 1))
            hinted = timedelta(seconds=ceiling * (0.5 + 0.5 * workflow.random().random()))
        self._state.next_retry_at = (workflow.now() + hinted).isoformat()
        try:
            await self._config_change(version, timeout=hinted)
        except TimeoutError:
            pass
        self._state.next_retry_at = None

    # -- runs ----------------------------------------------------------------------------

    def _decide(self, event: Event) -> RunDecision:
        """The trigger's condition and its target's input mapping, evaluated here
        (deterministic, no I/O) by the same pure function as the dry run; an error drops
        the event and is recorded with its id, never blocking later events."""
        spec = self._spec
        mapping = spec.target.input if spec.target.kind == "workflow" else None
        if not spec.condition and not mapping:
            return RunDecision(ConditionOutcome("passed", None, event.id))
        info = TriggerInfo(id=spec.trigger_id, name=spec.name, provider=spec.provider)
        decision = decide_run(spec.condition, mapping, event, info)
        outcome_result, error = decision.outcome.result, decision.outcome.error
        if not spec.condition and outcome_result != "error":
            return decision  # no condition: only mapping errors are counted
        filtered = self._state.filtered
        filtered[outcome_result] = filtered.get(outcome_result, 0) + 1
        workflow.metric_meter().create_counter(
            "triggers_events_filtered_total", "Condition outcomes"
        ).add(1, {"provider": spec.provider, "result": outcome_result})
        if outcome_result == "error":
            errors = self._state.condition_errors
            errors.append({"event_id": event.id, "error": error or "error"})
            del errors[:-CONDITION_ERRORS_KEPT]
        return decision

    async def _start_run(self, event: Event) -> None:
        guarded = self._spec.overlap == "skip"
        try:
            decision = self._decide(event)
            if not decision.would_start:
                return
            if guarded and self._runs_running:
                self._state.skipped += 1
                return
            if guarded:
                self._runs_running += 1  # reserved before the start, so concurrent starts see it
            try:
                handle = await self._start_child(event, decision)
            except WorkflowAlreadyStartedError:
                self._state.duplicates += 1
                if guarded:
                    self._runs_running -= 1
                return
        finally:
            self._in_flight -= 1
        self._state.runs_started += 1
        workflow.metric_meter().create_counter(
            "triggers_runs_started_total", "Runs started by triggers"
        ).add(1, {"provider": self._spec.provider})
        if guarded:
            try:
                await handle
            except Exception:
                pass  # a failed run is the run's business; the guard only needs it over
            finally:
                self._runs_running -= 1

    async def _start_child(
        self, event: Event, decision: RunDecision
    ) -> workflow.ChildWorkflowHandle[Any, Any]:
        spec = self._spec
        if spec.target.kind == "workflow" and spec.target.workflow_type:
            workflow_type = spec.target.workflow_type
            task_queue = spec.target.task_queue or workflow.info().task_queue
        else:
            workflow_type = RUN_WORKFLOW_TYPE
            task_queue = workflow.info().task_queue
        # A graph run gets its graph as a second argument: the event stays the run's first,
        # visible input, and runs of kind "run" keep their one-argument input.
        args: list[Any] = [decision.input if decision.mapped else event]
        if spec.target.kind == "graph" and spec.target.graph is not None:
            args.append(spec.target.graph)
        return await workflow.start_child_workflow(
            workflow_type,
            args=args,
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
