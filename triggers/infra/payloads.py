"""The claim-check store: event data too large for Temporal payloads lives in the database.

Where an event enters (the webhook route, the source activity), ``offload`` stores every
value whose compact JSON is over ``CLAIM_CHECK_BYTES`` in ``event_payloads`` and the event
carries the row's ref instead (``Event.data_ref``, ``Verdict.input_ref``). A run that needs
the value loads it by ref (``load``, or the ``load_payload`` activity). Rows are immutable
and content-addressed per trigger and event key, so a redelivery reuses its row; they go
with their trigger (foreign key cascade) and when older than the retention (``sweep``).
Keyword-only arguments throughout.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from triggers.core.events import CLAIM_CHECK_BYTES, Event
from triggers.infra.models import EventPayload, utcnow

# Appended to the event key for the ref of a verdict's mapped input, so it never shares a
# row with the event's data.
INPUT_KEY_SUFFIX = ":input"


class PayloadMissing(LookupError):
    """No payload under ``ref``: it was swept after the retention period, or its trigger
    was deleted. The message carries the ref only, never data."""

    def __init__(self, ref: str) -> None:
        super().__init__(
            f"event payload {ref} not found (older than the retention period, "
            "or its trigger was deleted)"
        )
        self.ref = ref


def compact_json(value: Any) -> bytes:
    """The value as it is measured against the threshold and stored: compact JSON, UTF-8.

    A string with a lone surrogate (``"\\ud800"`` in a JSON body) has no UTF-8 form; such
    a value is stored with ASCII escapes, which decode to the same value.
    """
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":")).encode()


def payload_ref(trigger_id: str, key: str, blob: bytes) -> str:
    """The ref of ``blob`` stored for the event ``key`` of trigger ``trigger_id`` (a UUID).

    ``<trigger uuid hex>:<sha256 hex>`` (97 characters), the sha256 over the trigger id,
    the key and the sha256 of ``blob``: a redelivery of the same content gets the same ref,
    different content under the same key a different one. Raises ``ValueError`` when
    ``trigger_id`` is not a UUID.
    """
    tid = uuid.UUID(trigger_id)
    h = hashlib.sha256()
    for part in (tid.bytes, key.encode("utf-8", "surrogatepass"), hashlib.sha256(blob).digest()):
        # Length-prefixed, so no two (key, content) pairs hash the same input.
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return f"{tid.hex}:{h.hexdigest()}"


async def offload(
    session: AsyncSession,
    *,
    trigger_id: str,
    events: list[Event],
    threshold: int = CLAIM_CHECK_BYTES,
) -> list[Event]:
    """The events as they may enter Temporal: each ``data`` (and each mapped
    ``verdict.input``) whose compact JSON is over ``threshold`` bytes is stored, and the
    returned copy carries ``data=None, data_ref=<ref>`` (``input=None, input_ref=<ref>``).
    Other events are returned as they are (the same objects).

    Idempotent and safe when two processes store the same event at once (insert if
    absent). One commit for the whole list, and none when nothing is large. Call it before
    the signal that carries the events: a row whose signal never happens is swept later.
    """
    rows: dict[str, bytes] = {}

    def claim(key: str, value: Any) -> str | None:
        blob = compact_json(value)
        if len(blob) <= threshold:
            return None
        ref = payload_ref(trigger_id, key, blob)
        rows[ref] = blob
        return ref

    out: list[Event] = []
    for event in events:
        ref = claim(event.key, event.data) if event.data is not None else None
        if ref is not None:
            event = replace(event, data=None, data_ref=ref)
        verdict = event.verdict
        if verdict is not None and verdict.mapped and verdict.input is not None:
            input_ref = claim(event.key + INPUT_KEY_SUFFIX, verdict.input)
            if input_ref is not None:
                event = replace(event, verdict=replace(verdict, input=None, input_ref=input_ref))
        out.append(event)
    if rows:
        await _insert_absent(session, trigger_id=uuid.UUID(trigger_id), rows=rows)
        await session.commit()
    return out


async def store_value(session: AsyncSession, *, trigger_id: str, key: str, value: Any) -> str:
    """Store any JSON value (whatever its size) under a ref derived from ``key`` and its
    content; insert if absent, committed. Returns the ref."""
    blob = compact_json(value)
    ref = payload_ref(trigger_id, key, blob)
    await _insert_absent(session, trigger_id=uuid.UUID(trigger_id), rows={ref: blob})
    await session.commit()
    return ref


async def _insert_absent(
    session: AsyncSession, *, trigger_id: uuid.UUID, rows: dict[str, bytes]
) -> None:
    # ON CONFLICT DO NOTHING (PostgreSQL 9.5+, SQLite 3.24+): a concurrent insert of the
    # same ref waits for the other transaction and then does nothing. Same ref, same
    # content, so the row that won is the row we wanted. Rows go in ref order, so two
    # transactions storing overlapping sets wait on each other in one order (no deadlock).
    dialect = (await session.connection()).dialect.name
    if dialect == "postgresql":
        stmt: Any = postgresql.insert(EventPayload).on_conflict_do_nothing(index_elements=["ref"])
    elif dialect == "sqlite":
        stmt = sqlite.insert(EventPayload).on_conflict_do_nothing(index_elements=["ref"])
    else:
        raise NotImplementedError(f"event payloads on {dialect}")
    now = utcnow()
    await session.exec(
        stmt,
        params=[
            {
                "ref": ref,
                "trigger_id": trigger_id,
                "created_at": now,
                "size": len(blob),
                "data": blob.decode(),
            }
            for ref, blob in sorted(rows.items())
        ],
    )


async def load(session: AsyncSession, *, ref: str) -> Any:
    """The value stored under ``ref``, decoded. Raises ``PayloadMissing``."""
    result = await session.exec(select(EventPayload.data).where(col(EventPayload.ref) == ref))
    data = result.first()
    if data is None:
        raise PayloadMissing(ref)
    return json.loads(data)


async def restore(session: AsyncSession, *, event: Event) -> Event:
    """The inverse of ``offload`` for one event: a copy with ``data`` (and a mapped
    ``verdict.input``) loaded and the refs cleared; the event itself when it has no refs.
    Raises ``PayloadMissing``."""
    if event.data_ref is not None:
        event = replace(event, data=await load(session, ref=event.data_ref), data_ref=None)
    verdict = event.verdict
    if verdict is not None and verdict.input_ref is not None:
        value = await load(session, ref=verdict.input_ref)
        event = replace(event, verdict=replace(verdict, input=value, input_ref=None))
    return event


async def sweep(session: AsyncSession, *, older_than: datetime) -> int:
    """Delete the payloads stored before ``older_than`` (timezone-aware); how many."""
    if older_than.tzinfo is None:
        raise ValueError("older_than must be timezone-aware")
    # SQLite keeps the UTC wall time without an offset: compare in UTC.
    result = await session.exec(
        sa.delete(EventPayload).where(col(EventPayload.created_at) < older_than.astimezone(UTC))
    )
    await session.commit()
    return int(result.rowcount)
