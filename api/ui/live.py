"""What a trigger page asks while it is open: the live event log (server-sent events:
the status and each recent event's outcome, with a link to its run in the Temporal Web
UI), the test-event capture, the dry run and the condition's live check. JSON calls carry
the session's CSRF token in ``X-CSRF-Token``."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError
from temporalio.service import RPCError

from api.dryrun_schemas import DryRunIn
from api.routes.dry_run import test_trigger
from api.services import triggers as lifecycle
from api.state import AppState
from api.ui import live_log, status_view
from api.ui.forms import MAX_FORM_BYTES
from api.ui.web import SECURITY_HEADERS, Signed, SignedDep, check_csrf, templates
from api.validation import clean_errors, expression_or_422
from triggers.infra.models import Trigger, User

router = APIRouter(include_in_schema=False)
# One stream lives this long; the browser's EventSource then reconnects (and is
# authorised again).
STREAM_SECONDS = 300.0
POLL_SECONDS = 1.0
MAX_STREAMS = 64
_streams = 0


def _json(content: Any, status_code: int = 200) -> JSONResponse:
    return JSONResponse(content, status_code=status_code, headers=SECURITY_HEADERS)


async def _json_body(request: Request, signed: Signed) -> Any:
    check_csrf(signed, request.headers.get("x-csrf-token"))
    size, chunks = 0, []
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            raise HTTPException(413, f"body over {MAX_FORM_BYTES} bytes")
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks) or b"null")
    except (ValueError, RecursionError):
        raise HTTPException(400, "body is not JSON") from None


def _errors(exc: ValidationError | RequestValidationError, prefix: tuple[str, ...]) -> Any:
    raw = [{**e, "loc": (*prefix, *e["loc"])} for e in exc.errors()]
    return {"detail": clean_errors(raw)}


@router.post("/ui/check-condition")
async def check_condition(request: Request, signed: SignedDep) -> Response:
    """The API's CEL compile of a condition or input mapping: ok, or its message (with
    line and column)."""
    body = await _json_body(request, signed)
    expr = body.get("expression") if isinstance(body, dict) else None
    if not isinstance(expr, str) or not 0 < len(expr) <= 10_000:
        return _json({"ok": False, "message": "an expression of 1 to 10000 characters"})
    try:
        expression_or_422(expr)
    except RequestValidationError as exc:
        errors = clean_errors(exc.errors())
        return _json({"ok": False, "message": errors[0]["msg"] if errors else "invalid"})
    return _json({"ok": True, "message": "compiles"})


@router.post("/ui/triggers/{trigger_id}/dry-run")
async def dry_run(request: Request, signed: SignedDep, trigger_id: uuid.UUID) -> Response:
    """``POST /api/triggers/{id}/test``, answered the same (it is that route's function)."""
    raw = await _json_body(request, signed)
    try:
        body = DryRunIn.model_validate(raw)
    except ValidationError as exc:
        return _json(_errors(exc, ("body",)), 422)
    try:
        out = await test_trigger(trigger_id, body, signed.state, signed.db, signed.user)
    except RequestValidationError as exc:
        return _json(_errors(exc, ()), 422)
    except HTTPException as exc:
        return _json({"detail": exc.detail}, exc.status_code)
    return _json(out.model_dump(mode="json"))


@router.post("/ui/triggers/{trigger_id}/capture")
async def listen(request: Request, signed: SignedDep, trigger_id: uuid.UUID) -> Response:
    """Listen for a test event: the next verified delivery is caught, not accepted.
    Editors only: while it listens, a real delivery starts no run."""
    await _json_body(request, signed)
    try:
        await lifecycle.load(signed.db, signed.user, trigger_id, "editor")
    except HTTPException as exc:
        return _json({"detail": exc.detail}, exc.status_code)
    try:
        signed.state.captures.listen(str(trigger_id))
    except OverflowError as exc:
        return _json({"detail": str(exc)}, 429)
    return _json({"listening": True})


@router.get("/ui/triggers/{trigger_id}/capture")
async def captured(request: Request, signed: SignedDep, trigger_id: uuid.UUID) -> Response:
    try:
        await lifecycle.load(signed.db, signed.user, trigger_id, "viewer")
    except HTTPException as exc:
        return _json({"detail": exc.detail}, exc.status_code)
    found = signed.state.captures.get(str(trigger_id))
    if found is None:
        return _json({"listening": False, "event": None})
    event = None if found.event is None else live_log.sample_of(found.event)
    return _json({"listening": found.event is None, "event": event})


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n"


async def _events(
    request: Request, state: AppState, user: User, trigger: Trigger
) -> AsyncIterator[str]:
    global _streams
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STREAM_SECONDS
    log = live_log.Log(state, trigger)
    fragment = templates.get_template("status.html")
    shown = ""
    _streams += 1
    try:
        yield "retry: 2000\n\n"
        while loop.time() < deadline and not await request.is_disconnected():
            try:
                async with state.sessions() as db:
                    status = await lifecycle.runtime_status(state, db, user, trigger.id)
                    entries = await log.update(status, db)
            except HTTPException as exc:
                if exc.status_code == 404:
                    yield _sse("gone", {"detail": "trigger not found"})
                    return
                yield _sse("problem", {"detail": str(exc.detail)})
            except (RPCError, TimeoutError) as exc:
                yield _sse("problem", {"detail": f"Temporal: {type(exc).__name__}"})
            else:
                html = fragment.render(rows=status_view.rows(status))
                if html != shown:
                    shown = html
                    yield _sse("status", {"html": html, "state": status.status})
                for entry in entries:
                    yield _sse("log", asdict(entry))
            await asyncio.sleep(POLL_SECONDS)
    finally:
        _streams -= 1


@router.get("/ui/triggers/{trigger_id}/live")
async def live(request: Request, signed: SignedDep, trigger_id: uuid.UUID) -> Response:
    global _streams
    try:
        trigger, _ = await lifecycle.load(signed.db, signed.user, trigger_id, "viewer")
    except HTTPException as exc:
        return _json({"detail": exc.detail}, exc.status_code)
    if _streams >= MAX_STREAMS:
        return _json({"detail": "too many live logs open; retry later"}, 429)
    # The stream outlives this request's database session: it opens its own each time.
    await signed.db.close()
    headers = {**SECURITY_HEADERS, "X-Accel-Buffering": "no"}
    return StreamingResponse(
        _events(request, signed.state, signed.user, trigger),
        media_type="text/event-stream",
        headers=headers,
    )
