"""What every builder page shares: templates, the security headers, the signed-in user
(from the session cookie, checked against the database each time), CSRF checks and the
bounded reading of a posted form."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlmodel.ext.asyncio.session import AsyncSession

from api.deps import SessionDep, StateDep
from api.state import AppState
from api.ui.forms import MAX_FORM_BYTES, MAX_FORM_FIELDS, Values
from api.ui.session import SESSION_COOKIE, Session, SessionSealer, same_token
from triggers.infra import store
from triggers.infra.models import User

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")

# No inline script or style, nothing from elsewhere, no framing.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
MAX_FIELD_CHARS = 64 * 1024


class SignInNeeded(Exception):
    """No (valid) session: the page answers with a redirect to the sign-in page."""


class FormTooLarge(Exception):
    pass


def sealer(state: AppState) -> SessionSealer:
    return SessionSealer(state.settings.secret_keys.get_secret_value())


@dataclass
class Signed:
    user: User
    session: Session
    db: AsyncSession
    state: AppState


async def signed_in(request: Request, state: StateDep, db: SessionDep) -> Signed:
    opened = sealer(state).open(request.cookies.get(SESSION_COOKIE))
    if opened is None:
        raise SignInNeeded
    user = await store.user_for_api_key(db, key=opened.api_key)
    if user is None:
        raise SignInNeeded
    return Signed(user=user, session=opened, db=db, state=state)


SignedDep = Annotated[Signed, Depends(signed_in)]


def page(
    request: Request, name: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    response = templates.TemplateResponse(request, name, context, status_code=status_code)
    response.headers.update(SECURITY_HEADERS)
    return response


def redirect(url: str) -> RedirectResponse:
    response = RedirectResponse(url, status_code=303)
    response.headers.update(SECURITY_HEADERS)
    return response


async def read_form(request: Request) -> Values:
    """A form-encoded body, bounded in bytes, fields and field size; repeated names keep
    the first value."""
    size = 0
    chunks = []
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            raise FormTooLarge
        chunks.append(chunk)
    text = b"".join(chunks).decode("utf-8", "replace")
    try:
        pairs = urllib.parse.parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except ValueError:
        raise FormTooLarge from None
    form = Values()
    for key, value in pairs:
        if len(key) <= 200 and key not in form.values:
            form.values[key] = value[:MAX_FIELD_CHARS].replace("\r\n", "\n")
    return form


def check_csrf(signed: Signed, given: str | None) -> None:
    if not same_token(given, signed.session.csrf):
        raise HTTPException(403, "the form is out of date (CSRF token): reload the page")


async def posted(request: Request, signed: Signed) -> Values:
    """A posted form of a signed-in user, its CSRF token checked."""
    form = await read_form(request)
    check_csrf(signed, form.values.get("csrf"))
    return form


def error_page(request: Request, code: int, message: str, signed: Signed | None) -> Response:
    return page(
        request,
        "error.html",
        {
            "code": code,
            "message": message,
            "me": signed.user if signed else None,
            "csrf": signed.session.csrf if signed else "",
        },
        status_code=code,
    )
