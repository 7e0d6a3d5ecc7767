"""``/api/triggers``: create, read, change, enable, disable and delete triggers (shares:
``api/routes/shares.py``)."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response, status

from api import control
from api.deps import CurrentUser, SessionDep, StateDep
from api.errors import answers
from api.guards import (
    authorize_target,
    changed_destinations,
    require_secrets_again,
    target_principal,
)
from api.schemas import (
    TriggerCreate,
    TriggerPage,
    TriggerPublic,
    TriggerRuntime,
    TriggerUpdate,
)
from api.state import AppState
from api.text import SafeStr
from api.validation import (
    check_target,
    expression_or_422,
    provider_or_422,
    require_secrets,
    validate_config,
    validate_secrets,
)
from api.views import to_public
from triggers.core.events import trigger_workflow_id
from triggers.infra import store
from triggers.infra.models import Trigger, TriggerStatus

router = APIRouter(prefix="/api/triggers", tags=["triggers"])
# The error answers of the routes on one trigger: read, act (enable...), change with a body.
_READ = answers(401, 404, 422, 503)
_ACT = answers(401, 403, 404, 422, 503)
_WRITE = answers(400, 401, 403, 404, 422, 503)


async def _load(
    session: SessionDep, user: CurrentUser, trigger_id: uuid.UUID, need: str
) -> tuple[Trigger, str]:
    try:
        return await store.trigger_for_user(session, trigger_id=trigger_id, user=user, need=need)
    except store.NotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "trigger not found") from None
    except store.Forbidden as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None


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


def _snapshot(trigger: Trigger) -> dict[str, Any]:
    return {field: getattr(trigger, field) for field in _MUTABLE}


async def _apply(state: AppState, trigger: Trigger) -> None:
    """Make Temporal match the row; 503 when it cannot be reached."""
    with control.unavailable_as_503(
        "nothing was changed", retry_after=state.settings.retry_after_seconds
    ):
        await control.configure(state.client, trigger, task_queue=state.settings.task_queue)


async def _save_and_apply(
    state: AppState, session: SessionDep, trigger: Trigger, before: dict[str, Any]
) -> Trigger:
    """Commit the row, then tell the workflow: its source loop reads the row as soon as the
    signal restarts it, so the row must be there first. If Temporal cannot be told, the
    row goes back to ``before`` and the caller gets 503: nothing changed."""
    trigger = await store.save(session, trigger=trigger)
    try:
        await _apply(state, trigger)
    except BaseException:
        for field, value in before.items():
            setattr(trigger, field, value)
        await store.save(session, trigger=trigger)
        raise
    return trigger


@router.get("", response_model=TriggerPage, responses=answers(401, 422, 503))
async def list_triggers(
    state: StateDep,
    session: SessionDep,
    user: CurrentUser,
    provider: Annotated[SafeStr | None, Query(max_length=64)] = None,
    enabled: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> TriggerPage:
    """Triggers you own or that are shared with you, newest first."""
    rows, total = await store.list_triggers(
        session, user=user, provider=provider, enabled=enabled, limit=limit, offset=offset
    )
    items = [to_public(state, t, role or "viewer") for t, role in rows]
    return TriggerPage(items=items, total=total, limit=limit, offset=offset)


@router.post(
    "",
    response_model=TriggerPublic,
    status_code=status.HTTP_201_CREATED,
    responses=answers(400, 401, 422, 503),
)
async def create_trigger(
    body: TriggerCreate, state: StateDep, session: SessionDep, user: CurrentUser
) -> TriggerPublic:
    """Create a trigger. Its config is checked by the provider's schema; secrets are stored
    encrypted and never returned. An enabled trigger's workflow starts at once."""
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
    # Row first, then the workflow: a failed save never leaves a workflow without a trigger.
    trigger = await store.save(session, trigger=trigger)
    if trigger.enabled:
        try:
            await _apply(state, trigger)
        except BaseException:
            await session.delete(trigger)
            await session.commit()
            raise
    return to_public(state, trigger, "owner")


@router.get("/{trigger_id}", response_model=TriggerPublic, responses=_READ)
async def get_trigger(
    trigger_id: uuid.UUID, state: StateDep, session: SessionDep, user: CurrentUser
) -> TriggerPublic:
    """One trigger. Secrets appear only by name in ``secret_names``."""
    trigger, role = await _load(session, user, trigger_id, "viewer")
    return to_public(state, trigger, role)


