"""Executes a run graph inside ``RunWorkflow``: the plan decides, the workflow acts.

The loop: ask for the next planning step (``triggers.core.graph_steps``): the calls up to the
next node the run must wait for; make them; record what that node produced; ask again. The
run ends when a step has no node left to wait for. Planning is CEL over every item at every
node, about 0.2 ms CPU per node and item in celpy (``benchmarks/graph_planning.py``), so
it runs in the local activity ``plan_graph``: the earlier loop planned the whole graph again
after every node, all in one workflow task for a chain of ``log`` nodes, and with a few
dozen nodes held the task past the SDK's deadlock detector (2 s): the run never finished. The
step's result (calls and node outcomes) is recorded in history, so replay does not plan.
Runs that began before this (their histories have no ``graph-plan-activity`` marker) go on
planning inside the workflow, with the same planner: the same commands, in the same order.

What a side-effect node does and what its items become for the nodes after it:

- ``http_request``: the activity ``http_request`` per item (concurrently), summary the node
  id; each item becomes the response ``{"status", "headers", "body", "truncated"}``.
  4xx and (after the retries) 5xx answers are results, not failures; a refused address or a
  request that cannot be made fails the run with an ``ApplicationError`` naming the node.
- ``start_workflow``: a child of the named type per item, ID
  ``<run-id>:<node-id>:<item-index>``; each item becomes the child's result.
- ``delay``: one durable timer for the node (every item waits the same time); items pass.
- ``log``: a line per item in the run's log; items pass.

Each node's outcome is in the run's result (``RunResult.nodes``: items in and out, the
items it could not handle, the calls it made), and each activity, child and timer carries
its node id as summary, so the Web UI's history shows which node made it.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import asdict
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    FailureError,
)

with workflow.unsafe.imports_passed_through():
    from triggers.contracts.names import (
        HTTP_NON_RETRYABLE,
        HTTP_REQUEST_ACTIVITY,
        NODE_FAILED,
        PLAN_GRAPH_ACTIVITY,
    )
    from triggers.contracts.run import (
        HttpRequestInput,
        HttpResponse,
        NodeDone,
        NodeOutcome,
        PlanGraphInput,
        PlanGraphResult,
    )
    from triggers.core.conditions import TriggerInfo
    from triggers.core.events import Event
    from triggers.core.graph import Call, GraphError, Planner, parse_graph
    from triggers.core.graph_steps import PLAN_BUDGET_SECONDS, plan_step

# workflow.patched id: planning in the local activity (see the module docstring).
PLAN_IN_ACTIVITY = "graph-plan-activity"
# Attempts beyond the node's own, for those a stopping (or dying) worker cut short; the
# activity makes the node's last attempt's failure final itself (activities/http_request.py).
_INTERRUPTED_ATTEMPTS = 3
_LOG_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


def node_failed(node_id: str, message: str) -> ApplicationError:
    """Fails the run (never retries the workflow task) with the node's id in the message."""
    return ApplicationError(f"node {node_id!r}: {message}", type=NODE_FAILED, non_retryable=True)


