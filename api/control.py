"""Start, reconfigure and stop trigger workflows; the API's only writes to Temporal."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from fastapi import HTTPException, status
from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.service import RPCError, RPCStatusCode

from triggers.contracts.names import (
    CONFIGURE_SIGNAL,
    RECENT_EVENTS_QUERY,
    STATUS_QUERY,
    TRIGGER_ID,
    TRIGGER_OWNER,
    TRIGGER_PROVIDER,
    TRIGGER_WORKFLOW_TYPE,
)
from triggers.contracts.trigger import (
    EventBatch,
    RecentEvent,
    RecentEvents,
    RunTarget,
    TriggerInput,
    TriggerSpec,
    TriggerStatus,
)
from triggers.core.events import trigger_workflow_id
from triggers.infra.models import Trigger
from triggers.infra.temporal import SearchAttributesMissing, missing_search_attributes
from triggers.providers import find_provider

# Why a call to Temporal failed, in words a caller can act on. Other statuses (a namespace
# that does not exist, missing search attributes, no permission...) are "refused".
_CAUSES = {
    RPCStatusCode.UNAVAILABLE: "Temporal is unreachable",
    RPCStatusCode.DEADLINE_EXCEEDED: "Temporal did not answer in time",
    RPCStatusCode.CANCELLED: "Temporal did not answer in time",
    RPCStatusCode.RESOURCE_EXHAUSTED: "Temporal is overloaded",
    RPCStatusCode.UNKNOWN: "the call to Temporal failed",
    RPCStatusCode.INTERNAL: "the call to Temporal failed",
}
_RPC_TIMEOUT = timedelta(seconds=5)
# How the SDK reports a lazy client's failed first connection: a plain RuntimeError.
_CONNECT_FAILED = "Failed client connect"
# What a query ends with when no worker answers it before the RPC timeout.
_TIMED_OUT = {RPCStatusCode.CANCELLED, RPCStatusCode.DEADLINE_EXCEEDED}
log = logging.getLogger("triggers.api")


class QueryUnanswered(TimeoutError):
    """The trigger workflow exists but did not answer a query in time: no worker polls its
    task queue, or the workers are too busy to take the query."""


def _workflow_missing(exc: RPCError) -> bool:
    """NOT_FOUND for the workflow itself, not for its namespace: a namespace that does not
    exist is a misconfiguration to report, never "no such workflow"."""
    if exc.status != RPCStatusCode.NOT_FOUND:
        return False
    return not any(d.type_url.endswith(".NamespaceNotFoundFailure") for d in _details(exc))


def _details(exc: BaseException) -> list[Any]:
    """The typed failure details of an RPC error (``NamespaceNotFoundFailure``...)."""
    if not isinstance(exc, RPCError):
        return []
    try:
        return list(exc.grpc_status.details)
    except Exception:  # an RPCError built without a parsable status has no details
        return []


def spec_of(trigger: Trigger) -> TriggerSpec:
    """Convert a row into the workflow's input at the edge: no config, no secrets."""
    target = trigger.target or {}
    info = find_provider(trigger.provider)
    return TriggerSpec(
        trigger_id=str(trigger.id),
        name=trigger.name,
        provider=trigger.provider,
        owner=str(trigger.user_id),
        config_version=trigger.config_version,
        target=RunTarget(
            kind=str(target.get("kind", "run")),
            workflow_type=target.get("workflow_type"),
            task_queue=target.get("task_queue"),
            input=target.get("input"),
            graph=target.get("graph"),
            principal=str(trigger.target_principal_id or ""),
        ),
        enabled=trigger.enabled,
        # What the provider declares; a provider no longer installed runs no source.
        source=info is not None and info.runs_source,
        stream=info is not None and info.stream,
        overlap=info.overlap_policy(trigger.config) if info is not None else "allow",
        condition=(trigger.condition or {}).get("expression"),
    )


