"""How the trigger workflow starts one run per accepted event: the child's id, type, queue
and input, the checks that keep the server from refusing it, and what happens when a start
fails. A mixin of ``TriggerWorkflow`` (workflow code: deterministic)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.workflow import ChildWorkflowCancellationType, ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from triggers.contracts.metrics import STAGE_RUN_ID
    from triggers.contracts.names import (
        LOAD_PAYLOAD_ACTIVITY,
        RUN_WORKFLOW_TYPE,
        TRIGGER_ID,
        TRIGGER_OWNER,
        TRIGGER_PROVIDER,
    )
    from triggers.contracts.payloads import LoadPayloadInput, LoadPayloadResult
    from triggers.contracts.trigger import StartFailure, TriggerSpec, TriggerState
    from triggers.core.conditions import TriggerInfo, decide_run
    from triggers.core.events import Event, Verdict, log_fields, run_workflow_id
    from workflows import health, intake, metering, observe

CONDITION_ERRORS_KEPT = 20
START_FAILURES_KEPT = 100


def _outcome_retrieved(handle: asyncio.Future[Any]) -> None:
    if not handle.cancelled():
        handle.exception()


class RunStarts:
    """The run-starting half of the trigger workflow; its state lives on the workflow."""

    _spec: TriggerSpec
    _state: TriggerState
    _in_flight: int
    _runs_running: int
    _starting: dict[str, Event]

    def _decide(self, event: Event) -> Verdict:
        """An event that came without a verdict (signalled by an older API or worker):
        decided here, by the same pure function as the intake and the dry run."""
        spec = self._spec
        mapping = spec.target.input if spec.target.kind == "workflow" else None
        if not spec.condition and not mapping:
            return Verdict("passed", counted=False, config_version=spec.config_version)
        info = TriggerInfo(id=spec.trigger_id, name=spec.name, provider=spec.provider)
        decision = decide_run(spec.condition, mapping, event, info)
        counted = bool(spec.condition) or decision.outcome.result == "error"
        return intake.verdict_of(decision, counted=counted, config_version=spec.config_version)

    def _count(self, verdict: Verdict, event: Event) -> None:
        filtered = self._state.filtered
        filtered[verdict.result] = filtered.get(verdict.result, 0) + 1
        metering.filtered(self._spec.provider, self._spec.trigger_id, verdict.result)
        observe.condition(self._spec, event, verdict)
        if verdict.result == "error":
            errors = self._state.condition_errors
            errors.append({"event_id": event.id, "error": verdict.error or "error"})
            del errors[:-CONDITION_ERRORS_KEPT]

    async def _start_run(self, event: Event) -> None:
        guarded = self._spec.overlap == "skip"
        try:
            if event.verdict is None:
                # Carried from a run of older code, which decided only at the start.
                event.verdict = self._decide(event)
                if event.verdict.counted:
                    self._count(event.verdict, event)
                if event.verdict.result != "passed":
                    return
            if guarded and self._runs_running:
                self._state.skipped += 1
                with observe.starting(self._spec, event) as start:
                    start.outcome = "skipped"
                return
            if guarded:
                self._runs_running += 1  # reserved before the start, so concurrent starts see it
            with observe.starting(self._spec, event) as start:
                try:
                    handle = await self._start_child(event)
                except WorkflowAlreadyStartedError:
                    start.outcome = "deduplicated"
                    self._state.duplicates += 1
                    metering.duplicate(self._spec.provider, self._spec.trigger_id, STAGE_RUN_ID)
                    if guarded:
                        self._runs_running -= 1
                    return
                except Exception as err:
                    # Anything else (a refused start, missing data): recorded, the trigger
                    # goes on.
                    self._fail_start(event, err)
                    if guarded:
                        self._runs_running -= 1
                    return
                start.outcome = "started"
        finally:
            self._in_flight -= 1
            self._starting.pop(event.key, None)
        self._state.runs_started += 1
        health.run_started(self._state)
        metering.run_started(self._spec.provider, self._spec.trigger_id, event.time)
        if not guarded:
            # Nobody awaits an abandoned run's handle: retrieve its outcome, or asyncio logs
            # every failed or terminated run as "exception was never retrieved".
            handle.add_done_callback(_outcome_retrieved)
            return
        if guarded:
            self._state.guard_run_id = handle.id
            try:
                await handle
            except Exception:
                pass  # a failed run is the run's business; the guard only needs it over
            finally:
                self._runs_running -= 1
                self._state.guard_run_id = None

    def _fail_start(self, event: Event, err: BaseException) -> None:
        message = str(getattr(err, "message", "") or err) or type(err).__name__
        self._state.failed_starts += 1
        metering.start_failed(self._spec.provider, self._spec.trigger_id)
        failures = self._state.start_failures
        failures.append(
            StartFailure(
                event_id=event.id,
                event_key=event.key,
                error=message[:500],
                at=workflow.now().isoformat(),
                data_ref=event.data_ref,
            )
        )
        del failures[:-START_FAILURES_KEPT]
        workflow.logger.warning(
            "run for event %s not started: %s",
            event.id,
            message[:200],
            extra=log_fields(self._spec.trigger_id, self._spec.provider, event)
            | {"outcome": "failed"},
        )

    async def _start_child(self, event: Event) -> workflow.ChildWorkflowHandle[Any, Any]:
        spec = self._spec
        verdict = event.verdict or Verdict("passed", counted=False)
        run_id = run_workflow_id(spec.trigger_id, event.key)
        if spec.target.kind == "workflow" and spec.target.workflow_type:
            workflow_type = spec.target.workflow_type
            task_queue = spec.target.task_queue or workflow.info().task_queue
            # A user's own workflow gets its input whole: large data is loaded here, so it
            # is in this history too (the README states the cost).
            first: Any = await self._user_input(event, verdict)
        else:
            workflow_type = RUN_WORKFLOW_TYPE
            task_queue = workflow.info().task_queue
            # Built-in runs resolve the claim check themselves.
            first = intake.run_event(event)
        refusal = intake.start_refusal(
            run_id=run_id,
            workflow_type=workflow_type,
            task_queue=task_queue,
            size=(
                workflow.payload_converter().to_payload(first).ByteSize()
                if spec.target.kind == "workflow"
                else 0
            ),
        )
        if refusal is not None:
            raise ValueError(refusal)
        # A graph run gets its graph as a second argument: the event stays the run's first,
        # visible input, and runs of kind "run" keep their one-argument input.
        args: list[Any] = [first]
        memo: dict[str, Any] = {"trigger_name": spec.name, "event_id": event.id}
        if spec.target.kind == "graph" and spec.target.graph is not None:
            args.append(spec.target.graph)
            if spec.target.principal is not None:
                # Whose allowlist the graph's requests use goes with the graph it belongs
                # to: a later change of either cannot pair this run's graph with another's.
                memo["target_principal"] = spec.target.principal
        return await workflow.start_child_workflow(
            workflow_type,
            args=args,
            id=run_id,
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            # ABANDON: the default TERMINATE would also fire on continue-as-new.
            parent_close_policy=ParentClosePolicy.ABANDON,
            cancellation_type=ChildWorkflowCancellationType.ABANDON,
            memo=memo,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(TRIGGER_ID, spec.trigger_id),
                    SearchAttributePair(TRIGGER_PROVIDER, spec.provider),
                    SearchAttributePair(TRIGGER_OWNER, spec.owner),
                ]
            ),
            static_summary=f"{event.type} {event.key}"[:200],
        )

    async def _user_input(self, event: Event, verdict: Verdict) -> Any:
        if verdict.mapped:
            if verdict.input_ref is None:
                return verdict.input
            return await self._load(verdict.input_ref)
        if event.data_ref is None:
            return intake.run_event(event)
        data = await self._load(event.data_ref)
        return intake.run_event(replace(event, data=data, data_ref=None))

    async def _load(self, ref: str) -> Any:
        result = await workflow.execute_activity(
            LOAD_PAYLOAD_ACTIVITY,
            LoadPayloadInput(ref=ref),
            result_type=LoadPayloadResult,
            start_to_close_timeout=intake.LOAD_TIMEOUT,
            summary="load event data",
        )
        return result.data
