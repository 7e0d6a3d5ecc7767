"""Liveness and readiness."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.deps import StateDep

router = APIRouter(tags=["health"])


class Ready(BaseModel):
    ready: bool
    database: str = Field(description="`ok`, or `unavailable (<error type>)`.")
    temporal: str = Field(description="`ok`, `unhealthy`, or `unavailable (<error type>)`.")


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Ready,
    responses={503: {"model": Ready, "description": "The database or Temporal is not ready."}},
)
async def readyz(state: StateDep) -> JSONResponse:
    """Ready to accept events: the database answers and Temporal is reachable."""
    checks: dict[str, str] = {}
    try:
        async with state.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any failure means "not ready"; the type is enough to report
        checks["database"] = f"unavailable ({type(exc).__name__})"
    try:
        ok = await state.client.service_client.check_health()
        checks["temporal"] = "ok" if ok else "unhealthy"
    except Exception as exc:
        checks["temporal"] = f"unavailable ({type(exc).__name__})"
    ready = all(v == "ok" for v in checks.values())
    body = Ready(ready=ready, **checks)
    return JSONResponse(status_code=200 if ready else 503, content=body.model_dump())