class GraphRun:
    """One graph over one event; ``execute`` performs it and returns each node's outcome."""

    def __init__(
        self,
        graph_json: dict[str, Any],
        event: Event,
        trigger: TriggerInfo,
        *,
        principal: str | None = None,
    ) -> None:
        self._graph_json = graph_json
        self._event = event
        self._trigger = trigger
        self._principal = principal
        self._done: list[NodeDone] = []
        self._outcomes: list[NodeOutcome] = []
        self._calls_made = 0
        # Runs from before PLAN_IN_ACTIVITY keep their planner here, between steps.
        self._planner: Planner | None = None

    async def execute(self) -> tuple[list[NodeOutcome], int]:
        in_activity = workflow.patched(PLAN_IN_ACTIVITY)
        if not in_activity:
            try:
                parse_graph(self._graph_json, bounded=False)
            except GraphError as err:
                raise ApplicationError(f"invalid graph: {err}", non_retryable=True) from None
        while True:
            step = await self._step(in_activity)
            if step.error is not None:
                raise ApplicationError(step.error, type=step.error_type, non_retryable=True)
            self._outcomes.extend(step.outcomes)
            for node_id, group in itertools.groupby(step.calls, key=lambda c: c.node_id):
                calls = list(group)
                produced = await self._perform(node_id, calls)
                self._calls_made += len(calls)
                if node_id == step.waiting:
                    self._done.append(NodeDone(node_id, produced))
            if step.waiting is None:
                return self._outcomes, self._calls_made

    async def _step(self, in_activity: bool) -> PlanGraphResult:
        inp = PlanGraphInput(
            graph=self._graph_json,
            event=self._event,
            trigger=self._trigger,
            done=self._done,
            calls_made=self._calls_made,
            outcomes_known=len(self._outcomes),
        )
        if not in_activity:
            step, self._planner = plan_step(inp, self._planner)
            return PlanGraphResult.of(step)
        # A local activity: its input (the graph, the event, what nodes produced) is not
        # recorded in history, only its result; planning is pure, so running it again after
        # a lost workflow task gives the same result. The budget bounds one step's CPU.
        result: PlanGraphResult = await workflow.execute_local_activity(
            PLAN_GRAPH_ACTIVITY,
            inp,
            result_type=PlanGraphResult,
            start_to_close_timeout=timedelta(seconds=6 * PLAN_BUDGET_SECONDS),
            retry_policy=RetryPolicy(maximum_attempts=3),
            summary="plan graph",
        )
        return result

    async def _perform(self, node_id: str, calls: list[Call]) -> list[Any] | None:
        """Make one node's calls; what its items become, or ``None`` when they pass as is."""
        kind = calls[0].type
        if kind == "http_request":
            return list(await asyncio.gather(*(self._http(call) for call in calls)))
        if kind == "start_workflow":
            return list(await asyncio.gather(*(self._child(call) for call in calls)))
        if kind == "delay":
            # Every item waits the same time: one timer for the node.
            await workflow.sleep(float(calls[0].args["seconds"]), summary=node_id)
            return None
        if kind == "log":
            for call in calls:
                level = _LOG_LEVELS.get(str(call.args["level"]), 20)
                workflow.logger.log(level, "%s: %s", node_id, call.args["message"])
            return None
        raise node_failed(node_id, f"unknown side effect {kind!r}")

    async def _http(self, call: Call) -> dict[str, Any]:
        args = call.args
        attempts = int(args["retries"]) + 1
        timeout = float(args["timeout_seconds"])
        try:
            response = await workflow.execute_activity(
                HTTP_REQUEST_ACTIVITY,
                HttpRequestInput(
                    trigger_id=self._trigger.id,
                    node_id=call.node_id,
                    method=str(args["method"]),
                    url=str(args["url"]),
                    headers=dict(args["headers"]),
                    body=args["body"],
                    timeout_seconds=timeout,
                    attempts=attempts,
                    principal=self._principal,
                ),
                result_type=HttpResponse,
                # The node's timeout bounds the request; the rest is loading the allowlist.
                start_to_close_timeout=timedelta(seconds=timeout + 10),
                retry_policy=RetryPolicy(
                    maximum_attempts=attempts + _INTERRUPTED_ATTEMPTS,
                    initial_interval=timedelta(seconds=1),
                    maximum_interval=timedelta(seconds=30),
                    non_retryable_error_types=list(HTTP_NON_RETRYABLE),
                ),
                summary=call.node_id,
            )
        except ActivityError as err:
            raise node_failed(call.node_id, _message(err)) from None
        return asdict(response)

    async def _child(self, call: Call) -> Any:
        args = call.args
        info = workflow.info()
        try:
            return await workflow.execute_child_workflow(
                str(args["workflow_type"]),
                args["input"],
                id=f"{info.workflow_id}:{call.node_id}:{call.item_index}",
                task_queue=args["task_queue"] or info.task_queue,
                static_summary=call.node_id,
            )
        except ChildWorkflowError as err:
            raise node_failed(call.node_id, _message(err)) from None


def _message(err: ActivityError | ChildWorkflowError) -> str:
    """The innermost failure's message: what the activity or the child said."""
    cause: BaseException = err
    while isinstance(cause, ActivityError | ChildWorkflowError) and cause.cause is not None:
        cause = cause.cause
    if isinstance(cause, FailureError):
        return cause.message or type(cause).__name__
    return str(cause) or type(cause).__name__
