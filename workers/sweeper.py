"""The periodic sweep of expired rows, run beside each worker: event payloads (claim
check) past their retention, webhook fingerprints past their replay window."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from triggers.infra import payloads, replays
from triggers.infra.db import make_engine, session_factory
from triggers.infra.models import utcnow
from triggers.infra.settings import Settings

log = logging.getLogger("triggers.sweeper")

SWEEP_INTERVAL_SECONDS = 3600.0


async def sweep_payloads_forever(
    sessions: async_sessionmaker[AsyncSession],
    *,
    retention: timedelta,
    interval: float = SWEEP_INTERVAL_SECONDS,
) -> None:
    """Delete payloads older than ``retention``, and webhook fingerprints whose replay
    window has ended, now and then every ``interval`` seconds, until cancelled. Every
    worker runs one: a delete is idempotent, so they need no lock. A failed sweep (database
    down, schema not migrated yet) is logged and tried again at the next interval; it never
    stops the worker, and one table's failure does not skip the other."""
    while True:
        try:
            async with sessions() as session:
                swept = await payloads.sweep(session, older_than=utcnow() - retention)
            if swept:
                days = retention / timedelta(days=1)
                log.info("swept %d event payloads older than %g days", swept, days)
        except Exception:
            log.exception("sweeping event payloads failed; next try in %.0f s", interval)
        try:
            async with sessions() as session:
                swept = await replays.sweep(session, now=utcnow())
            if swept:
                log.info("swept %d webhook fingerprints past their replay window", swept)
        except Exception:
            log.exception("sweeping webhook fingerprints failed; next try in %.0f s", interval)
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def payload_sweeper(
    settings: Settings, *, interval: float = SWEEP_INTERVAL_SECONDS
) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``sweep_payloads_forever`` on the settings' database while the block runs;
    cancelled (and its engine closed) when the block ends."""
    engine = make_engine(settings.resolved_database_url)
    task = asyncio.create_task(
        sweep_payloads_forever(
            session_factory(engine),
            retention=timedelta(days=settings.payload_retention_days),
            interval=interval,
        ),
        name="payload-sweeper",
    )
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await engine.dispose()
