"""TriggerWorkflow ``trigger:<trigger-id>``: receives events, starts one run per event key.

Events arrive by the ``events`` signal: from the API (webhooks) or from the trigger's own
source loop, an activity this workflow runs for providers such as cron and polling. Each
event comes with its verdict (condition and input mapping, decided where it entered) and
with large data by reference, so a workflow task does bounded work and the history stays
small; the workflow continues as new by history length, size and signal count, carrying
what is still pending.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import replace
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    # Passed through: the CEL parser touches the file system when it is first imported.
    # Imported here, not only by the modules below, so that the sandbox knows them: the
    # data converter resolves their dataclasses' type hints through the sandbox's modules.
    import triggers.contracts.payloads  # noqa: F401
    import triggers.contracts.source  # noqa: F401
    from triggers.contracts.metrics import STAGE_RECENT
    from triggers.contracts.names import (
        CONFIGURE_SIGNAL,
        EVENTS_SIGNAL,
        RECENT_EVENTS_QUERY,
        RECOVER_TRIGGER_ACTIVITY,
        SNAPSHOT_QUERY,
        STATUS_QUERY,
        TRIGGER_ID,
        TRIGGER_WORKFLOW_TYPE,
        WAIT_RUN_ACTIVITY,
    )
    from triggers.contracts.trigger import (
        EventBatch,
        RecentEvents,
        RecoverInput,
        RecoverResult,
        TriggerInput,
        TriggerSpec,
        TriggerState,
        TriggerStatus,
        WaitRunInput,
    )
    from triggers.core.events import Event
    from workflows import backlog, health, intake, metering, observe, streams
    from workflows.run_starts import RunStarts
    from workflows.source_loop import SourceLoop

# Child starts awaiting the server at once; bounds one workflow task's command count.
MAX_IN_FLIGHT = 200
RECENT_KEYS = 500
RECOVERIES_KEPT = 10
# The dry run's ``last`` reaches this far back.
RECENT_EVENTS_KEPT = 20
# Continue as new when the server suggests it (by default at 4 Ki events or 4 MiB) or,
# whatever the server's settings, at these marks: far below its hard limits (50 Ki events,
# 50 MiB, 10 Ki signals per run). See README "Bounds".
CONTINUE_AT_LENGTH = 8_000
CONTINUE_AT_BYTES = 8 * 1024 * 1024
CONTINUE_AT_SIGNALS = 4_000
# What continue-as-new carries inline; the rest of a backlog is spilled to the database.
CARRY_MAX_EVENTS = 500
CARRY_MAX_BYTES = 512 * 1024
# Version marker: runs of this workflow that began after it resume their predecessor.
RECOVERY_PATCH = "recover-closed-run"
_SHORT = timedelta(seconds=30)


@workflow.defn(name=TRIGGER_WORKFLOW_TYPE)
class TriggerWorkflow(RunStarts):
    """One per enabled trigger. Each event becomes a child run
    ``run:<trigger-id>:<event-key>`` unless that run already exists."""

    @workflow.init
    def __init__(self, inp: TriggerInput) -> None:
        self._spec: TriggerSpec = inp.spec
        self._state: TriggerState = inp.state or TriggerState()
        self._recent: dict[str, None] = dict.fromkeys(self._state.recent_keys)
        self._in_flight = 0
        self._runs_running = 0
        self._signals = 0
        self._tasks: set[asyncio.Task[None]] = set()
        # Events whose start is in flight: a closed run's snapshot still lists them.
        self._starting: dict[str, Event] = {}
        # Batches that arrived while this run was still recovering its predecessor's state.
        self._early: list[EventBatch] | None = [] if inp.state is None else None
        self._continuing = False
        self._long_history = False
        self._source = SourceLoop(self)

    @property
    def spec(self) -> TriggerSpec:
        return self._spec

    @property
    def state(self) -> TriggerState:
        return self._state

    @property
    def continuing(self) -> bool:
        return self._continuing

    @workflow.run
    async def run(self, inp: TriggerInput) -> TriggerState:
        if workflow.info().typed_search_attributes.get(TRIGGER_ID) is None and workflow.patched(
            "trigger-id-search-attribute"
        ):
            # Started by an older API, without it (continue-as-new keeps it from here on).
            workflow.upsert_search_attributes([TRIGGER_ID.value_set(self._spec.trigger_id)])
        # Decided once per run: a push stream's trigger keeps its source connected across
        # more history (see streams.py).
        self._long_history = self._spec.stream and workflow.patched(streams.LONG_HISTORY_PATCH)
        if self._early is not None:
            await self._recover()
        if self._state.guard_run_id:
            self._runs_running += 1
            self._spawn(self._await_guard(self._state.guard_run_id))
        self._start_source()
        while True:
            await workflow.wait_condition(
                lambda: (
                    (bool(self._state.pending) and self._in_flight < MAX_IN_FLIGHT)
                    or self._must_continue()
                    or self._finished()
                    or (not self._state.pending and bool(self._state.spilled_refs))
                )
            )
            if self._must_continue():
                await self._continue_as_new()
            if not self._state.pending and self._state.spilled_refs:
                await backlog.unspill(self._state)
            # A sliding window of child starts: a slow start never holds back the others.
            room = MAX_IN_FLIGHT - self._in_flight
            if room > 0 and self._state.pending:
                batch = self._state.pending[:room]
                del self._state.pending[:room]
                for event in batch:
                    self._in_flight += 1
                    self._starting[event.key] = event
                    self._spawn(self._start_run(event))
            if self._finished():
                await workflow.wait_condition(workflow.all_handlers_finished)
                if self._finished():
                    self._state.status = "disabled"
                    return self._state

    # -- continue-as-new ---------------------------------------------------------------

    def _must_continue(self) -> bool:
        info = workflow.info()
        if self._long_history:
            suggested, at_length = False, streams.CONTINUE_AT_LENGTH
        else:
            suggested, at_length = info.is_continue_as_new_suggested(), CONTINUE_AT_LENGTH
        return (
            self._continuing
            or suggested
            or info.get_current_history_length() > at_length
            or info.get_current_history_size() > CONTINUE_AT_BYTES
            or self._signals > CONTINUE_AT_SIGNALS
        )

    async def _continue_as_new(self) -> None:
        """Stop starting, let the starts in flight and the source activity finish, then
        continue as new carrying what is pending (large data is only referenced), with a
        large backlog spilled to the database. Never waits for the backlog itself."""
        self._continuing = True
        self._source.stop()  # the next run restarts it from the cursor
        await workflow.wait_condition(lambda: self._in_flight == 0 and not self._source.running)
        await workflow.wait_condition(workflow.all_handlers_finished)
        held = len(self._state.pending)
        carry, rest = intake.split_carry(
            self._state.pending[:held], max_events=CARRY_MAX_EVENTS, max_bytes=CARRY_MAX_BYTES
        )
        if rest:
            await backlog.spill(self._state, self._spec.trigger_id, rest)
        # Events signalled while the spill ran are carried too.
        self._state.pending = carry + self._state.pending[held:]
        self._state.continued_as_new += 1
        self._state.recent_keys = list(self._recent)[-RECENT_KEYS:]
        workflow.continue_as_new(TriggerInput(spec=self._spec, state=self._state))

    def _finished(self) -> bool:
        """Disabled, and everything it accepted has been started."""
        return (
            not self._spec.enabled
            and not self._state.pending
            and not self._state.spilled_refs
            and self._in_flight == 0
            and not self._source.running
            and self._early is None
        )

    def _start_source(self) -> None:
        self._accept(streams.release_held(self))
        if self._spec.source and self._spec.enabled and not self._source.alive:
            self._source.alive = True
            self._spawn(self._source.run())

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- recovery ----------------------------------------------------------------------

    async def _recover(self) -> None:
        """A run that began without state (the first start, an enable after the workflow
        completed, or a start after it was terminated or failed) resumes from its
        predecessor: its result, or its state replayed, or its history."""
        if workflow.patched(RECOVERY_PATCH):
            found = await workflow.execute_activity(
                RECOVER_TRIGGER_ACTIVITY,
                RecoverInput(trigger_id=self._spec.trigger_id, run_id=workflow.info().run_id),
                result_type=RecoverResult,
                start_to_close_timeout=timedelta(minutes=2),
                retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=10)),
                summary="resume from the previous run",
            )
            if found.state is not None:
                self._adopt(found.state)
            if found.recovery is not None:
                self._state.recoveries.append(found.recovery)
                del self._state.recoveries[:-RECOVERIES_KEPT]
        early, self._early = self._early or [], None
        for batch in early:
            self.on_events(batch)

    def _adopt(self, state: TriggerState) -> None:
        state.status, state.last_error, state.next_retry_at = "active", None, None
        state.consecutive_errors = 0
        # The source decides again whether it is finished (its config may have changed).
        state.source_finished = False
        self._state = state
        self._recent = dict.fromkeys(state.recent_keys)

    async def _await_guard(self, run_id: str) -> None:
        try:
            await workflow.execute_activity(
                WAIT_RUN_ACTIVITY,
                WaitRunInput(run_id=run_id),
                start_to_close_timeout=timedelta(days=3650),
                heartbeat_timeout=timedelta(seconds=30),
                summary="overlap guard: wait for the previous run",
            )
        finally:
            self._runs_running -= 1
            self._state.guard_run_id = None

    # -- signals and queries -----------------------------------------------------------

    @workflow.signal(name=EVENTS_SIGNAL)
    def on_events(self, batch: EventBatch) -> None:
        self._signals += 1
        if self._early is not None:
            self._early.append(batch)
            return
        # A source's batch of an older config, or of a disabled trigger, is refused (a
        # stream's, acked upstream already, is accepted or held instead: see streams.py).
        if streams.refused(self, batch):
            return
        if batch.source_ok or batch.stream is not None:
            # The source runs fine (a stream's every signal says so): no longer degraded.
            self._source.recovered()
        if batch.cursor is not None:
            health.move_cursor(self._state, batch.cursor)
        if batch.next_at is not None:
            self._state.next_at = batch.next_at
        self._accept(batch.events)

    def _accept(self, events: list[Event]) -> None:
        if events:
            self._state.events_received += len(events)
            self._state.last_event_time = workflow.now().isoformat()
        for event in events:
            if event.key in self._recent:
                self._state.duplicates += 1
                metering.duplicate(self._spec.provider, self._spec.trigger_id, STAGE_RECENT)
                observe.deduplicated(self._spec, event)
                continue
            self._remember(event.key)
            self._keep_recent(event)
            verdict = event.verdict or self._decide(event)
            observe.received(self._spec, event, verdict)
            if verdict.counted:
                self._count(verdict, event)
            if verdict.result == "passed":
                event.verdict = verdict
                self._state.pending.append(event)

    @workflow.signal(name=CONFIGURE_SIGNAL)
    def on_configure(self, spec: TriggerSpec) -> None:
        self._signals += 1
        if spec.config_version < self._spec.config_version:
            return  # an older update delivered late
        if spec.name != self._spec.name:
            workflow.upsert_memo({"trigger_name": spec.name})
        changed = spec.config_version != self._spec.config_version
        self._spec = spec
        if changed:
            # The source restarts with the new config (or stops, when disabled).
            self._source.restart()
        if self._early is None:
            # Enabled again before this run finished: its loop had ended with the disable.
            self._start_source()

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> TriggerStatus:
        s = self._state
        info = workflow.info()
        pending = len(s.pending) + len(self._starting) + s.spilled
        return TriggerStatus(
            trigger_id=self._spec.trigger_id,
            workflow_id=info.workflow_id,
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
            next_at=None if s.status == "finished" else s.next_at,
            runs_in_flight=self._runs_running,
            pending=pending,
            last_event_time=s.last_event_time,
            last_error=s.last_error,
            continued_as_new=s.continued_as_new,
            history_length=info.get_current_history_length(),
            history_size=info.get_current_history_size(),
            failed_starts=s.failed_starts,
            start_failures=list(s.start_failures),
            stale_dropped=s.stale_dropped,
            last_recovery=s.recoveries[-1] if s.recoveries else None,
            stream=replace(s.stream) if s.stream else None,
            held=len(s.held),
            health=health.of(self._spec, s, pending),
        )

    @workflow.query(name=SNAPSHOT_QUERY)
    def snapshot(self) -> TriggerState:
        """The whole state, with the starts in flight back in ``pending``: what a run that
        follows a terminated or failed one resumes from (it may start them again; the run
        IDs keep that from starting anything twice)."""
        s = self._state
        return replace(
            s,
            pending=list(self._starting.values()) + list(s.pending),
            recent_keys=list(self._recent)[-RECENT_KEYS:],
        )

    @workflow.query(name=RECENT_EVENTS_QUERY)
    def recent_events(self) -> RecentEvents:
        return RecentEvents(events=list(self._state.recent_events))

    def _keep_recent(self, event: Event) -> None:
        kept = self._state.recent_events
        kept.append(intake.recent_event(event))
        del kept[:-RECENT_EVENTS_KEPT]

    def _remember(self, key: str) -> None:
        self._recent[key] = None
        if len(self._recent) > 2 * RECENT_KEYS:
            # Keep the newest keys (dicts keep insertion order); the run ID is the real dedup.
            self._recent = dict.fromkeys(list(self._recent)[-RECENT_KEYS:])
