"""The FastAPI application."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from temporalio.client import Client

from api.docs import add_docs
from api.routes import dry_run, health, me, triggers, webhooks
from api.state import AppState
from api.validation import validation_error_handler
from triggers.crypto import SecretBox
from triggers.db import make_engine, session_factory
from triggers.settings import Settings, get_settings
from triggers.temporal import connect

log = logging.getLogger("triggers.api")


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    # The type and path are enough to find it in the logs; no stack trace leaves the server.
    log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path)
    return JSONResponse(status_code=500, content={"detail": "internal error"})


def create_app(settings: Settings | None = None, *, client: Client | None = None) -> FastAPI:
    """Build the app. ``client`` lets a caller share an existing Temporal client."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.resolved_database_url)
        app.state.triggers = AppState(
            settings=settings,
            engine=engine,
            sessions=session_factory(engine),
            # Lazy: the API starts, and answers 503, while Temporal is down.
            client=client or await connect(settings, lazy=True),
            secret_box=SecretBox.from_setting(settings.secret_keys.get_secret_value()),
        )
        try:
            yield
        finally:
            await engine.dispose()

    app = FastAPI(
        title="temporal-triggers",
        description="Turn events into durable, deduplicated workflow runs on Temporal.",
        version="0.1.0",
        lifespan=lifespan,
        # Served by add_docs, from local files.
        docs_url=None,
        redoc_url=None,
    )
    add_docs(app)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(Exception, _unhandled)
    app.include_router(health.router)
    app.include_router(me.router)
    app.include_router(triggers.router)
    app.include_router(dry_run.router)
    app.include_router(webhooks.router)
    return app
