"""The dead-letter store: stream messages that could not become events (issue 10, 6).

The stream runtime calls ``record`` for a message ``to_event`` refused (``PoisonMessage``),
one over the size limit, or one delivered more than ``max_deliveries`` times, and acks it
upstream once ``record`` returned. One row per trigger and source position: recording the
same key again updates ``last_seen``, ``attempts`` and ``reason``, never a second row.

Everything from outside is bounded where it enters: the key like an event key
(``bound_key``), the reason (secrets masked, then cut to ``MAX_REASON_CHARS``), the headers
like an event's, the raw bytes to ``DEAD_LETTER_RAW_LIMIT`` (``raw_size`` keeps the whole
size). A trigger keeps at most ``MAX_PER_TRIGGER`` rows: beyond it the oldest (first seen)
are deleted and counted in ``dropped``, so a flood of poison cannot fill the database.
Keyword-only arguments throughout.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from triggers.core.events import bound_headers, bound_key
from triggers.infra import redaction
from triggers.infra.models import DeadLetter, DeadLetterStats, Trigger, utcnow
from triggers.providers.stream import DEAD_LETTER_RAW_LIMIT

# Rows kept per trigger; module-level so tests can lower it.
MAX_PER_TRIGGER = 10_000
MAX_REASON_CHARS = 500
# Attempts are counted up to this (the column is a 32-bit integer).
MAX_ATTEMPTS = 1_000_000_000
# A message's broker facts kept (bytes of their JSON); beyond, the later ones are left out.
MAX_META_ENTRIES = 32
MAX_META_BYTES = 4096
# A list cursor is a few dozen characters; anything longer is not one of ours.
MAX_CURSOR_CHARS = 200

log = logging.getLogger("triggers.dead_letters")


async def record(
    sessions: async_sessionmaker[AsyncSession],
    *,
    trigger_id: str,
    key: str,
    reason: str,
    headers: dict[str, str],
    raw: bytes,
    attempts: int,
    meta: Mapping[str, Any] | None = None,
    time: datetime | None = None,
) -> None:
    """Keep a message that could not become an event, durably (committed on return).

    ``key`` is the message's source position (its event key), ``raw`` its whole value
    (only the first ``DEAD_LETTER_RAW_LIMIT`` bytes are kept), ``attempts`` its deliveries
    so far; ``meta`` and ``time`` the message's broker facts and produce time, kept so a
    redrive builds the same event (``meta`` bounded to ``MAX_META_BYTES`` of JSON, values
    that are not JSON kept as text). The same key again updates the row: ``attempts``
    becomes at least one more than before. A trigger deleted meanwhile has nothing to
    keep: nothing is written."""
    tid = uuid.UUID(trigger_id)
    now = utcnow()
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "trigger_id": tid,
        "key": bound_key(key),
        "reason": clean_reason(reason),
        "headers": bound_headers({_text(str(k)): _text(str(v)) for k, v in headers.items()}),
        "raw": bytes(raw[:DEAD_LETTER_RAW_LIMIT]),
        "meta": bound_meta(meta or {}),
        "message_time": time,
        "raw_size": len(raw),
        "raw_truncated": len(raw) > DEAD_LETTER_RAW_LIMIT,
        "first_seen": now,
        "last_seen": now,
        "attempts": min(max(int(attempts), 1), MAX_ATTEMPTS),
        "redriven_at": None,
        "redrive_run_id": None,
    }
    async with sessions() as session:
        try:
            dialect = await _dialect(session)
            await session.exec(_upsert(dialect, values))
            dropped = await _trim(session, tid)
            if dropped:
                await session.exec(_add_dropped(dialect, tid, dropped))
            await session.commit()
        except sa.exc.IntegrityError:
            await session.rollback()
            if await session.get(Trigger, tid) is not None:
                raise
            log.info("dead letter for deleted trigger %s not kept", tid)


def bound_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    """A message's ``meta`` as it is stored: JSON scalars as they are (text cut like a
    header value), anything else as its text, at most ``MAX_META_ENTRIES`` entries and
    ``MAX_META_BYTES`` bytes of JSON, in the order given."""
    out: dict[str, Any] = {}
    total = 2
    for name, value in list(meta.items())[:MAX_META_ENTRIES]:
        if not (value is None or isinstance(value, bool | int | float)):
            value = _text(str(value))[:1024]
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53:
            value = str(value)
        name = _text(str(name))[:128]
        total += len(json.dumps({name: value}).encode())
        if total > MAX_META_BYTES:
            break
        out[name] = value
    return out


def clean_reason(reason: str, secrets: Iterable[str] = ()) -> str:
    """A provider's reason as it is stored and shown: the secrets this process holds (and
    ``secrets``) masked before the cut, so no part of one survives it; text a database can
    store; at most ``MAX_REASON_CHARS``."""
    text = _text(redaction.redact(str(reason), secrets))[:MAX_REASON_CHARS]
    return text or "(no reason given)"


def _text(value: str) -> str:
    """Text PostgreSQL can store: no NUL, no lone surrogates."""
    value = value.replace("\x00", "\ufffd")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


async def _dialect(session: AsyncSession) -> str:
    return (await session.connection()).dialect.name


def _insert(dialect: str, model: type[Any]) -> Any:
    # ON CONFLICT (PostgreSQL 9.5+, SQLite 3.24+): two recorders of one key make one row.
    if dialect == "postgresql":
        return postgresql.insert(model)
    if dialect == "sqlite":
        return sqlite.insert(model)
    raise NotImplementedError(f"dead letters on {dialect}")


def _upsert(dialect: str, values: dict[str, Any]) -> Any:
    stmt = _insert(dialect, DeadLetter).values(**values)
    new = stmt.excluded
    before = col(DeadLetter.attempts)
    attempts = sa.case(
        (before >= MAX_ATTEMPTS, MAX_ATTEMPTS),
        (before + 1 > new.attempts, before + 1),
        else_=new.attempts,
    )
    return stmt.on_conflict_do_update(
        index_elements=["trigger_id", "key"],
        set_={
            "last_seen": new.last_seen,
            "reason": new.reason,
            "attempts": attempts,
            "meta": new.meta,
            "message_time": new.message_time,
        },
    )


def _add_dropped(dialect: str, tid: uuid.UUID, dropped: int) -> Any:
    stmt = _insert(dialect, DeadLetterStats).values(trigger_id=tid, dropped=dropped)
    return stmt.on_conflict_do_update(
        index_elements=["trigger_id"],
        set_={"dropped": col(DeadLetterStats.dropped) + stmt.excluded.dropped},
    )


async def _trim(session: AsyncSession, tid: uuid.UUID) -> int:
    """Delete the trigger's oldest rows beyond ``MAX_PER_TRIGGER``; how many went."""
    if await count(session, trigger_id=tid) <= MAX_PER_TRIGGER:
        return 0
    beyond = (
        select(DeadLetter.id)
        .where(col(DeadLetter.trigger_id) == tid)
        .order_by(col(DeadLetter.first_seen).desc(), col(DeadLetter.id).desc())
        .offset(MAX_PER_TRIGGER)
    )
    result = await session.exec(sa.delete(DeadLetter).where(col(DeadLetter.id).in_(beyond)))
    return int(result.rowcount)


