"""The builder's pages: sign in and out, the trigger list, a trigger's page and what it
does there (enable, disable, delete, shares). Every change goes through the trigger
lifecycle service (``api/services/triggers.py``) or the API's own route functions, with
the same owner and share rules as the API."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import ValidationError

from api import control
from api.deps import SessionDep, StateDep
from api.routes import shares as share_routes
from api.routes.dead_letters import redrive_dead_letter
from api.schemas import ShareIn
from api.services import triggers as lifecycle
from api.ui import dead_letters as dead_letter_view
from api.ui import status_view
from api.ui.forms import Values
from api.ui.session import (
    MAX_KEY_CHARS,
    SESSION_COOKIE,
    SESSION_SECONDS,
    SIGNIN_COOKIE,
    Session,
    new_token,
    same_token,
)
from api.ui.web import (
    SignedDep,
    error_page,
    page,
    posted,
    read_form,
    redirect,
    sealer,
)
from api.validation import clean_errors
from api.views import to_public
from triggers.infra import store
from triggers.providers import provider_names

router = APIRouter(include_in_schema=False)
STATES = ("active", "degraded", "failed", "paused", "finished", "disabled")
LIST_LIMIT = 200
STATUS_TIMEOUT = 3.0


def _cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )


@router.get("/")
async def root() -> Response:
    return redirect("/ui/triggers")


@router.get("/ui/signin")
async def signin_page(request: Request) -> Response:
    token = new_token()
    response = page(request, "signin.html", {"csrf": token, "error": None, "me": None})
    _cookie(response, request, SIGNIN_COOKIE, token, 3600)
    return response


@router.post("/ui/signin")
async def signin(request: Request, state: StateDep, db: SessionDep) -> Response:
    form = await read_form(request)
    if not same_token(form.values.get("csrf"), request.cookies.get(SIGNIN_COOKIE)):
        return await _signin_again(request, "The sign-in form expired: try again.", 403)
    key = form.values.get("api_key", "").strip()
    user = None
    if 0 < len(key) <= MAX_KEY_CHARS:
        user = await store.user_for_api_key(db, key=key)
    if user is None:
        return await _signin_again(request, "This API key is not valid.", 401)
    response = redirect("/ui/triggers")
    sealed = sealer(state).seal(Session(api_key=key, csrf=new_token()))
    _cookie(response, request, SESSION_COOKIE, sealed, SESSION_SECONDS)
    response.delete_cookie(SIGNIN_COOKIE, path="/")
    return response


async def _signin_again(request: Request, message: str, code: int) -> Response:
    token = new_token()
    response = page(
        request, "signin.html", {"csrf": token, "error": message, "me": None}, status_code=code
    )
    _cookie(response, request, SIGNIN_COOKIE, token, 3600)
    return response


@router.post("/ui/signout")
async def signout(request: Request, signed: SignedDep) -> Response:
    await posted(request, signed)
    response = redirect("/ui/signin")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


async def _status_or_none(state: Any, trigger_id: str) -> Any:
    try:
        return await asyncio.wait_for(
            control.runtime_status(state.client, trigger_id), STATUS_TIMEOUT
        )
    except Exception:  # the list shows "unknown" for a status Temporal did not give
        return None


@router.get("/ui/triggers")
async def trigger_list(
    request: Request, signed: SignedDep, provider: str = "", state: str = ""
) -> Response:
    provider = provider[:64]
    state = state if state in STATES else ""
    rows, total = await store.list_triggers(
        signed.db, user=signed.user, provider=provider or None, limit=LIST_LIMIT, offset=0
    )
    items = [to_public(signed.state, t, role or "viewer") for t, role in rows]
    if state:
        items = [t for t in items if t.status == state]
    statuses = await asyncio.gather(*(_status_or_none(signed.state, str(t.id)) for t in items))
    return page(
        request,
        "list.html",
        {
            "me": signed.user,
            "csrf": signed.session.csrf,
            "rows": list(zip(items, statuses, strict=True)),
            "total": total,
            "providers": provider_names(),
            "states": STATES,
            "provider": provider,
            "state": state,
        },
    )


async def _trigger_page(
    request: Request,
    signed: SignedDep,
    trigger_id: uuid.UUID,
    form: Values | None = None,
    code: int = 200,
) -> Response:
    try:
        trigger, role = await lifecycle.load(signed.db, signed.user, trigger_id, "viewer")
    except HTTPException as exc:
        return error_page(request, exc.status_code, str(exc.detail), signed)
    public = to_public(signed.state, trigger, role)
    shares = await store.list_shares(signed.db, trigger=trigger)
    status_error = None
    status = None
    try:
        status = await lifecycle.runtime_status(signed.state, signed.db, signed.user, trigger_id)
    except HTTPException as exc:
        status_error = str(exc.detail)
    stream = dead_letter_view.is_stream(trigger)
    letters = await dead_letter_view.listing(signed.state, signed.db, trigger)
    return page(
        request,
        "trigger.html",
        {
            "me": signed.user,
            "csrf": signed.session.csrf,
            "t": public,
            "shares": shares,
            "status_rows": status_view.rows(status) if status is not None else [],
            "state_name": status.status if status is not None else public.status,
            "status_error": status_error,
            "signing": status_view.signing_help(public.config),
            "form": form or Values(),
            "dead_letters": letters if stream or letters.total else None,
        },
        status_code=code,
    )


@router.get("/ui/triggers/{trigger_id}")
async def trigger_page(request: Request, signed: SignedDep, trigger_id: uuid.UUID) -> Response:
    return await _trigger_page(request, signed, trigger_id)


@router.post("/ui/triggers/{trigger_id}/{action}")
async def trigger_action(
    request: Request, signed: SignedDep, trigger_id: uuid.UUID, action: str
) -> Response:
    form = await posted(request, signed)
    here = f"/ui/triggers/{trigger_id}"
    try:
        if action in ("enable", "disable"):
            await lifecycle.set_enabled(
                signed.state, signed.db, signed.user, trigger_id, action == "enable"
            )
        elif action == "delete":
            if form.values.get("confirm") != "yes":
                form.error("confirm", "tick the box to confirm the deletion")
                return await _trigger_page(request, signed, trigger_id, form)
            await lifecycle.delete(signed.state, signed.db, signed.user, trigger_id)
            return redirect("/ui/triggers")
        elif action == "share":
            return await _share(request, signed, trigger_id, form)
        elif action == "unshare":
            name = form.values.get("user", "")[:200]
            await share_routes.unshare_trigger(trigger_id, name, signed.db, signed.user)
        else:
            return error_page(request, 404, "no such action", signed)
    except RequestValidationError as exc:
        for err in clean_errors(exc.errors()):
            form.error("action", err["msg"])
        return await _trigger_page(request, signed, trigger_id, form)
    except HTTPException as exc:
        if exc.status_code == 404:
            return error_page(request, 404, str(exc.detail), signed)
        form.error("action", _detail(exc.detail))
        return await _trigger_page(request, signed, trigger_id, form)
    return redirect(here)


def _detail(detail: Any) -> str:
    if isinstance(detail, list):
        return "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail)
    return str(detail)


async def _share(
    request: Request, signed: SignedDep, trigger_id: uuid.UUID, form: Values
) -> Response:
    try:
        body = ShareIn.model_validate(
            {"user": form.values.get("user", "")[:200], "role": form.values.get("role", "")}
        )
    except ValidationError as exc:
        for err in clean_errors(exc.errors()):
            form.error(f"share.{err['loc'][0]}" if err["loc"] else "share.user", err["msg"])
        return await _trigger_page(request, signed, trigger_id, form)
    try:
        await share_routes.share_trigger(trigger_id, body, signed.db, signed.user)
    except RequestValidationError as exc:
        for err in clean_errors(exc.errors()):
            form.error("share.user", err["msg"])
        return await _trigger_page(request, signed, trigger_id, form)
    return redirect(f"/ui/triggers/{trigger_id}#shares")


@router.post("/ui/triggers/{trigger_id}/dead-letters/{dl_id}/redrive")
async def redrive(
    request: Request, signed: SignedDep, trigger_id: uuid.UUID, dl_id: uuid.UUID
) -> Response:
    """The API's redrive (its route function: editor or owner, its rules and answers); its
    refusal is shown next to the dead letter."""
    form = await posted(request, signed)
    try:
        await redrive_dead_letter(trigger_id, dl_id, signed.state, signed.db, signed.user)
    except RequestValidationError as exc:
        message = "; ".join(str(e["msg"]) for e in clean_errors(exc.errors()))
        form.error(f"dl.{dl_id}", message)
        return await _trigger_page(request, signed, trigger_id, form, 422)
    except HTTPException as exc:
        where = "dead-letters" if exc.status_code == 404 else f"dl.{dl_id}"
        form.error(where, _detail(exc.detail))
        return await _trigger_page(request, signed, trigger_id, form, exc.status_code)
    return redirect(f"/ui/triggers/{trigger_id}#dead-letters")
