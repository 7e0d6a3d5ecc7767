"""The trigger lifecycle: create, change, enable, disable and delete a trigger, and ask for
its status. One rule for every change: the row is written first, then Temporal is told;
when Temporal cannot be told, the row goes back to what it was and the caller gets 503, so
nothing changed. Routes only translate HTTP to these calls."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

from fastapi import HTTPException, status
from sqlmodel.ext.asyncio.session import AsyncSession

from api import control
from api.guards import (
    authorize_target,
    changed_destinations,
    require_secrets_again,
    target_principal,
)
from api.schemas import TriggerCreate, TriggerUpdate
from api.state import AppState
from api.validation import (
    check_target,
    expression_or_422,
    provider_or_422,
    require_secrets,
    validate_config,
    validate_secrets,
)
from triggers.contracts.trigger import TriggerStatus as RuntimeStatus
from triggers.core.events import trigger_workflow_id
from triggers.infra import store
from triggers.infra.models import Trigger, TriggerStatus, User

# The row's fields a change may touch: what a rollback restores.
_MUTABLE = (
    "name",
    "config",
    "target",
    "condition",
    "secrets_encrypted",
    "network_principal_id",
    "target_principal_id",
    "config_version",
    "enabled",
    "status",
    "last_error",
)


async def load(
    session: AsyncSession, user: User, trigger_id: uuid.UUID, need: str
) -> tuple[Trigger, str]:
    """The trigger and the user's role on it: 404 when the user may not see it, 403 when
    the role is below ``need``."""
    try:
        return await store.trigger_for_user(session, trigger_id=trigger_id, user=user, need=need)
    except store.NotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "trigger not found") from None
    except store.Forbidden as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None


def _snapshot(trigger: Trigger) -> dict[str, Any]:
    return {name: getattr(trigger, name) for name in _MUTABLE}


async def _tell_temporal(state: AppState, trigger: Trigger) -> None:
    """Make Temporal match the row; 503 when it cannot be reached."""
    with control.unavailable_as_503(
        "nothing was changed", retry_after=state.settings.retry_after_seconds
    ):
        await control.configure(state.client, trigger, task_queue=state.settings.task_queue)


async def _commit(
    state: AppState, session: AsyncSession, trigger: Trigger, before: dict[str, Any] | None
) -> Trigger:
    """Save the row, then tell Temporal (only what an enabled trigger's workflow, or a
    running one's disable, needs). The source loop reads the row as soon as the signal
    restarts it, so the row comes first. If Temporal cannot be told, the row goes back to
    ``before`` (``None``: a new row, deleted) and the 503 propagates."""
    trigger = await store.save(session, trigger=trigger)
    try:
        await _tell_temporal(state, trigger)
    except BaseException:
        if before is None:
            await session.delete(trigger)
            await session.commit()
        else:
            for name, value in before.items():
                setattr(trigger, name, value)
            await store.save(session, trigger=trigger)
        raise
    return trigger


async def create(
    state: AppState, session: AsyncSession, user: User, body: TriggerCreate
) -> Trigger:
    """A new trigger owned by ``user``; an enabled one's workflow starts at once."""
    info = provider_or_422(body.provider)
    config = validate_config(info, body.config)
    validate_secrets(info, body.secrets)
    require_secrets(info, body.secrets)
    if body.condition is not None:
        expression_or_422(body.condition)
    check_target(body.target)
    target = body.target.model_dump(mode="json")
    await authorize_target(
        session,
        target=target,
        owner_id=user.id,
        actor_id=user.id,
        service_queue=state.settings.task_queue,
    )
    trigger = Trigger(
        user_id=user.id,
        network_principal_id=user.id,
        target_principal_id=user.id,
        name=body.name,
        provider=body.provider,
        config=config.model_dump(mode="json", exclude_unset=False),
        condition={"expression": body.condition} if body.condition else None,
        target=target,
        enabled=body.enabled,
        secrets_encrypted=state.secret_box.encrypt(body.secrets) if body.secrets else None,
        status=TriggerStatus.ACTIVE if body.enabled else TriggerStatus.DISABLED,
    )
    if not trigger.enabled:
        return await store.save(session, trigger=trigger)
    return await _commit(state, session, trigger, None)


async def update(
    state: AppState, session: AsyncSession, user: User, trigger_id: uuid.UUID, body: TriggerUpdate
) -> tuple[Trigger, str]:
    """Change a trigger (editor or owner); everything is checked before anything changes.

    Anyone but the owner who moves a destination field must give every kept secret again
    (403 naming the field); the source then goes out through that user's allowlist, and a
    graph's ``http_request`` nodes through the allowlist of whoever last chose their URLs."""
    trigger, role = await load(session, user, trigger_id, "editor")
    before = _snapshot(trigger)
    info = provider_or_422(trigger.provider)
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    if not changes and "condition" not in body.model_fields_set:
        return trigger, role
    config = validate_config(info, body.config) if body.config is not None else None
    moved = changed_destinations(info, trigger, config) if config is not None else []
    if body.target is not None:
        check_target(body.target)
    if body.condition is not None:
        expression_or_422(body.condition)
    current = state.secret_box.decrypt(trigger.secrets_encrypted)
    if body.secrets is not None:
        validate_secrets(info, body.secrets)
        for name, value in body.secrets.items():
            if value is None:
                current.pop(name, None)
            else:
                current[name] = value
        require_secrets(info, current)
    if role != "owner":
        resupplied = {n for n, v in (body.secrets or {}).items() if v is not None}
        require_secrets_again(moved, kept=current, resupplied=resupplied)
    target = body.target.model_dump(mode="json") if body.target is not None else trigger.target
    if trigger.enabled or body.target is not None:
        await authorize_target(
            session,
            target=target,
            owner_id=trigger.user_id,
            actor_id=user.id,
            service_queue=state.settings.task_queue,
            before=trigger.target,
            loc=("body", "target") if body.target is not None else ("target",),
        )
    given = any(v is not None for v in (body.secrets or {}).values())
    trigger.target_principal_id = target_principal(
        trigger,
        target=target,
        name=body.name if body.name is not None else trigger.name,
        actor_id=user.id,
        chooses_events=bool(moved) or given,
    )
    if body.name is not None:
        trigger.name = body.name
    if config is not None:
        trigger.config = config.model_dump(mode="json")
    if moved:
        # The source now goes out through the allowlist of whoever chose where it goes.
        trigger.network_principal_id = user.id
    trigger.target = target
    if "condition" in body.model_fields_set:
        trigger.condition = {"expression": body.condition} if body.condition else None
    if body.secrets is not None:
        trigger.secrets_encrypted = state.secret_box.encrypt(current) if current else None
    trigger.config_version += 1
    if not trigger.enabled:
        return await store.save(session, trigger=trigger), role
    return await _commit(state, session, trigger, before), role


async def set_enabled(
    state: AppState, session: AsyncSession, user: User, trigger_id: uuid.UUID, enabled: bool
) -> tuple[Trigger, str]:
    """Enable (the workflow starts) or disable (it starts what it accepted, then ends)."""
    trigger, role = await load(session, user, trigger_id, "editor")
    if enabled:
        # A trigger may have lost its queue while it was disabled.
        await authorize_target(
            session,
            target=trigger.target,
            owner_id=trigger.user_id,
            actor_id=trigger.user_id,
            service_queue=state.settings.task_queue,
            loc=("target",),
        )
    before = _snapshot(trigger)
    trigger.enabled = enabled
    trigger.status = TriggerStatus.ACTIVE if enabled else TriggerStatus.DISABLED
    trigger.last_error = None if enabled else trigger.last_error
    trigger.config_version += 1
    return await _commit(state, session, trigger, before), role


async def delete(state: AppState, session: AsyncSession, user: User, trigger_id: uuid.UUID) -> None:
    """Delete a trigger (owner only): Temporal is told first (its workflow finishes what it
    accepted, then stops), so a 503 leaves the trigger as it was."""
    trigger, _ = await load(session, user, trigger_id, "owner")
    trigger.enabled = False
    trigger.config_version += 1
    await _tell_temporal(state, trigger)
    await session.delete(trigger)
    await session.commit()


async def runtime_status(
    state: AppState, session: AsyncSession, user: User, trigger_id: uuid.UUID
) -> RuntimeStatus:
    """The trigger workflow's own status report (its query); a trigger without a running
    workflow reports ``running: false``. ``runs_in_flight`` is Temporal's count."""
    trigger, _ = await load(session, user, trigger_id, "viewer")
    with control.unavailable_as_503(
        "status unknown", retry_after=state.settings.retry_after_seconds
    ):
        found = await control.runtime_status(state.client, str(trigger.id))
        # Counted by Temporal's visibility, not by the workflow: runs an earlier run of the
        # trigger workflow started (before a continue-as-new or a disable) count too.
        in_flight = await control.runs_in_flight(state.client, str(trigger.id))
    if found is None:
        found = RuntimeStatus.not_running(
            trigger_id=str(trigger.id),
            workflow_id=trigger_workflow_id(str(trigger.id)),
            name=trigger.name,
            enabled=trigger.enabled,
            config_version=trigger.config_version,
            last_error=trigger.last_error,
        )
    return replace(found, runs_in_flight=in_flight)
