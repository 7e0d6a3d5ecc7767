"""``POST /webhooks/{preset}/{trigger_id}``: a signed delivery becomes one accepted event."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime

from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse

from api import control
from api.deps import StateDep
from api.errors import answers
from api.ratelimit import retry_after_header
from api.schemas import WebhookAccepted
from triggers import store
from triggers.admission import Admission, admit
from triggers.events import bound_event, run_workflow_id, signal_size
from triggers.providers import webhook
from triggers.signatures import SignatureError

router = APIRouter(tags=["webhooks"])
log = logging.getLogger("triggers.webhooks")


class _TooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _error(code: int, message: str, retry_after: str | None = None) -> JSONResponse:
    headers = {"Retry-After": retry_after} if retry_after else None
    return JSONResponse(status_code=code, content={"detail": message}, headers=headers)


@router.post(
    "/webhooks/{preset}/{trigger_id}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=WebhookAccepted,
    responses=answers(
        400,
        401,
        404,
        409,
        413,
        415,
        422,
        429,
        503,
        d401="Bad, missing or expired signature",
        d404="No such trigger for this preset",
    ),
)
async def receive_webhook(
    preset: str, trigger_id: str, request: Request, state: StateDep
) -> JSONResponse:
    """Verify a delivery and hand it to the trigger's workflow.

    202 means the event is durably accepted: the signal carrying it is persisted in the
    trigger workflow's history. Repeats of a delivery answer 202 with ``duplicate: true``
    and never start a second run.
    """
    settings = state.settings
    try:
        tid = uuid.UUID(trigger_id)
    except ValueError:
        return _error(404, "trigger not found")
    # The canonical form: run IDs must not depend on how the sender spelled the UUID.
    trigger_id = str(tid)
    async with state.sessions() as session:
        trigger = await store.get_trigger(session, trigger_id=tid)
    if trigger is None or trigger.provider != "webhook" or trigger.config.get("preset") != preset:
        return _error(404, "trigger not found")
    if not trigger.enabled:
        return _error(409, "trigger is disabled")
    config = webhook.WebhookConfig.model_validate(trigger.config)

    limit = min(
        config.max_body_bytes or settings.webhook_max_body_bytes, settings.webhook_max_body_bytes
    )
    try:
        body = await _read_body(request, limit)
    except _TooLarge:
        return _error(413, f"body is larger than {limit} bytes")

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
    event = bound_event(built)
    run_id = run_workflow_id(trigger_id, event.key)
    recent_key = f"{trigger_id}:{event.key}"
    # Known duplicates only: this process accepted the same key before. Anything else is
    # sent on; the trigger workflow counts a repeat it recognises in ``duplicates``.
    duplicate = recent_key in state.recent
    if not duplicate:
        # Decided (the condition, within its budget) and large data stored aside.
        (event,) = await admit(Admission.of(trigger), [event], sessions=state.sessions)
        with control.unavailable_as_503(
            "event not accepted",
            retry_after=settings.retry_after_seconds,
        ):
            await state.batcher.submit(trigger, event, size=signal_size(event))
        state.recent.add(recent_key)
    accepted = WebhookAccepted(
        event_id=event.id, event_key=event.key, run_id=run_id, duplicate=duplicate
    )
    return JSONResponse(status_code=202, content=accepted.model_dump())
