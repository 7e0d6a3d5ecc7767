"""``/api/triggers``: create, read, change, enable, disable and delete triggers (shares:
``api/routes/shares.py``). The rules live in ``api/services/triggers.py``; these routes
only translate HTTP to its calls."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from api.deps import CurrentUser, SessionDep, StateDep
from api.errors import ACT_ANSWERS, READ_ANSWERS, answers
from api.schemas import TriggerCreate, TriggerPage, TriggerPublic, TriggerUpdate
from api.services import triggers as lifecycle
from api.text import SafeStr
from api.views import to_public
from triggers.contracts.trigger import TriggerStatus
from triggers.infra import store

router = APIRouter(prefix="/api/triggers", tags=["triggers"])


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
    trigger = await lifecycle.create(state, session, user, body)
    return to_public(state, trigger, "owner")


@router.get("/{trigger_id}", response_model=TriggerPublic, responses=READ_ANSWERS)
async def get_trigger(
    trigger_id: uuid.UUID, state: StateDep, session: SessionDep, user: CurrentUser
) -> TriggerPublic:
    """One trigger. Secrets appear only by name in ``secret_names``."""
    trigger, role = await lifecycle.load(session, user, trigger_id, "viewer")
    return to_public(state, trigger, role)


@router.get("/{trigger_id}/status", response_model=TriggerStatus, responses=READ_ANSWERS)
async def trigger_status(
    trigger_id: uuid.UUID, state: StateDep, session: SessionDep, user: CurrentUser
) -> TriggerStatus:
    """What the trigger workflow reports: events received, runs started, duplicates, the
    source's state... (``running: false`` when no workflow runs).

    ``runs_in_flight`` counts this trigger's runs that are still running, as Temporal's
    visibility lists them. 503 with ``Retry-After`` when Temporal cannot be asked (down,
    refusing the call, or the trigger workflow not answering its query)."""
    return await lifecycle.runtime_status(state, session, user, trigger_id)


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
    ``http_request`` nodes that of whoever last changed where they send requests.
    ``config`` replaces the whole config."""
    trigger, role = await lifecycle.update(state, session, user, trigger_id, body)
    return to_public(state, trigger, role)


@router.post("/{trigger_id}/enable", response_model=TriggerPublic, responses=ACT_ANSWERS)
async def enable_trigger(
    trigger_id: uuid.UUID, state: StateDep, session: SessionDep, user: CurrentUser
) -> TriggerPublic:
    """Start accepting events again; starts the trigger workflow."""
    trigger, role = await lifecycle.set_enabled(state, session, user, trigger_id, True)
    return to_public(state, trigger, role)


@router.post("/{trigger_id}/disable", response_model=TriggerPublic, responses=ACT_ANSWERS)
async def disable_trigger(
    trigger_id: uuid.UUID, state: StateDep, session: SessionDep, user: CurrentUser
) -> TriggerPublic:
    """Stop accepting events (webhooks answer 409). Events already accepted still run."""
    trigger, role = await lifecycle.set_enabled(state, session, user, trigger_id, False)
    return to_public(state, trigger, role)


@router.delete("/{trigger_id}", status_code=status.HTTP_204_NO_CONTENT, responses=ACT_ANSWERS)
async def delete_trigger(
    trigger_id: uuid.UUID, state: StateDep, session: SessionDep, user: CurrentUser
) -> Response:
    """Delete a trigger (owner only). Its workflow finishes what it accepted, then stops."""
    await lifecycle.delete(state, session, user, trigger_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
