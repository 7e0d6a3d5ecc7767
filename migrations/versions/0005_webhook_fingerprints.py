"""webhook_fingerprints: bodies a webhook trigger accepted, for its replay window

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_fingerprints",
        sa.Column("trigger_id", sa.Uuid(), nullable=False),
        sa.Column("fingerprint", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("event_key", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["trigger_id"], ["triggers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("trigger_id", "fingerprint"),
    )
    with op.batch_alter_table("webhook_fingerprints", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_webhook_fingerprints_expires_at"), ["expires_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("webhook_fingerprints", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_fingerprints_expires_at"))

    op.drop_table("webhook_fingerprints")
