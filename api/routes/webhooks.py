"""``POST /webhooks/{preset}/{trigger_id}``: a signed delivery becomes one accepted event."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial

from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from api import control, webhook_http
from api.deps import StateDep
from api.errors import answers
from api.ratelimit import retry_after_header
from api.schemas import WebhookAccepted
from api.state import AppState
from triggers.contracts.metrics import STAGE_API
from triggers.core.events import bound_event, log_fields, run_workflow_id, signal_size
from triggers.core.signatures import SignatureError
from triggers.infra import replays, store, tracing
from triggers.infra.admission import Admission, admit
from triggers.providers import find_provider, webhook

router = APIRouter(tags=["webhooks"])
log = logging.getLogger("triggers.webhooks")


def _error(code: int, message: str, retry_after: str | None = None) -> JSONResponse:
    headers = {"Retry-After": retry_after} if retry_after else None
    return JSONResponse(status_code=code, content={"detail": message}, headers=headers)


async def _replayed(
    state: AppState, trigger_id: str, body: bytes, key: str, window: int
) -> JSONResponse | None:
    """The 409 (or 503) answer when this body was accepted under another event key within
    the trigger's replay window; None when the delivery may go on."""
    try:
        async with state.sessions() as session:
            fresh = await replays.claim(
                session,
                trigger_id=uuid.UUID(trigger_id),
                fingerprint=replays.body_fingerprint(body),
                event_key=key,
                window_seconds=window,
                now=datetime.now(UTC),
            )
    except (SQLAlchemyError, OSError) as exc:
        log.warning("replay check for %s failed (%s): answered 503", trigger_id, type(exc).__name__)
        retry = str(state.settings.retry_after_seconds)
        return _error(503, "event not accepted: the database is unavailable; retry later", retry)
    if fresh:
        return None
    log.info("webhook %s refused: body replayed under a new delivery id", trigger_id)
    return _error(
        409,
        f"replayed delivery: this body was accepted under another delivery id within the "
        f"last {window} s (replay_window_seconds)",
    )


@router.post(
    "/webhooks/{preset}/{trigger_id}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=WebhookAccepted,
    responses=answers(
        400,
        401,
        404,
        408,
        409,
        413,
        415,
        422,
        429,
        431,
        503,
        d400="A body the scheme cannot read, or a repeated header",
        d401="Bad, missing or expired signature",
        d404="No such trigger for this preset",
        d409="The trigger is disabled, or the body is a replay",
        d415="Body type the scheme cannot read, or a content encoding",
    ),
)
async def receive_webhook(
    preset: str, trigger_id: str, request: Request, state: StateDep
) -> JSONResponse:
    """Verify a delivery and hand it to the trigger's workflow.

    202 means the event is durably accepted: the signal carrying it is persisted in the
    trigger workflow's history. ``would_start`` says whether it passed the trigger's
    condition: only then is the run ``run_id`` started; a dropped event never has one.
    Repeats of a delivery answer 202 with ``duplicate: true`` and never start a second run.
    While the builder page listens for a test event on the trigger, the next verified
    delivery is captured instead (``captured: true``): not accepted, no run, also when
    the trigger is disabled.
    """
    with tracing.webhook_span(preset, request.headers.get("traceparent")):
        response = await _receive(preset, trigger_id, request, state)
        tracing.annotate({"http.response.status_code": response.status_code})
        return response


