"""``GET /api/health/triggers``: the caller's triggers that are failing, degraded or lagging,
each as its workflow's own ``health`` (``TriggerStatus.health``) and a reason in words.

Bounded: one page of the caller's enabled triggers (owner or share) is examined per call,
their status queries run at most ``CONCURRENCY`` at a time, each of their calls to Temporal
within ``QUERY_TIMEOUT``. A trigger whose workflow does not answer (no worker polls its
queue, the query fails) is listed as ``unknown`` with the reason; Temporal itself not
answering is a 503 with ``Retry-After``, never a 500.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta

from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import WorkflowQueryFailedError, WorkflowQueryRejectedError

from api import control
from api.state import AppState
from triggers.contracts.health import DEGRADED, FAILING, LAGGING, UNKNOWN, TriggerHealth
from triggers.contracts.trigger import TriggerStatus
from triggers.core.events import trigger_workflow_id
from triggers.infra import store
from triggers.infra.models import Trigger, User

# Status queries in flight at once for one call, and how long each call to Temporal may
# take: a page of 100 triggers whose workflows all stay silent answers in ~15 s.
CONCURRENCY = 16
QUERY_TIMEOUT = timedelta(seconds=2)
# Above the two calls' own timeouts: only a Temporal that hangs (a lazy client's first
# connection, a proxy that never answers) reaches it, and that is a 503.
_CALL_BUDGET = 2 * QUERY_TIMEOUT.total_seconds() + 1.0
# Listed whatever the threshold; lagging is decided by the caller's threshold.
LISTED = (FAILING, DEGRADED, UNKNOWN)
# A workflow that did not answer its query: this trigger's health is unknown, Temporal is up.
_UNANSWERED = (control.QueryUnanswered, WorkflowQueryFailedError, WorkflowQueryRejectedError)


@dataclass
class TriggerHealthEntry:
    """One trigger that needs attention: ``state`` is ``failing``, ``degraded``,
    ``lagging`` (its lag or backlog at or over the threshold) or ``unknown`` (its workflow
    did not answer; ``health`` is then its default), with the reason in words."""

    trigger_id: str
    name: str
    provider: str
    state: str
    reason: str
    health: TriggerHealth


@dataclass
class TriggerHealthPage:
    """``examined`` triggers of ``total`` (the caller's enabled ones) from ``offset``; the
    next page starts at ``next_offset`` (null: none left)."""

    items: list[TriggerHealthEntry] = field(default_factory=list)
    examined: int = 0
    total: int = 0
    limit: int = 0
    offset: int = 0
    next_offset: int | None = None
    lag_threshold: int = 0


async def unhealthy(
    state: AppState,
    session: AsyncSession,
    user: User,
    *,
    lag_threshold: int,
    limit: int,
    offset: int,
) -> TriggerHealthPage:
    rows, total = await store.list_triggers(
        session, user=user, enabled=True, limit=limit, offset=offset
    )
    triggers = [trigger for trigger, _ in rows]
    with control.unavailable_as_503(
        "health unknown", retry_after=state.settings.retry_after_seconds
    ):
        statuses = await _statuses(state, triggers)
    items = [
        entry
        for trigger, found in zip(triggers, statuses, strict=True)
        if (entry := _entry(trigger, found, lag_threshold)) is not None
    ]
    after = offset + len(triggers)
    return TriggerHealthPage(
        items=items,
        examined=len(triggers),
        total=total,
        limit=limit,
        offset=offset,
        next_offset=after if after < total else None,
        lag_threshold=lag_threshold,
    )


async def _statuses(state: AppState, triggers: list[Trigger]) -> list[TriggerStatus | str]:
    """Each trigger's status, or why its workflow did not answer; the first failure of
    Temporal itself cancels the rest and is raised."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(trigger: Trigger) -> TriggerStatus | str:
        async with gate:
            try:
                async with asyncio.timeout(_CALL_BUDGET):
                    found = await control.runtime_status(
                        state.client, str(trigger.id), rpc_timeout=QUERY_TIMEOUT
                    )
            except _UNANSWERED as exc:
                return control.failure_cause(exc) or "the trigger workflow did not answer"
        if found is None:
            return TriggerStatus.not_running(
                trigger_id=str(trigger.id),
                workflow_id=trigger_workflow_id(str(trigger.id)),
                name=trigger.name,
                enabled=trigger.enabled,
                config_version=trigger.config_version,
                last_error=trigger.last_error,
            )
        return found

    tasks = [asyncio.ensure_future(one(trigger)) for trigger in triggers]
    try:
        # Fails at the first error of Temporal itself, not after every call timed out.
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
    return [task.result() for task in tasks]


def _entry(
    trigger: Trigger, found: TriggerStatus | str, threshold: int
) -> TriggerHealthEntry | None:
    def entry(state: str, reason: str, health: TriggerHealth) -> TriggerHealthEntry:
        return TriggerHealthEntry(
            trigger_id=str(trigger.id),
            name=trigger.name,
            provider=trigger.provider,
            state=state,
            reason=reason,
            health=health,
        )

    if isinstance(found, str):
        return entry(UNKNOWN, f"status unknown: {found}", TriggerHealth())
    health = found.health
    if health.state in LISTED:
        reason = health.reason or f"the trigger workflow reports {health.state}"
        if health.state == UNKNOWN and health.reason is None:
            reason = "the trigger workflow does not report its health (older worker code?)"
        return entry(health.state, reason, health)
    behind = max(health.lag or 0, health.backlog)
    if behind >= threshold:
        reason = (
            f"{behind} events behind (lag {health.lag}, backlog {health.backlog}), "
            f"at or over lag_threshold {threshold}"
        )
        return entry(LAGGING, reason, health)
    return None
