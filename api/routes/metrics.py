"""``GET /metrics``: the API process's metrics in the Prometheus text format.

Unauthenticated, as Prometheus scrapes are: it shows counts by provider, state, status code
and the SDK's own labels (namespace, task queue, workflow and activity type), never a
trigger's id or name, unless per-trigger labels are switched on
(``TRIGGERS_METRICS_PER_TRIGGER``; then keep ``/metrics`` off the public network).
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy.exc import SQLAlchemyError

from api.deps import StateDep
from triggers.infra.metrics import db_state

router = APIRouter(tags=["health"])
log = logging.getLogger("triggers.metrics")

# The database's figures are read at most this long; a slow database leaves the last ones.
DB_TIMEOUT_SECONDS = 2.0


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"}},
)
async def metrics(state: StateDep) -> Response:
    """Counters, gauges and histograms of this API process (and, under `triggers dev`, of
    its worker), for Prometheus to scrape: events received, condition outcomes, runs
    started, latency, duplicates, webhook answers by status code, triggers by state and
    dead letters by provider (read from the database), and the Temporal SDK's metrics."""
    try:
        async with asyncio.timeout(DB_TIMEOUT_SECONDS), state.sessions() as session:
            states = await db_state.states(session)
            dead = await db_state.dead_letters(session)
        state.metrics.set_states(states, dead)
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        log.warning("metrics: the database's figures are stale (%s)", type(exc).__name__)
    body = await asyncio.to_thread(state.metrics.render)
    return Response(content=body, media_type=CONTENT_TYPE_LATEST)