async def _receive(preset: str, trigger_id: str, request: Request, state: AppState) -> JSONResponse:
    settings = state.settings
    # Answers before the body is read close the connection when its rest may be large.
    early = partial(webhook_http.answer, close=webhook_http.unread_body_is_large(request))
    if webhook_http.header_bytes(request) > webhook_http.MAX_HEADER_BYTES:
        return early(431, f"request headers are larger than {webhook_http.MAX_HEADER_BYTES} bytes")
    try:
        tid = uuid.UUID(trigger_id)
    except ValueError:
        return early(404, "trigger not found")
    # The canonical form: run IDs must not depend on how the sender spelled the UUID.
    trigger_id = str(tid)
    tracing.annotate({"triggers.trigger_id": trigger_id})
    async with state.sessions() as session:
        trigger = await store.get_trigger(session, trigger_id=tid)
    info = None if trigger is None else find_provider(trigger.provider)
    if trigger is None or info is None or not info.receives_webhooks:
        return early(404, "trigger not found")
    config = webhook.WebhookConfig.model_validate(trigger.config)
    if config.preset != preset:
        return early(404, "trigger not found")
    listening = state.captures.listening(trigger_id)
    if not trigger.enabled and not listening:
        return early(409, "trigger is disabled")
    twice = webhook_http.repeated(request, webhook.single_headers(config))
    if twice is not None:
        return early(400, f"header {twice} appears more than once")
    coding = webhook_http.content_coding_refused(request)
    if coding is not None:
        return early(415, coding, headers={"Accept-Encoding": "identity"})

    limit = min(
        config.max_body_bytes or settings.webhook_max_body_bytes, settings.webhook_max_body_bytes
    )
    try:
        body = await webhook_http.read_body(
            request, limit=limit, timeout=settings.webhook_body_timeout_seconds
        )
    except webhook_http.BodyRefused as exc:
        # The rest of the body was not read: the connection cannot carry another request.
        return webhook_http.answer(exc.status, exc.message, close=True)

    headers = {k.lower(): v for k, v in request.headers.items()}
    secrets = state.secret_box.decrypt(trigger.secrets_encrypted)
    try:
        verified = webhook.verify(config, secrets, headers, body, now=time.time())
    except SignatureError as exc:
        log.info("webhook %s rejected: %s", trigger_id, exc)
        return _error(401, f"signature rejected: {exc}")

    wait = state.limiter.take(
        trigger_id,
        rate=config.rate_limit_per_second or settings.webhook_rate_limit_per_second,
        burst=config.rate_limit_burst or settings.webhook_rate_limit_burst,
    )
    if wait > 0:
        return _error(429, "rate limit exceeded", retry_after_header(wait))

    try:
        data, content_type = webhook.parse_body(config, headers.get("content-type", ""), body)
    except webhook.WebhookRejected as exc:
        return _error(exc.status, exc.message)
    built = webhook.build_event(
        config,
        trigger_id=trigger_id,
        headers=headers,
        body=body,
        data=data,
        datacontenttype=content_type,
        verified=verified,
        received_at=datetime.now(UTC),
    )
    # The event carries this request's span: its handling and its run continue the trace.
    event = bound_event(replace(built, traceparent=tracing.traceparent()))
    run_id = run_workflow_id(trigger_id, event.key)
    tracing.annotate(
        {
            "triggers.provider": trigger.provider,
            "triggers.event_id": event.id,
            "triggers.event_key": event.key,
            "triggers.body_bytes": len(body),
        }
    )
    if listening and state.captures.catch(trigger_id, event):
        # A test event for the builder page: shown there, not accepted, no run.
        log.info("webhook %s: delivery captured as a test event", trigger_id)
        captured = WebhookAccepted(
            event_id=event.id,
            event_key=event.key,
            run_id=run_id,
            duplicate=False,
            would_start=False,
            captured=True,
        )
        return JSONResponse(status_code=202, content=captured.model_dump())
    recent_key = f"{trigger_id}:{event.key}"
    # Known duplicates only: this process accepted the same key before. Anything else is
    # sent on; the trigger workflow counts a repeat it recognises in ``duplicates``.
    duplicate = recent_key in state.recent
    would_start: bool | None = None
    if duplicate:
        log.info(
            "event deduplicated",
            extra=log_fields(trigger_id, trigger.provider, event, run_id=run_id),
        )
    if not duplicate and config.replay_window_seconds:
        refused = await _replayed(state, trigger_id, body, event.key, config.replay_window_seconds)
        if refused is not None:
            return refused
    if not duplicate:
        # Decided (the condition, within its budget) and large data stored aside.
        (event,) = await admit(Admission.of(trigger), [event], sessions=state.sessions)
        with control.unavailable_as_503(
            "event not accepted",
            retry_after=settings.retry_after_seconds,
        ):
            await state.batcher.submit(trigger, event, size=signal_size(event))
        state.recent.add(recent_key)
        would_start = event.verdict is None or event.verdict.result == "passed"
    else:
        state.metrics.duplicate(trigger.provider, trigger_id, STAGE_API)
    # Accepted (persisted, or a repeat of what was): counted once here, at intake.
    state.metrics.received(trigger.provider, trigger_id)
    accepted = WebhookAccepted(
        event_id=event.id,
        event_key=event.key,
        run_id=run_id,
        duplicate=duplicate,
        would_start=would_start,
    )
    return JSONResponse(status_code=202, content=accepted.model_dump())