async def start_or_signal(
    client: Client,
    trigger: Trigger,
    *,
    task_queue: str,
    signal: str,
    arg: TriggerSpec | EventBatch,
) -> WorkflowHandle[Any, Any]:
    """Signal-with-start: signals the running trigger workflow, or starts it first.

    Returns once the signal is persisted in the workflow's history.
    """
    spec = spec_of(trigger)
    try:
        return await _start_or_signal(client, spec, task_queue, signal, arg)
    except RPCError as exc:
        if exc.status == RPCStatusCode.INVALID_ARGUMENT:
            await _raise_if_attributes_missing(client)
        raise


async def _raise_if_attributes_missing(client: Client) -> None:
    """A call the server refused as invalid: name the missing search attributes, if that
    is why (the server's own message may quote event data, so it is not shown)."""
    try:
        missing = await missing_search_attributes(client, timeout=_RPC_TIMEOUT.total_seconds())
    except Exception:  # cannot tell: the original error stands
        return
    if missing:
        raise SearchAttributesMissing(client.namespace, missing)


async def _start_or_signal(
    client: Client, spec: TriggerSpec, task_queue: str, signal: str, arg: TriggerSpec | EventBatch
) -> WorkflowHandle[Any, Any]:
    return await client.start_workflow(
        TRIGGER_WORKFLOW_TYPE,
        TriggerInput(spec=spec),
        id=trigger_workflow_id(spec.trigger_id),
        task_queue=task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        start_signal=signal,
        start_signal_args=[arg],
        memo={"trigger_name": spec.name},
        search_attributes=TypedSearchAttributes(
            [
                # The same attributes as its runs: `TriggerId="<id>"` lists the trigger
                # workflow and its runs; WorkflowType tells them apart.
                SearchAttributePair(TRIGGER_ID, spec.trigger_id),
                SearchAttributePair(TRIGGER_PROVIDER, spec.provider),
                SearchAttributePair(TRIGGER_OWNER, spec.owner),
            ]
        ),
        static_summary=f"trigger {spec.name}"[:200],
        rpc_timeout=_RPC_TIMEOUT,
    )


async def configure(client: Client, trigger: Trigger, *, task_queue: str) -> None:
    """Tell the trigger workflow of a change; starts it when the trigger is enabled."""
    spec = spec_of(trigger)
    if spec.enabled:
        await start_or_signal(
            client, trigger, task_queue=task_queue, signal=CONFIGURE_SIGNAL, arg=spec
        )
        return
    handle = client.get_workflow_handle(trigger_workflow_id(spec.trigger_id))
    try:
        # A disabled trigger's workflow starts what it already accepted, then completes.
        await handle.signal(CONFIGURE_SIGNAL, spec, rpc_timeout=_RPC_TIMEOUT)
    except RPCError as exc:
        if not _workflow_missing(exc):
            raise


async def runtime_status(
    client: Client, trigger_id: str, *, rpc_timeout: timedelta = _RPC_TIMEOUT
) -> TriggerStatus | None:
    """The trigger workflow's own status report (its query); None when it does not run.
    Each of its two calls (describe, query) takes at most ``rpc_timeout``."""
    handle = client.get_workflow_handle(trigger_workflow_id(trigger_id))
    try:
        desc = await handle.describe(rpc_timeout=rpc_timeout)
        if desc.status is None or desc.status.name != "RUNNING":
            return None
        try:
            status: TriggerStatus = await handle.query(
                STATUS_QUERY, result_type=TriggerStatus, rpc_timeout=rpc_timeout
            )
        except RPCError as exc:
            if exc.status in _TIMED_OUT:
                raise QueryUnanswered from exc
            raise
    except RPCError as exc:
        if _workflow_missing(exc):
            return None
        raise
    return status


async def recent_events(client: Client, trigger_id: str) -> list[RecentEvent]:
    """The latest events the trigger workflow accepted, oldest first (none without one)."""
    handle = client.get_workflow_handle(trigger_workflow_id(trigger_id))
    try:
        found: RecentEvents = await handle.query(
            RECENT_EVENTS_QUERY, result_type=RecentEvents, rpc_timeout=_RPC_TIMEOUT
        )
    except RPCError as exc:
        if _workflow_missing(exc):
            return []
        if exc.status in _TIMED_OUT:
            raise QueryUnanswered from exc
        raise
    return found.events