@router.get("/{trigger_id}/status", response_model=TriggerRuntime, responses=_READ)
async def trigger_status(
    trigger_id: uuid.UUID, state: StateDep, session: SessionDep, user: CurrentUser
) -> TriggerRuntime:
    """What the trigger workflow reports: events received, runs started, duplicates...

    ``runs_in_flight`` counts this trigger's runs that are still running, as Temporal's
    visibility lists them. 503 with ``Retry-After`` when Temporal cannot be asked (down,
    refusing the call, or the trigger workflow not answering its query)."""
    trigger, _ = await _load(session, user, trigger_id, "viewer")
    wid = trigger_workflow_id(str(trigger.id))
    with control.unavailable_as_503(
        "status unknown", retry_after=state.settings.retry_after_seconds
    ):
        found = await control.runtime_status(state.client, str(trigger.id))
        # Counted by Temporal, not by the workflow: runs an earlier run of the trigger
        # workflow started (before a continue-as-new or a disable) still count.
        in_flight = await control.runs_in_flight(state.client, str(trigger.id))
    if found is None:
        return TriggerRuntime(
            running=False,
            workflow_id=wid,
            last_error=trigger.last_error,
            runs_in_flight=in_flight,
        )
    st, health = found
    status_, last_error, errors = st.status, st.last_error, st.consecutive_errors
    next_at, cursor = st.next_at, st.cursor
    if health is not None:
        # next_at is the workflow's: the source signals it (the heartbeat is throttled).
        # Signals carry the cursor with each batch; the heartbeat also has cursor-only moves.
        cursor = cursor if cursor is not None else health.heartbeat.get("cursor")
        if status_ == "degraded" and health.heartbeat.get("healthy"):
            # The source started fine again since its last error.
            status_, last_error, errors = "active", None, 0
    if status_ == "finished":
        next_at = None  # a finished schedule fires no more; its last wait is history
    # The workflow's own report, with what the source activity's heartbeat adds to it.
    report = {
        **asdict(st),
        "status": status_,
        "last_error": last_error,
        "consecutive_errors": errors,
        "next_at": next_at,
        "cursor": cursor,
        "runs_in_flight": in_flight,
    }
    return TriggerRuntime(running=True, workflow_id=wid, **report)


@router.patch(
    "/{trigger_id}",
    response_model=TriggerPublic,
    responses=answers(
        400,
        401,
        403,
        404,
        422,
        503,
        d403="A destination field changed without the secrets again, or your role is too low",
    ),
)
async def update_trigger(
    trigger_id: uuid.UUID,
    body: TriggerUpdate,
    state: StateDep,
    session: SessionDep,
    user: CurrentUser,
) -> TriggerPublic:
    """Change a trigger (editor or owner). The running workflow is told by signal.

    Only the owner may change where a source connects or where its secrets go (the
    provider's destination fields: an http_poll ``url`` or secret headers, a sql_poll
    ``url``) without giving every secret again in the same request (403 naming the field);
    the source then uses the network allowlist of whoever changed them, and a graph's
    ``http_request`` nodes that of whoever last changed where they send requests."""
    trigger, role = await _load(session, user, trigger_id, "editor")
    before = _snapshot(trigger)
    info = provider_or_422(trigger.provider)
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    if not changes and "condition" not in body.model_fields_set:
        return to_public(state, trigger, role)
    # Everything is checked before anything changes on the row.
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
    if trigger.enabled:
        trigger = await _save_and_apply(state, session, trigger, before)
    else:
        trigger = await store.save(session, trigger=trigger)
    return to_public(state, trigger, role)


async def _set_enabled(
    trigger_id: uuid.UUID, enabled: bool, state: AppState, session: SessionDep, user: CurrentUser
) -> TriggerPublic:
    trigger, role = await _load(session, user, trigger_id, "editor")
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
    trigger = await _save_and_apply(state, session, trigger, before)
    return to_public(state, trigger, role)


@router.post("/{trigger_id}/enable", response_model=TriggerPublic, responses=_ACT)
async def enable_trigger(
    trigger_id: uuid.UUID, state: StateDep, session: SessionDep, user: CurrentUser
) -> TriggerPublic:
    """Start accepting events again; starts the trigger workflow."""
    return await _set_enabled(trigger_id, True, state, session, user)


@router.post("/{trigger_id}/disable", response_model=TriggerPublic, responses=_ACT)
async def disable_trigger(
    trigger_id: uuid.UUID, state: StateDep, session: SessionDep, user: CurrentUser
) -> TriggerPublic:
    """Stop accepting events (webhooks answer 409). Events already accepted still run."""
    return await _set_enabled(trigger_id, False, state, session, user)


@router.delete("/{trigger_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_ACT)
async def delete_trigger(
    trigger_id: uuid.UUID, state: StateDep, session: SessionDep, user: CurrentUser
) -> Response:
    """Delete a trigger (owner only). Its workflow finishes what it accepted, then stops."""
    trigger, _ = await _load(session, user, trigger_id, "owner")
    trigger.enabled = False
    trigger.config_version += 1
    await _apply(state, trigger)
    await session.delete(trigger)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
