"""event_payloads: event data too large for Temporal payloads (claim check)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "event_payloads",
        sa.Column("ref", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("trigger_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["trigger_id"], ["triggers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("ref"),
    )
    with op.batch_alter_table("event_payloads", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_event_payloads_created_at"), ["created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_event_payloads_trigger_id"), ["trigger_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("event_payloads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_event_payloads_trigger_id"))
        batch_op.drop_index(batch_op.f("ix_event_payloads_created_at"))

    op.drop_table("event_payloads")
