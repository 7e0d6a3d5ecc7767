"""``POST /api/triggers/{id}/test``: the dry run."""

from __future__ import annotations

import uuid
from dataclasses import replace

from fastapi import APIRouter

from api import control, dryrun
from api.deps import CurrentUser, SessionDep, StateDep
from api.dryrun_schemas import DryRunIn, DryRunOut
from api.errors import answers
from api.services.triggers import load
from triggers.contracts.trigger import RecentEvent
from triggers.core.events import Event
from triggers.infra import payloads


async def _with_data(session: SessionDep, recent: RecentEvent) -> tuple[Event, bool]:
    """A recent event with its claim-checked data loaded (``True``: the data is gone)."""
    if recent.data_ref is None:
        return recent, recent.data_truncated
    try:
        data = await payloads.load(session, ref=recent.data_ref)
    except payloads.PayloadMissing:
        return replace(recent, data_ref=None), True
    return replace(recent, data=data, data_ref=None), False


router = APIRouter(prefix="/api/triggers", tags=["triggers"])


@router.post(
    "/{trigger_id}/test", response_model=DryRunOut, responses=answers(400, 401, 404, 422, 503)
)
async def test_trigger(
    trigger_id: uuid.UUID,
    body: DryRunIn,
    state: StateDep,
    session: SessionDep,
    user: CurrentUser,
) -> DryRunOut:
    """Try the trigger on events without side effects: nothing starts, nothing is called.

    Give sample ``events`` (shaped like the trigger's events: ``id``, ``key`` (default: the
    id), ``source``, ``type``, ``time``, ``subject``, ``data``, ``headers``), or ``last``:
    the trigger's latest accepted events (up to 20 are kept; large data is read back from
    the claim-check store; data no longer there is tried as null, ``data_truncated: true``).

    For each event: whether it would start a run, the condition's outcome (``passed``,
    ``dropped`` or ``error`` with the message), the input a ``workflow`` target's run would
    get, and for a graph the nodes that would run, their items in and out, and the calls
    they would make. Viewers may use it."""
    trigger, _ = await load(session, user, trigger_id, "viewer")
    if body.events is not None:
        events = [(dryrun.event_of_sample(e), False) for e in body.events]
    else:
        assert body.last is not None
        with control.unavailable_as_503(
            "recent events unknown", retry_after=state.settings.retry_after_seconds
        ):
            recent = await control.recent_events(state.client, str(trigger.id))
        events = [await _with_data(session, r) for r in recent[-body.last :]]
    return DryRunOut(results=dryrun.try_events(trigger, events))
