"""The FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from temporalio.client import Client
from temporalio.runtime import Runtime

from api import openapi, ui
from api.docs import add_docs
from api.errors import (
    DATABASE_UNAVAILABLE,
    CatchAll,
    database_unavailable_handler,
    method_not_allowed,
)
from api.metrics_http import WebhookAnswers
from api.routes import (
    dead_letters,
    dry_run,
    health,
    me,
    providers,
    shares,
    trigger_health,
    triggers,
    webhooks,
)
from api.routes import metrics as metrics_route
from api.state import AppState
from api.validation import validation_error_handler
from triggers.infra import tracing
from triggers.infra.crypto import SecretBox
from triggers.infra.db import make_engine, session_factory
from triggers.infra.metrics import Metrics
from triggers.infra.settings import Settings, get_settings
from triggers.infra.temporal import connect


def _webhook_request(scope: MutableMapping[str, Any]) -> bool:
    """Webhook requests have a server span of their own (``tracing.webhook_span``): a
    sender's trace context is only a link there, never their parent."""
    return str(scope.get("path", "")).startswith("/webhooks/")


def create_app(
    settings: Settings | None = None,
    *,
    client: Client | None = None,
    metrics: Metrics | None = None,
    runtime: Runtime | None = None,
) -> FastAPI:
    """Build the app. ``client`` lets a caller share an existing Temporal client, ``metrics``
    the process's metrics (``triggers dev`` shares one with its worker); ``runtime`` is the
    Temporal runtime a client of the app's own is connected with (its SDK metrics)."""
    settings = settings or get_settings()
    metrics = metrics or Metrics(per_trigger=settings.metrics_per_trigger)
    # Before the client is made in the lifespan: its plugins depend on it.
    tracing.configure("temporal-triggers-api")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.resolved_database_url)
        app.state.triggers = AppState(
            settings=settings,
            engine=engine,
            sessions=session_factory(engine),
            # Lazy: the API starts, and answers 503, while Temporal is down.
            client=client or await connect(settings, lazy=True, runtime=runtime),
            secret_box=SecretBox.from_setting(settings.secret_keys.get_secret_value()),
            metrics=metrics,
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
        # FastAPI's own request spans, through the global tracer provider (none while
        # tracing is off); its OpenTelemetry log records are off: ours pass the redaction.
        telemetry={"exclude": _webhook_request, "logs": False},
        # Served by add_docs, from local files.
        docs_url=None,
        redoc_url=None,
    )
    add_docs(app)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    unavailable = database_unavailable_handler(settings.retry_after_seconds)
    for exc_type in DATABASE_UNAVAILABLE:
        app.add_exception_handler(exc_type, unavailable)
    app.add_exception_handler(405, method_not_allowed)
    app.add_middleware(CatchAll)
    # Outside CatchAll: a 500 it answers is counted too.
    app.add_middleware(WebhookAnswers, metrics=metrics)
    app.include_router(health.router)
    app.include_router(trigger_health.router)
    app.include_router(me.router)
    app.include_router(triggers.router)
    app.include_router(shares.router)
    app.include_router(dry_run.router)
    app.include_router(dead_letters.router)
    app.include_router(webhooks.router)
    app.include_router(metrics_route.router)
    app.include_router(providers.router)
    ui.install(app)
    openapi.install(app)
    return app
