"""The dead-letter store on SQLite and PostgreSQL: one row per trigger and key, every field
bounded where it enters, at most ``MAX_PER_TRIGGER`` rows per trigger (the oldest dropped and
counted), rows gone with their trigger."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from triggers.core.events import MAX_HEADER_VALUE_CHARS, MAX_HEADERS, MAX_KEY_CHARS, bound_key
from triggers.infra import dead_letters, redaction, store
from triggers.infra.db import make_engine, session_factory
from triggers.infra.models import DeadLetter, DeadLetterStats, Trigger
from triggers.providers.stream import DEAD_LETTER_RAW_LIMIT


@dataclass
class Db:
    sessions: async_sessionmaker[AsyncSession]
    trigger_id: str
    other_id: str


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Db]:
    engine = make_engine(db_url)
    sessions = session_factory(engine)
    async with sessions() as session:
        user = await store.create_user(session, name="dl")
        ids = []
        for name in ("one", "two"):
            trigger = Trigger(user_id=user.id, name=name, provider="test_json_stream")
            ids.append(str((await store.save(session, trigger=trigger)).id))
    yield Db(sessions, ids[0], ids[1])
    await engine.dispose()


async def _rows(db: Db, trigger_id: str) -> list[DeadLetter]:
    async with db.sessions() as session:
        found = await session.exec(
            select(DeadLetter).where(col(DeadLetter.trigger_id) == uuid.UUID(trigger_id))
        )
        return list(found.all())


async def _record(
    db: Db,
    key: str,
    *,
    reason: str = "not JSON",
    headers: dict[str, str] | None = None,
    raw: bytes = b"{",
    attempts: int = 1,
) -> None:
    await dead_letters.record(
        db.sessions,
        trigger_id=db.trigger_id,
        key=key,
        reason=reason,
        headers=headers or {},
        raw=raw,
        attempts=attempts,
    )


async def test_the_same_key_again_updates_its_row(db: Db) -> None:
    await _record(db, "orders/0/1", reason="first", attempts=1)
    (first,) = await _rows(db, db.trigger_id)
    await _record(db, "orders/0/1", reason="second", attempts=1)
    await _record(db, "orders/0/1", reason="third", attempts=1)
    (row,) = await _rows(db, db.trigger_id)
    assert row.id == first.id and row.first_seen == first.first_seen
    assert row.reason == "third" and row.attempts == 3
    assert dead_letters.utc(row.last_seen) > dead_letters.utc(first.last_seen)
    # A broker that counts deliveries (Redis XPENDING) gives a count ahead of ours.
    await _record(db, "orders/0/1", attempts=9)
    assert [r.attempts for r in await _rows(db, db.trigger_id)] == [9]
    await _record(db, "orders/0/2")
    assert len(await _rows(db, db.trigger_id)) == 2
    # The same key of another trigger is another row.
    await dead_letters.record(
        db.sessions,
        trigger_id=db.other_id,
        key="orders/0/1",
        reason="r",
        headers={},
        raw=b"",
        attempts=1,
    )
    assert len(await _rows(db, db.other_id)) == 1


@pytest.mark.parametrize("times", [1, 10])
async def test_every_field_is_bounded_where_it_enters(db: Db, times: int) -> None:
    """At the bound and at ten times it."""
    secret = "s3cr3t-dead-letter-value"
    key = "k" * (MAX_KEY_CHARS * times)
    reason = (f"bad {secret} \x00 \ud800 " + "x" * dead_letters.MAX_REASON_CHARS) * times
    headers = {f"h{i}": "v" * (MAX_HEADER_VALUE_CHARS * times) for i in range(MAX_HEADERS * times)}
    headers["nul\x00"] = "a\x00b"
    raw = b"r" * (DEAD_LETTER_RAW_LIMIT * times)
    with redaction.hold([secret]):
        await _record(db, key, reason=reason, headers=headers, raw=raw, attempts=10**12)
    (row,) = await _rows(db, db.trigger_id)
    assert row.key == bound_key(key) and len(row.key) <= MAX_KEY_CHARS
    assert (row.key == key) is (times == 1)
    assert len(row.reason) <= dead_letters.MAX_REASON_CHARS
    assert secret not in row.reason and "***" in row.reason and "\x00" not in row.reason
    assert 0 < len(row.headers) <= MAX_HEADERS
    assert all(len(v) <= MAX_HEADER_VALUE_CHARS for v in row.headers.values())
    assert all("\x00" not in k + v for k, v in row.headers.items())
    assert row.raw == raw[:DEAD_LETTER_RAW_LIMIT] and row.raw_size == len(raw)
    assert row.raw_truncated is (times > 1)
    assert row.attempts == dead_letters.MAX_ATTEMPTS


@pytest.mark.parametrize("times", [1, 10])
async def test_meta_is_kept_bounded(db: Db, times: int) -> None:
    """A message's broker facts, at the bound and at ten times it: JSON scalars kept as
    they are, anything else as text, at most MAX_META_ENTRIES and MAX_META_BYTES."""
    meta: dict[str, Any] = {"partition": 3, "ok": True, "none": None, "obj": object()}
    meta |= {f"m{i}": "v" * (100 * times) for i in range(dead_letters.MAX_META_ENTRIES * times)}
    await dead_letters.record(
        db.sessions,
        trigger_id=str(db.trigger_id),
        key="meta/1",
        reason="r",
        headers={},
        raw=b"x",
        attempts=1,
        meta=meta,
    )
    (row,) = await _rows(db, db.trigger_id)
    assert row.meta["partition"] == 3 and row.meta["ok"] is True and row.meta["none"] is None
    assert isinstance(row.meta["obj"], str)
    assert len(row.meta) <= dead_letters.MAX_META_ENTRIES
    assert len(json.dumps(row.meta).encode()) <= dead_letters.MAX_META_BYTES


@pytest.mark.parametrize("times", [1, 10])
async def test_a_trigger_keeps_at_most_the_bound(
    db: Db, monkeypatch: pytest.MonkeyPatch, times: int
) -> None:
    """At the bound nothing is dropped; at ten times it the newest ``bound`` stay and the
    rest are counted as dropped. Another trigger's rows are untouched."""
    bound = 15
    monkeypatch.setattr(dead_letters, "MAX_PER_TRIGGER", bound)
    await dead_letters.record(
        db.sessions, trigger_id=db.other_id, key="keep", reason="r", headers={}, raw=b"", attempts=1
    )
    keys = [f"s/{i:04d}" for i in range(bound * times)]
    for key in keys:
        await _record(db, key)
    rows = await _rows(db, db.trigger_id)
    assert sorted(r.key for r in rows) == keys[-bound:]
    async with db.sessions() as session:
        tid = uuid.UUID(db.trigger_id)
        assert await dead_letters.count(session, trigger_id=tid) == bound
        assert await dead_letters.dropped(session, trigger_id=tid) == bound * times - bound
        assert await dead_letters.dropped(session, trigger_id=uuid.UUID(db.other_id)) == 0
    assert [r.key for r in await _rows(db, db.other_id)] == ["keep"]


async def test_pages_are_newest_first_and_complete(db: Db) -> None:
    keys = [f"p/{i}" for i in range(7)]
    for key in keys:
        await _record(db, key)
    seen: list[str] = []
    after = None
    async with db.sessions() as session:
        for _ in range(4):
            rows, after = await dead_letters.list_page(
                session, trigger_id=uuid.UUID(db.trigger_id), limit=3, after=after
            )
            seen += [r.key for r in rows]
            if after is None:
                break
            after = dead_letters.Position.decode(after.encode())
    assert seen == keys[::-1]


async def test_a_deleted_trigger_takes_its_dead_letters(
    db: Db, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dead_letters, "MAX_PER_TRIGGER", 1)
    await _record(db, "a")
    await _record(db, "b")
    async with db.sessions() as session:
        trigger = await session.get(Trigger, uuid.UUID(db.trigger_id))
        await session.delete(trigger)
        await session.commit()
        stats = await session.exec(select(sa.func.count()).select_from(DeadLetterStats))
        assert stats.one() == 0
    assert await _rows(db, db.trigger_id) == []
    # A poison message of a trigger deleted meanwhile is not kept, and is no error.
    await _record(db, "c")
    assert await _rows(db, db.trigger_id) == []