async def run_exists(client: Client, run_id: str) -> bool:
    try:
        await client.get_workflow_handle(run_id).describe(rpc_timeout=_RPC_TIMEOUT)
    except RPCError as exc:
        if _workflow_missing(exc):
            return False
        raise
    return True


async def current_run(client: Client, workflow_id: str) -> str | None:
    """The run id of a workflow's latest run; None when no workflow has that id."""
    try:
        desc = await client.get_workflow_handle(workflow_id).describe(rpc_timeout=_RPC_TIMEOUT)
    except RPCError as exc:
        if _workflow_missing(exc):
            return None
        raise
    return desc.run_id


async def runs_in_flight(client: Client, trigger_id: str) -> int:
    """Runs of this trigger still running, from Temporal's visibility: it also counts runs
    that earlier runs of the trigger workflow (before a continue-as-new, or before a
    disable) started and abandoned. Visibility is eventually consistent: a run that has just
    started or finished may take a moment to be counted right."""
    # A trigger id is a UUID (the route parsed it): safe to quote into the query.
    query = (
        f'TriggerId = "{uuid.UUID(trigger_id)}" AND ExecutionStatus = "Running"'
        f' AND WorkflowType != "{TRIGGER_WORKFLOW_TYPE}"'
    )
    try:
        found = await client.count_workflows(query, rpc_timeout=_RPC_TIMEOUT)
    except RPCError as exc:
        if exc.status == RPCStatusCode.INVALID_ARGUMENT:
            await _raise_if_attributes_missing(client)
        raise
    return found.count


def failure_cause(exc: BaseException) -> str | None:
    """What went wrong with a call to Temporal, in words (as a 503's detail says it); None
    when ``exc`` is not about Temporal."""
    return _cause(exc)


def _cause(exc: BaseException) -> str | None:
    """What went wrong with a call to Temporal, for the caller; None: not a Temporal error.

    RPC messages are never repeated: they can quote workflow IDs, event keys or
    payload fields. The status code's name is enough to act on.
    """
    if isinstance(exc, SearchAttributesMissing):
        return str(exc)
    if isinstance(exc, RPCError):
        cause = _CAUSES.get(exc.status, "Temporal refused the call")
        return f"{cause} ({exc.status.name})"
    if isinstance(exc, WorkflowQueryFailedError):
        return "the trigger workflow failed to answer its query"
    if isinstance(exc, WorkflowQueryRejectedError):
        return "the trigger workflow rejected the query"
    if isinstance(exc, QueryUnanswered):
        return "the trigger workflow did not answer its query in time (no worker polling?)"
    if isinstance(exc, TimeoutError):  # asyncio.TimeoutError too
        return "Temporal did not answer in time"
    if isinstance(exc, RuntimeError) and str(exc).startswith(_CONNECT_FAILED):
        return "Temporal is unreachable (cannot connect)"
    return None


@contextmanager
def unavailable_as_503(outcome: str, *, retry_after: int) -> Iterator[None]:
    """Any failed call to Temporal inside the block answers 503 with Retry-After, so
    callers retry; never 500. The detail is ``"<outcome>: <cause>; retry later"``.

    Args:
        outcome: what the caller is told did (not) happen, e.g. ``"event not accepted"``.
        retry_after: seconds for the Retry-After header.
    """
    try:
        yield
    except Exception as exc:
        cause = _cause(exc)
        if cause is None:
            raise
        # The failure's type names (NamespaceNotFoundFailure...) help an operator; the RPC's
        # message stays out of the logs too, for the same reason as above.
        kinds = [d.type_url.rsplit(".", 1)[-1] for d in _details(exc)] or [type(exc).__name__]
        log.warning("%s: %s %s: answered 503", outcome, cause, kinds)
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"{outcome}: {cause}; retry later",
            headers={"Retry-After": str(retry_after)},
        ) from None
