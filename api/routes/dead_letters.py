"""``/api/triggers/{id}/dead-letters``: the stream messages of a trigger that could not
become events (see ``triggers/infra/dead_letters.py``), and their redrive."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import ValidationError

from api import control
from api.dead_letter_schemas import DeadLetterPage, DeadLetterPublic, Redriven
from api.deps import CurrentUser, SessionDep, StateDep
from api.errors import answers
from api.state import AppState
from api.validation import invalid
from triggers.core.events import Event, run_workflow_id, signal_size
from triggers.infra import dead_letters, store
from triggers.infra.admission import Admission, admit
from triggers.infra.models import DeadLetter, Trigger
from triggers.providers import find_provider
from triggers.providers.base import SourceContext
from triggers.providers.stream import Message, PoisonMessage, StreamProvider

router = APIRouter(prefix="/api/triggers/{trigger_id}/dead-letters", tags=["dead letters"])
_READ = answers(401, 404, 422, 503)
_REDRIVE = answers(
    401,
    403,
    404,
    409,
    422,
    503,
    d409="Its raw value was truncated, the trigger is disabled, or its provider is not a "
    "stream provider (or its stored config no longer validates)",
    d422="Invalid input, or the message still cannot become an event (its reason)",
)


async def _trigger(
    session: SessionDep, user: CurrentUser, trigger_id: uuid.UUID, need: str
) -> Trigger:
    """Owner or share only: another user's trigger is indistinguishable from a missing one."""
    try:
        trigger, _ = await store.trigger_for_user(
            session, trigger_id=trigger_id, user=user, need=need
        )
    except store.NotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "trigger not found") from None
    except store.Forbidden as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None
    return trigger


async def _row(session: SessionDep, trigger: Trigger, dl_id: uuid.UUID) -> DeadLetter:
    row = await dead_letters.get(session, trigger_id=trigger.id, dead_letter_id=dl_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "dead letter not found")
    return row


@router.get("", response_model=DeadLetterPage, responses=_READ)
async def list_dead_letters(
    trigger_id: uuid.UUID,
    session: SessionDep,
    user: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=50)] = 20,
    cursor: Annotated[
        str | None,
        Query(max_length=dead_letters.MAX_CURSOR_CHARS, description="``next_cursor`` of a page."),
    ] = None,
) -> DeadLetterPage:
    """The trigger's dead letters, newest first: stream messages that could not become
    events (undecodable, over the size limit, delivered too often), each with its reason,
    headers and raw value (base64). ``total`` counts those kept, ``dropped`` those deleted
    to keep the bound. Owner or share only."""
    trigger = await _trigger(session, user, trigger_id, "viewer")
    after = None
    if cursor is not None:
        try:
            after = dead_letters.Position.decode(cursor)
        except ValueError:
            raise invalid(("query", "cursor"), "not a cursor this API gave") from None
    rows, end = await dead_letters.list_page(
        session, trigger_id=trigger.id, limit=limit, after=after
    )
    return DeadLetterPage(
        items=[DeadLetterPublic.of(r) for r in rows],
        total=await dead_letters.count(session, trigger_id=trigger.id),
        dropped=await dead_letters.dropped(session, trigger_id=trigger.id),
        limit=limit,
        next_cursor=None if end is None else end.encode(),
    )


@router.get("/{dl_id}", response_model=DeadLetterPublic, responses=_READ)
async def get_dead_letter(
    trigger_id: uuid.UUID, dl_id: uuid.UUID, session: SessionDep, user: CurrentUser
) -> DeadLetterPublic:
    """One dead letter of the trigger. Owner or share only."""
    trigger = await _trigger(session, user, trigger_id, "viewer")
    return DeadLetterPublic.of(await _row(session, trigger, dl_id))


def _conflict(message: str) -> HTTPException:
    return HTTPException(status.HTTP_409_CONFLICT, f"cannot be redriven: {message}")


def _event_of(state: AppState, trigger: Trigger, row: DeadLetter) -> Event:
    """The dead letter's event under the trigger's current config: the provider's own
    ``to_event``, on an instance that is configured but never connected."""
    info = find_provider(trigger.provider)
    source = None if info is None else info.source
    if info is None or source is None or not issubclass(source, StreamProvider):
        raise _conflict(f"provider {trigger.provider!r} is not an installed stream provider")
    try:
        config = info.config_model.model_validate(trigger.config)
    except ValidationError:
        raise _conflict("the trigger's stored config no longer validates; update it") from None
    secrets = state.secret_box.decrypt(trigger.secrets_encrypted).values()
    message = Message(
        key=row.key,
        value=row.raw,
        headers=dead_letters.headers_of(row),
        attempts=row.attempts,
        meta=dict(row.meta or {}),
        time=dead_letters.utc(row.message_time) if row.message_time else None,
    )
    loc = ("path", "dl_id")
    try:
        provider = source()
        provider.configure(
            config,
            SourceContext(
                trigger_id=str(trigger.id), trigger_name=trigger.name, owner=str(trigger.user_id)
            ),
        )
        event = provider.to_event(message)
    except PoisonMessage as exc:
        reason = dead_letters.clean_reason(str(exc), secrets)
        raise invalid(loc, f"still cannot become an event: {reason}", "poison_message") from None
    except Exception as exc:  # a provider's bug is its answer, never a 500
        raise invalid(
            loc, f"the provider failed to make an event of it ({type(exc).__name__})", "provider"
        ) from None
    if not isinstance(event, Event):
        raise invalid(loc, "the provider's to_event returned no event", "provider")
    return event


@router.post("/{dl_id}/redrive", response_model=Redriven, responses=_REDRIVE)
async def redrive_dead_letter(
    trigger_id: uuid.UUID,
    dl_id: uuid.UUID,
    state: StateDep,
    session: SessionDep,
    user: CurrentUser,
) -> Redriven:
    """Re-inject a dead letter as an event (editor or owner), after its cause was fixed:
    the provider makes the event of its raw value under the trigger's *current* config,
    and the event is delivered to the trigger workflow as a webhook's is (its condition
    decides it; 200 means the signal carrying it is persisted). The event key is the
    message's, so redriving twice starts no second run. 422 with the reason when it still
    cannot become an event; 409 when only part of its value was kept."""
    trigger = await _trigger(session, user, trigger_id, "editor")
    row = await _row(session, trigger, dl_id)
    if row.raw_truncated:
        raise _conflict(f"only the first {len(row.raw)} of its {row.raw_size} bytes were kept")
    if not trigger.enabled:
        raise _conflict("the trigger is disabled")
    event = _event_of(state, trigger, row)
    tid = str(trigger.id)
    # Bounded, decided (the condition, within its budget), large data stored aside.
    (event,) = await admit(Admission.of(trigger), [event], sessions=state.sessions)
    with control.unavailable_as_503(
        "nothing was redriven", retry_after=state.settings.retry_after_seconds
    ):
        await state.batcher.submit(trigger, event, size=signal_size(event))
    again = row.redriven_at is not None
    run_id = run_workflow_id(tid, event.key)
    row = await dead_letters.mark_redriven(session, row=row, run_id=run_id)
    return Redriven(
        dead_letter=DeadLetterPublic.of(row),
        event_id=event.id,
        event_key=event.key,
        run_id=run_id,
        would_start=event.verdict is None or event.verdict.result == "passed",
        again=again,
    )
