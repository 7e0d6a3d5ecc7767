"""``/api/triggers/{id}/shares``: who else can see or change a trigger."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, HTTPException, Response, status

from api.deps import CurrentUser, SessionDep
from api.errors import ACT_ANSWERS, READ_ANSWERS, WRITE_ANSWERS
from api.schemas import ShareIn, ShareOut
from api.services.triggers import load
from api.text import SafeStr
from api.validation import invalid
from triggers.infra import store

router = APIRouter(prefix="/api/triggers", tags=["triggers"])


@router.get("/{trigger_id}/shares", response_model=list[ShareOut], responses=READ_ANSWERS)
async def list_shares(
    trigger_id: uuid.UUID, session: SessionDep, user: CurrentUser
) -> list[ShareOut]:
    """Who else can see or change this trigger."""
    trigger, _ = await load(session, user, trigger_id, "viewer")
    return [ShareOut(user=n, role=r) for n, r in await store.list_shares(session, trigger=trigger)]


@router.put("/{trigger_id}/shares", response_model=ShareOut, responses=WRITE_ANSWERS)
async def share_trigger(
    trigger_id: uuid.UUID, body: ShareIn, session: SessionDep, user: CurrentUser
) -> ShareOut:
    """Share with another user as ``viewer`` (read) or ``editor`` (change, enable, disable).
    Owner only. A user that does not exist (or yourself) is a 422 on ``user``."""
    trigger, _ = await load(session, user, trigger_id, "owner")
    other = await store.get_user_by_name(session, name=body.user)
    if other is None or other.id == user.id:
        # The trigger exists; the body names no one it can be shared with.
        raise invalid(("body", "user"), f"user {body.user!r} not found")
    share = await store.set_share(session, trigger=trigger, user=other, role=body.role)
    return ShareOut(user=other.name, role=share.role)


@router.delete(
    "/{trigger_id}/shares/{user_name}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=ACT_ANSWERS,
)
async def unshare_trigger(
    trigger_id: uuid.UUID, user_name: SafeStr, session: SessionDep, user: CurrentUser
) -> Response:
    """Stop sharing with a user. Owner only."""
    trigger, _ = await load(session, user, trigger_id, "owner")
    other = await store.get_user_by_name(session, name=user_name)
    if other is None or not await store.remove_share(session, trigger=trigger, user=other):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{user_name!r} has no share")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
