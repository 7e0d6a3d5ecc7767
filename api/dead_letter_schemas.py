"""Bodies of the dead-letter routes (``/api/triggers/{id}/dead-letters``)."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from triggers.infra import dead_letters
from triggers.infra.models import DeadLetter
from triggers.providers.stream import DEAD_LETTER_RAW_LIMIT


class DeadLetterPublic(BaseModel):
    """A stream message that could not become an event, as the store keeps it."""

    id: uuid.UUID
    trigger_id: uuid.UUID
    key: str = Field(description="Its source position: the event key it would have had.")
    reason: str = Field(description="Why it could not become an event (secrets masked).")
    headers: dict[str, str] = Field(description="Its headers, bounded like an event's.")
    raw: str = Field(
        description=f"Its value, base64; only the first {DEAD_LETTER_RAW_LIMIT} bytes are kept."
    )
    raw_size: int = Field(description="Bytes of the whole value as it was received.")
    raw_truncated: bool = Field(
        description="Whether ``raw`` is only a prefix of the value: such a dead letter "
        "cannot be redriven."
    )
    first_seen: datetime
    last_seen: datetime
    attempts: int = Field(description="Deliveries counted so far.")
    redriven_at: datetime | None = Field(description="When it was last redriven, if ever.")
    redrive_run_id: str | None = Field(description="The run ID its redriven event has.")

    @classmethod
    def of(cls, row: DeadLetter) -> DeadLetterPublic:
        return cls(
            id=row.id,
            trigger_id=row.trigger_id,
            key=row.key,
            reason=row.reason,
            headers=dict(dead_letters.headers_of(row)),
            raw=base64.b64encode(row.raw).decode("ascii"),
            raw_size=row.raw_size,
            raw_truncated=row.raw_truncated,
            first_seen=dead_letters.utc(row.first_seen),
            last_seen=dead_letters.utc(row.last_seen),
            attempts=row.attempts,
            redriven_at=None if row.redriven_at is None else dead_letters.utc(row.redriven_at),
            redrive_run_id=row.redrive_run_id,
        )


class DeadLetterPage(BaseModel):
    items: list[DeadLetterPublic] = Field(description="Newest first (by first seen).")
    total: int = Field(description="Dead letters the trigger keeps now.")
    dropped: int = Field(
        description="Dead letters deleted because the trigger had more than "
        f"{dead_letters.MAX_PER_TRIGGER} (the oldest go first)."
    )
    limit: int
    next_cursor: str | None = Field(
        description="Pass as ``cursor`` for the next page; null on the last page."
    )


class Redriven(BaseModel):
    """A dead letter re-injected as an event: durably accepted by the trigger workflow."""

    dead_letter: DeadLetterPublic
    event_id: str
    event_key: str = Field(description="The deduplication key of the event (see ``run_id``).")
    run_id: str = Field(
        description="``run:<trigger-id>:<event-key>``: the run the event starts when it "
        "passes the trigger's condition. Redriving again starts no second run."
    )
    would_start: bool = Field(
        description="Whether the event passed the trigger's condition (and input mapping)."
    )
    again: bool = Field(description="Whether this dead letter had been redriven before.")
