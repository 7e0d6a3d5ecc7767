"""Liveness and readiness."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import sqlalchemy as sa
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from temporalio.service import RPCError, RPCStatusCode

from api.deps import StateDep
from api.state import AppState
from triggers.infra.temporal import SearchAttributesMissing, missing_search_attributes

router = APIRouter(tags=["health"])

# Each check answers within this long (they run together), so /readyz answers in about
# that time even when Temporal accepts connections and never answers (a hung server, a
# proxy), as the webhook path's calls do.
CHECK_TIMEOUT_SECONDS = 3.0
# Answers to listing search attributes that mean "not allowed to look", not "missing":
# such a deployment is not held unready for it.
_NOT_CHECKABLE = {RPCStatusCode.PERMISSION_DENIED, RPCStatusCode.UNIMPLEMENTED}


class Ready(BaseModel):
    ready: bool
    database: str = Field(description="`ok`, or `unavailable (<error type>)`.")
    temporal: str = Field(description="`ok`, `unhealthy`, or `unavailable (<error type>)`.")
    search_attributes: str = Field(
        description="`ok`, `missing: <names and the command that registers them>`, "
        "`unavailable (<error type>)`, or `not checked (<why>)` (Temporal unavailable or "
        "unhealthy, or not allowed to list them: then it does not hold readiness back)."
    )


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Ready,
    responses={
        503: {
            "model": Ready,
            "description": "The database or Temporal is not ready, or the namespace lacks"
            " search attributes.",
        }
    },
)
async def readyz(state: StateDep) -> JSONResponse:
    """Ready to accept events: the database answers, Temporal is reachable, and its
    namespace has the search attributes every trigger workflow and run sets
    (``search_attributes`` says which are missing and how to register them). Answers
    within a few seconds, also when Temporal hangs."""
    database, (temporal, attributes) = await asyncio.gather(_database(state), _temporal(state))
    checks = {"database": database, "temporal": temporal, "search_attributes": attributes}
    ready = all(v == "ok" or v.startswith("not checked") for v in checks.values())
    body = Ready(ready=ready, **checks)
    return JSONResponse(status_code=200 if ready else 503, content=body.model_dump())


async def _database(state: AppState) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            async with state.engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
    except Exception as exc:  # any failure means "not ready"; the type is enough to report
        return f"unavailable ({type(exc).__name__})"
    return "ok"


async def _temporal(state: AppState) -> tuple[str, str]:
    """The health check, then the search attributes, in one time budget."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CHECK_TIMEOUT_SECONDS
    client = state.client
    try:
        # asyncio's timeout as well as the RPC's: a lazy client's first call connects first,
        # and a connection that is accepted but never answered is not bounded by the RPC's.
        async with asyncio.timeout_at(deadline):
            ok = await client.service_client.check_health(
                timeout=timedelta(seconds=CHECK_TIMEOUT_SECONDS)
            )
    except Exception as exc:
        return f"unavailable ({type(exc).__name__})", "not checked (Temporal unavailable)"
    if not ok:
        return "unhealthy", "not checked (Temporal unhealthy)"
    try:
        missing = await missing_search_attributes(client, timeout=max(0.1, deadline - loop.time()))
    except RPCError as exc:
        if exc.status in _NOT_CHECKABLE:
            return "ok", f"not checked ({exc.status.name})"
        return "ok", f"unavailable (RPCError {exc.status.name})"
    except Exception as exc:
        return "ok", f"unavailable ({type(exc).__name__})"
    if missing:
        return "ok", f"missing: {SearchAttributesMissing(client.namespace, missing)}"
    return "ok", "ok"
