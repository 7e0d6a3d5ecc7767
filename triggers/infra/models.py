"""Database tables (SQLModel). Rows never cross the Temporal boundary; convert at the edge."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


class TriggerStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"
    DEGRADED = "degraded"
    FAILED = "failed"
    # A schedule past its end (or a source whose provider returned): fires no more.
    FINISHED = "finished"


class ShareRole(StrEnum):
    VIEWER = "viewer"
    EDITOR = "editor"


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str = Field(max_length=100, sa_column_kwargs={"unique": True}, nullable=False)
    # What this user's triggers may reach beside public addresses: IPs, CIDRs, host names,
    # "file:/folder" for local database files. Outbound requests elsewhere are refused.
    network_allowlist: list[str] = Field(
        default_factory=list,
        sa_type=JSONType,
        nullable=False,
        sa_column_kwargs={"server_default": "[]"},
    )
    created_at: datetime = Field(
        default_factory=utcnow, sa_type=sa.DateTime(timezone=True), nullable=False
    )


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_keys"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    key_hash: str = Field(max_length=64, sa_column_kwargs={"unique": True}, nullable=False)
    prefix: str = Field(max_length=16)
    name: str = Field(default="default", max_length=100)
    created_at: datetime = Field(
        default_factory=utcnow, sa_type=sa.DateTime(timezone=True), nullable=False
    )


class Trigger(SQLModel, table=True):
    __tablename__ = "triggers"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    name: str = Field(max_length=200)
    provider: str = Field(max_length=64, index=True)
    config: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType, nullable=False)
    condition: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    target: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType, nullable=False)
    enabled: bool = Field(default=True, index=True)
    config_version: int = Field(default=1)
    # Fernet token of a JSON object; never returned by the API.
    secrets_encrypted: str | None = Field(default=None, sa_type=sa.Text)
    # Whose network allowlist the source's outbound connections go through: the user who
    # last changed its destination fields (the owner at create). NULL (that user is gone):
    # public addresses only, never silently the owner's.
    network_principal_id: uuid.UUID | None = Field(
        default=None, foreign_key="users.id", ondelete="SET NULL", nullable=True
    )
    # The same for a graph target's http_request nodes: the user who last changed where
    # they send their requests (the owner at create). NULL: public addresses only.
    target_principal_id: uuid.UUID | None = Field(
        default=None, foreign_key="users.id", ondelete="SET NULL", nullable=True
    )
    status: str = Field(default=TriggerStatus.ACTIVE.value, max_length=16)
    last_error: str | None = Field(default=None, sa_type=sa.Text)
    created_at: datetime = Field(
        default_factory=utcnow, sa_type=sa.DateTime(timezone=True), nullable=False
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_type=sa.DateTime(timezone=True), nullable=False
    )


class TriggerShare(SQLModel, table=True):
    __tablename__ = "trigger_shares"

    trigger_id: uuid.UUID = Field(foreign_key="triggers.id", primary_key=True, ondelete="CASCADE")
    user_id: uuid.UUID = Field(foreign_key="users.id", primary_key=True, ondelete="CASCADE")
    role: str = Field(max_length=16)
    created_at: datetime = Field(
        default_factory=utcnow, sa_type=sa.DateTime(timezone=True), nullable=False
    )


class TaskQueueClaim(SQLModel, table=True):
    """A task queue a user claimed for their own workflows: one claimer per queue."""

    __tablename__ = "task_queue_claims"

    task_queue: str = Field(primary_key=True, max_length=200)
    user_id: uuid.UUID = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    created_at: datetime = Field(
        default_factory=utcnow, sa_type=sa.DateTime(timezone=True), nullable=False
    )


class TaskQueueGrant(SQLModel, table=True):
    """A task queue an admin allowed a user to target (``triggers users grant-queue``)."""

    __tablename__ = "task_queue_grants"

    task_queue: str = Field(primary_key=True, max_length=200)
    user_id: uuid.UUID = Field(
        foreign_key="users.id", primary_key=True, index=True, ondelete="CASCADE"
    )
    created_at: datetime = Field(
        default_factory=utcnow, sa_type=sa.DateTime(timezone=True), nullable=False
    )


class EventPayload(SQLModel, table=True):
    """Event data too large for Temporal payloads (claim check): the event carries ``ref``.

    Rows are written once and never changed; they go with their trigger, or when older than
    the retention period (``triggers.infra.payloads.sweep``).
    """

    __tablename__ = "event_payloads"

    ref: str = Field(primary_key=True, max_length=100)
    trigger_id: uuid.UUID = Field(foreign_key="triggers.id", index=True, ondelete="CASCADE")
    created_at: datetime = Field(
        default_factory=utcnow, sa_type=sa.DateTime(timezone=True), nullable=False, index=True
    )
    # Bytes of ``data`` in UTF-8.
    size: int = Field(nullable=False)
    # The value's compact JSON text.
    data: str = Field(sa_type=sa.Text, nullable=False)


class WebhookFingerprint(SQLModel, table=True):
    """A body a webhook trigger accepted, by sha256, for its ``replay_window_seconds``:
    the same body under another event key before ``expires_at`` is a replay (409).

    The primary key (trigger_id, fingerprint) is the unique constraint the check relies
    on: of two deliveries inserting the same body at once, one insert wins. Rows go with
    their trigger, or when expired (``triggers.infra.replays.sweep``)."""

    __tablename__ = "webhook_fingerprints"

    trigger_id: uuid.UUID = Field(foreign_key="triggers.id", primary_key=True, ondelete="CASCADE")
    # Hex sha256 of the raw body.
    fingerprint: str = Field(primary_key=True, max_length=64)
    # The (bounded) event key the body was first accepted under.
    event_key: str = Field(max_length=300, nullable=False)
    seen_at: datetime = Field(
        default_factory=utcnow, sa_type=sa.DateTime(timezone=True), nullable=False
    )
    expires_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False, index=True)


class DeadLetter(SQLModel, table=True):
    """A stream message that could not become an event (``triggers.infra.dead_letters``):
    one row per trigger and source position (``key``); recording the key again updates it.

    At most ``dead_letters.MAX_PER_TRIGGER`` rows per trigger (the oldest go, counted in
    ``DeadLetterStats.dropped``); rows go with their trigger (foreign key cascade)."""

    __tablename__ = "dead_letters"
    __table_args__ = (
        sa.UniqueConstraint("trigger_id", "key", name="uq_dead_letters_trigger_id_key"),
        sa.Index("ix_dead_letters_trigger_id_first_seen", "trigger_id", "first_seen", "id"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    trigger_id: uuid.UUID = Field(foreign_key="triggers.id", ondelete="CASCADE")
    # The source position, bounded like an event key (``bound_key``).
    key: str = Field(max_length=300, nullable=False)
    reason: str = Field(sa_type=sa.Text, nullable=False)
    headers: dict[str, str] = Field(default_factory=dict, sa_type=JSONType, nullable=False)
    # The message's value, its first ``DEAD_LETTER_RAW_LIMIT`` bytes; ``raw_size`` is the
    # whole value's size.
    raw: bytes = Field(sa_type=sa.LargeBinary, nullable=False)
    raw_size: int = Field(sa_type=sa.BigInteger, nullable=False)
    raw_truncated: bool = Field(nullable=False)
    # The message's broker facts (``Message.meta``, bounded) and produce time: a redrive
    # builds the same event the message would have made.
    meta: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType, nullable=False)
    message_time: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    first_seen: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)
    last_seen: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)
    attempts: int = Field(nullable=False)
    redriven_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    redrive_run_id: str | None = Field(default=None, max_length=300)


class DeadLetterStats(SQLModel, table=True):
    """Per trigger: how many dead letters were deleted to keep the bound (shown by the API)."""

    __tablename__ = "dead_letter_stats"

    trigger_id: uuid.UUID = Field(foreign_key="triggers.id", primary_key=True, ondelete="CASCADE")
    dropped: int = Field(default=0, sa_type=sa.BigInteger, nullable=False)
