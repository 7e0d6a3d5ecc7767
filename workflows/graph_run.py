"""Executes a run graph inside ``RunWorkflow``: the pure plan decides, the workflow acts.

The loop: plan the graph over the event's items with the results known so far; take the
first node (topological order) whose calls have not been made; make them; record what the
node produced; plan again. The run ends when every planned call has been made. Planning is
pure and deterministic (CEL through ``celpy``, no clock, no I/O), so replay gives the same
plan and the same commands.

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
        EVENT_ERROR,
        HTTP_NON_RETRYABLE,
        HTTP_REQUEST_ACTIVITY,
        NODE_FAILED,
    )
    from triggers.contracts.run import HttpRequestInput, HttpResponse, NodeOutcome
    from triggers.core.conditions import TriggerInfo
    from triggers.core.events import Event
    from triggers.core.graph import Call, Graph, GraphError, Plan, items_of, parse_graph, plan

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
        try:
            self._graph: Graph = parse_graph(graph_json)
        except GraphError as err:
            # Checked at create/update time; a graph that fails here cannot run at all.
            raise ApplicationError(f"invalid graph: {err}", non_retryable=True) from None
        self._event = event
        self._trigger = trigger
        self._principal = principal
        self._items = items_of(event)
        self._results: dict[str, list[Any]] = {}
        self._done: dict[str, int] = {}

    async def execute(self) -> tuple[list[NodeOutcome], int]:
        while True:
            current = self._plan()
            pending = [call for call in current.calls if call.node_id not in self._done]
            if not pending:
                return self._outcomes(current), sum(self._done.values())
            node_id = pending[0].node_id
            calls = [call for call in pending if call.node_id == node_id]
            produced = await self._perform(node_id, calls)
            self._done[node_id] = len(calls)
            if produced is not None:
                self._results[node_id] = produced

    def _plan(self) -> Plan:
        current = plan(self._graph, self._items, self._event, self._trigger, results=self._results)
        if current.error is not None:
            raise ApplicationError(current.error, type=EVENT_ERROR, non_retryable=True)
        return current

    def _outcomes(self, final: Plan) -> list[NodeOutcome]:
        return [
            NodeOutcome(
                node_id=run.node_id,
                type=run.type,
                items_in=len(run.items_in),
                items_out=len(run.items_out),
                errors=[f"{e.index}: {e.message}" for e in run.errors],
                calls=self._done.get(run.node_id, 0),
            )
            for run in final.nodes
        ]

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
