"""``GET /api/health/triggers``: the caller's triggers that need attention (see
``api/services/health.py``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import CurrentUser, SessionDep, StateDep
from api.errors import answers
from api.services import health
from api.services.health import TriggerHealthPage

router = APIRouter(prefix="/api/health", tags=["health"])

# The threshold's bound: beyond any broker lag or backlog worth a different alarm level.
MAX_LAG_THRESHOLD = 10_000_000
DEFAULT_LAG_THRESHOLD = 1_000
# Triggers examined per call, at most (one status query each).
MAX_LIMIT = 100


@router.get("/triggers", response_model=TriggerHealthPage, responses=answers(401, 422, 503))
async def unhealthy_triggers(
    state: StateDep,
    session: SessionDep,
    user: CurrentUser,
    lag_threshold: Annotated[
        int,
        Query(
            ge=1,
            le=MAX_LAG_THRESHOLD,
            description="List a trigger as lagging when its broker lag or its backlog (events "
            "accepted whose runs are not started) is at least this many events.",
        ),
    ] = DEFAULT_LAG_THRESHOLD,
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description="Triggers examined by this call.")
    ] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> TriggerHealthPage:
    """Your triggers (owned or shared with you) that are **failing**, **degraded** or
    **lagging** beyond ``lag_threshold``, each with its health (the same fields as
    ``health`` in its status) and the reason in words; healthy ones are left out.

    One page of your enabled triggers is examined per call (``limit``, newest first): go
    on from ``next_offset``. A trigger whose workflow does not answer its status query in
    time is listed as **unknown**, with the reason. 503 with ``Retry-After`` when Temporal
    cannot be asked."""
    return await health.unhealthy(
        state, session, user, lag_threshold=lag_threshold, limit=limit, offset=offset
    )