async def count(session: AsyncSession, *, trigger_id: uuid.UUID) -> int:
    """The trigger's dead letters kept now."""
    result = await session.exec(
        select(sa.func.count()).select_from(DeadLetter).where(DeadLetter.trigger_id == trigger_id)
    )
    return int(result.one())


async def dropped(session: AsyncSession, *, trigger_id: uuid.UUID) -> int:
    """The trigger's dead letters deleted to keep the bound, ever."""
    stats = await session.get(DeadLetterStats, trigger_id)
    return 0 if stats is None else int(stats.dropped)


@dataclass(frozen=True)
class Position:
    """Where a page of the list ends: the last row's first-seen time and id."""

    first_seen: datetime
    id: uuid.UUID

    def encode(self) -> str:
        text = f"{utc(self.first_seen).isoformat()}|{self.id.hex}"
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str) -> Position:
        """Raises ``ValueError`` for anything ``encode`` did not make."""
        if len(cursor) > MAX_CURSOR_CHARS or not cursor.isascii():
            raise ValueError("not a cursor")
        try:
            text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
            when, _, hex_id = text.partition("|")
            first_seen = datetime.fromisoformat(when)
            row_id = uuid.UUID(hex=hex_id)
            if first_seen.tzinfo is None:
                raise ValueError("no offset")
            # In UTC, as the rows are compared; a time that has no UTC form is no cursor.
            first_seen = first_seen.astimezone(UTC)
        except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError):
            raise ValueError("not a cursor") from None
        return cls(first_seen, row_id)


def utc(value: datetime) -> datetime:
    """A stored time as UTC: SQLite gives back the UTC wall time without its offset."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


async def list_page(
    session: AsyncSession, *, trigger_id: uuid.UUID, limit: int, after: Position | None = None
) -> tuple[Sequence[DeadLetter], Position | None]:
    """Up to ``limit`` dead letters, newest first (by first seen), after ``after``; and the
    position to continue from, or None on the last page."""
    first_seen, row_id = col(DeadLetter.first_seen), col(DeadLetter.id)
    query = select(DeadLetter).where(col(DeadLetter.trigger_id) == trigger_id)
    if after is not None:
        # SQLite keeps the UTC wall time without an offset: compare in UTC.
        at = utc(after.first_seen)
        query = query.where(sa.or_(first_seen < at, sa.and_(first_seen == at, row_id < after.id)))
    result = await session.exec(query.order_by(first_seen.desc(), row_id.desc()).limit(limit + 1))
    rows = list(result.all())
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, Position(rows[-1].first_seen, rows[-1].id)


async def get(
    session: AsyncSession, *, trigger_id: uuid.UUID, dead_letter_id: uuid.UUID
) -> DeadLetter | None:
    """One dead letter of this trigger (None for another trigger's)."""
    row = await session.get(DeadLetter, dead_letter_id)
    return row if row is not None and row.trigger_id == trigger_id else None


async def mark_redriven(
    session: AsyncSession, *, row: DeadLetter, run_id: str, at: datetime | None = None
) -> DeadLetter:
    """Record that the row was re-injected as the event of run ``run_id`` (committed)."""
    row.redriven_at = at or utcnow()
    row.redrive_run_id = run_id
    session.add(row)
    await session.commit()
    await session.refresh(row)
    return row


def headers_of(row: DeadLetter) -> Mapping[str, str]:
    return {str(k): str(v) for k, v in (row.headers or {}).items()}
