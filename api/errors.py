"""Error answers: their one body shape, their OpenAPI entries, and the last-resort handlers
that keep a failure a clean answer on a usable connection.

Every route lists the answers it can give with ``responses=answers(...)``, so the OpenAPI
names each status and its body; a status is documented here once.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy.exc
from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("triggers.api")


class ValidationProblem(BaseModel):
    loc: list[str | int] = Field(
        description='Where the problem is, e.g. `["body", "config", "preset"]`.'
    )
    msg: str = Field(description="What is wrong; never the value that was sent.")
    type: str


class ErrorBody(BaseModel):
    """The body of every error answer."""

    detail: str | list[ValidationProblem] = Field(
        description="A message, or (422) one entry per problem."
    )


class ValidationErrorBody(BaseModel):
    """A 422: the request was understood but something in it is not allowed."""

    detail: list[ValidationProblem]


def _header(description: str) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "string"}}


_RETRY_AFTER = {"Retry-After": _header("Seconds to wait before retrying.")}

_ANSWERS: dict[int, dict[str, Any]] = {
    400: {"description": "The body could not be read (not JSON this API can parse)."},
    401: {
        "description": "Missing or invalid API key (`Authorization: Bearer tt_...`).",
        "headers": {"WWW-Authenticate": _header("`Bearer`")},
    },
    403: {"description": "Your role on this trigger does not allow this."},
    404: {"description": "No such trigger (or not yours), or no such user or share."},
    408: {"description": "The body did not arrive in time."},
    409: {"description": "The trigger is disabled."},
    413: {"description": "The body is larger than the limit."},
    415: {"description": "A body of a type the scheme cannot read."},
    422: {
        "description": "Invalid input: each problem names its field in `loc`.",
        "model": ValidationErrorBody,
    },
    429: {"description": "Over the trigger's rate limit.", "headers": _RETRY_AFTER},
    431: {"description": "The request headers are too large."},
    503: {
        "description": "Temporal or the database is unreachable or refused the call: "
        "nothing was changed; retry after `Retry-After`.",
        "headers": _RETRY_AFTER,
    },
}


def answers(*codes: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses, each with its body model.
    ``descriptions`` (``d404="..."``) replaces a status's generic description."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        entry = {"model": ErrorBody, **_ANSWERS[code]}
        if f"d{code}" in descriptions:
            # Another kind of this status (a webhook's 401 is a signature, not a Bearer
            # challenge): its own words, and none of the generic headers.
            entry["description"] = descriptions[f"d{code}"]
            entry.pop("headers", None)
        out[code] = entry
    return out


# -- last-resort handlers ------------------------------------------------------------------

# The database not answering (PostgreSQL down or restarting, SQLite locked, the pool
# exhausted) is a 503 to retry, like Temporal not answering. Other database errors are
# bugs: they stay 500s, so the fuzzer finds them.
DATABASE_UNAVAILABLE = (
    OSError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
)


def database_unavailable_handler(retry_after: int) -> Any:
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        log.warning(
            "database unavailable (%s) on %s %s",
            type(exc).__name__,
            request.method,
            request.url.path,
        )
        return JSONResponse(
            status_code=503,
            content={"detail": "the database is unavailable; retry later"},
            headers={"Retry-After": str(retry_after)},
        )

    return handle


_METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")


async def method_not_allowed(request: Request, exc: Exception) -> JSONResponse:
    """A 405 whose ``Allow`` lists every method of the path. Starlette's names only the first
    route that matched the path, and FastAPI makes one route per method."""
    allowed = [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL
            for route in request.app.router.routes
        )
    ]
    return JSONResponse(
        status_code=405,
        content={"detail": "Method Not Allowed"},
        headers={"Allow": ", ".join(allowed)},
    )


class CatchAll:
    """Turns an unhandled error into a 500 answer *without* re-raising it. Starlette's own
    last handler re-raises after answering, and the server then drops the connection; a
    client's next request on it would fail for no fault of its own. The type and path are
    logged; no stack trace or message leaves the server (a message may quote a secret)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except Exception as exc:
            if started:
                raise  # half an answer is out: only closing the connection can end it
            log.error("unhandled %s on %s %s", type(exc).__name__, scope["method"], scope["path"])
            response = JSONResponse(status_code=500, content={"detail": "internal error"})
            await response(scope, receive, send)


# The error answers of the routes on one trigger: read it, act on it (enable...), change
# it with a body.
READ_ANSWERS = answers(401, 404, 422, 503)
ACT_ANSWERS = answers(401, 403, 404, 422, 503)
WRITE_ANSWERS = answers(400, 401, 403, 404, 422, 503)
