"""The replay window of a webhook trigger (``replay_window_seconds``): a body accepted under
one event key is refused under another until the window has passed.

Why: some schemes sign only the body. A captured GitHub delivery sent again with a new
``X-GitHub-Delivery`` verifies, and is a new event key, so a new run. With the window on,
the route ``claim``s the body's sha256 for the trigger in the database (so the check holds
across API processes and restarts) before the event is handed to Temporal. A redelivery
under the *same* key passes: it is the same event, and the run's ID deduplicates it (a
sender retrying after a 503 is not refused). Keyword-only arguments throughout.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from triggers.infra.models import WebhookFingerprint


def body_fingerprint(body: bytes) -> str:
    """Hex sha256 of the raw body, as the sender sent it."""
    return hashlib.sha256(body).hexdigest()


async def claim(
    session: AsyncSession,
    *,
    trigger_id: uuid.UUID,
    fingerprint: str,
    event_key: str,
    window_seconds: int,
    now: datetime,
) -> bool:
    """Record that ``event_key`` carries this body for ``window_seconds`` from ``now``;
    False when another key carried it within its window (a replay). Committed.

    Of two deliveries of the same body at once, the unique (trigger_id, fingerprint) key
    lets one insert win; the other reads the winner's row. An expired row is taken over by
    a conditional update, so of two takeovers one wins too."""
    now = now.astimezone(UTC)
    row = {
        "trigger_id": trigger_id,
        "fingerprint": fingerprint,
        "event_key": event_key,
        "seen_at": now,
        "expires_at": now + timedelta(seconds=window_seconds),
    }
    # Three rounds cover a row swept between a failed insert and the read after it.
    for _ in range(3):
        if await _insert_absent(session, row):
            await session.commit()
            return True
        live = await session.exec(
            select(WebhookFingerprint.event_key).where(
                col(WebhookFingerprint.trigger_id) == trigger_id,
                col(WebhookFingerprint.fingerprint) == fingerprint,
                col(WebhookFingerprint.expires_at) > now,
            )
        )
        holder = live.first()
        if holder is not None:
            await session.commit()
            return holder == event_key
        taken = await session.exec(
            sa.update(WebhookFingerprint)
            .where(
                col(WebhookFingerprint.trigger_id) == trigger_id,
                col(WebhookFingerprint.fingerprint) == fingerprint,
                col(WebhookFingerprint.expires_at) <= now,
            )
            .values(event_key=event_key, seen_at=now, expires_at=row["expires_at"])
        )
        await session.commit()
        if taken.rowcount == 1:
            return True
    raise RuntimeError("replay window: the fingerprint row changed three times in a row")


async def _insert_absent(session: AsyncSession, row: dict[str, Any]) -> bool:
    # INSERT ... ON CONFLICT DO NOTHING (PostgreSQL 9.5+, SQLite 3.24+): a concurrent insert
    # of the same key waits for the other transaction, then inserts nothing (rowcount 0).
    dialect = (await session.connection()).dialect.name
    if dialect == "postgresql":
        stmt: Any = postgresql.insert(WebhookFingerprint).on_conflict_do_nothing(
            index_elements=["trigger_id", "fingerprint"]
        )
    elif dialect == "sqlite":
        stmt = sqlite.insert(WebhookFingerprint).on_conflict_do_nothing(
            index_elements=["trigger_id", "fingerprint"]
        )
    else:
        raise NotImplementedError(f"webhook fingerprints on {dialect}")
    result = await session.exec(stmt.values(**row))
    return int(result.rowcount) == 1


async def sweep(session: AsyncSession, *, now: datetime) -> int:
    """Delete the fingerprints whose window ended before ``now`` (timezone-aware); how
    many. An expired row decides nothing (``claim`` takes it over), so this only keeps
    the table small."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    result = await session.exec(
        sa.delete(WebhookFingerprint).where(
            col(WebhookFingerprint.expires_at) <= now.astimezone(UTC)
        )
    )
    await session.commit()
    return int(result.rowcount)
