"""Start, reconfigure and stop trigger workflows; the API's only writes to Temporal."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi import HTTPException, status
from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.service import RPCError, RPCStatusCode

from triggers.events import EventBatch, trigger_workflow_id
from triggers.models import Trigger
from triggers.providers import UnknownProvider, get_provider
from workflows.trigger import TriggerWorkflow
from workflows.types import (
    TRIGGER_OWNER,
    TRIGGER_PROVIDER,
    RecentEvent,
    RunTarget,
    TriggerInput,
    TriggerSpec,
    TriggerStatus,
)

# Unavailable or slow Temporal: answer the caller quickly so it can retry later.
UNAVAILABLE = {
    RPCStatusCode.UNAVAILABLE,
    RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.RESOURCE_EXHAUSTED,
    RPCStatusCode.CANCELLED,
    RPCStatusCode.UNKNOWN,
}
_RPC_TIMEOUT = timedelta(seconds=5)
log = logging.getLogger("triggers.api")


def spec_of(trigger: Trigger) -> TriggerSpec:
    """Convert a row into the workflow's input at the edge: no config, no secrets."""
    target = trigger.target or {}
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
        ),
        enabled=trigger.enabled,
        source=_has_source(trigger.provider),
        overlap=str(trigger.config.get("overlap", "allow")),
        condition=(trigger.condition or {}).get("expression"),
    )


def _has_source(provider: str) -> bool:
    try:
        return get_provider(provider).source is not None
    except UnknownProvider:
        return False


async def start_or_signal(
    client: Client,
    trigger: Trigger,
    *,
    task_queue: str,
    signal: str,
    arg: TriggerSpec | EventBatch,
) -> WorkflowHandle[TriggerWorkflow, object]:
    """Signal-with-start: signals the running trigger workflow, or starts it first.

    Returns once the signal is persisted in the workflow's history.
    """
    spec = spec_of(trigger)
    return await client.start_workflow(
        TriggerWorkflow.run,
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
        await start_or_signal(client, trigger, task_queue=task_queue, signal="configure", arg=spec)
        return
    handle = client.get_workflow_handle(trigger_workflow_id(spec.trigger_id))
    try:
        # A disabled trigger's workflow starts what it already accepted, then completes.
        await handle.signal("configure", spec, rpc_timeout=_RPC_TIMEOUT)
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise


@dataclass
class SourceHealth:
    """The running source activity as the server sees it: its last heartbeat."""

    heartbeat: dict[str, Any]


async def runtime_status(
    client: Client, trigger_id: str
) -> tuple[TriggerStatus, SourceHealth | None] | None:
    """The workflow's own report (query) plus its source activity's health (describe)."""
    handle = client.get_workflow_handle(trigger_workflow_id(trigger_id))
    try:
        desc = await handle.describe(rpc_timeout=_RPC_TIMEOUT)
        if desc.status is None or desc.status.name != "RUNNING":
            return None
        status = await handle.query(TriggerWorkflow.status, rpc_timeout=_RPC_TIMEOUT)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    health = None
    for pending in desc.raw_description.pending_activities:
        if pending.activity_type.name != "run_source":
            continue
        beat: dict[str, Any] = {}
        if pending.heartbeat_details.payloads:
            values = await client.data_converter.decode(pending.heartbeat_details.payloads)
            if values and isinstance(values[0], dict):
                beat = values[0]
        health = SourceHealth(heartbeat=beat)
    return status, health


async def recent_events(client: Client, trigger_id: str) -> list[RecentEvent]:
    """The latest events the trigger workflow accepted, oldest first (none without one)."""
    handle = client.get_workflow_handle(trigger_workflow_id(trigger_id))
    try:
        found = await handle.query(TriggerWorkflow.recent_events, rpc_timeout=_RPC_TIMEOUT)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return []
        raise
    return found.events


async def run_exists(client: Client, run_id: str) -> bool:
    try:
        await client.get_workflow_handle(run_id).describe(rpc_timeout=_RPC_TIMEOUT)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


@contextmanager
def unavailable_as_503(message: str, *, retry_after: int) -> Iterator[None]:
    """Temporal unreachable inside the block: answer 503 with Retry-After so callers retry."""
    try:
        yield
    except RPCError as exc:
        if exc.status not in UNAVAILABLE:
            raise
        log.warning("Temporal unreachable (%s): answered 503", exc.status.name)
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, message, headers={"Retry-After": str(retry_after)}
        ) from None
