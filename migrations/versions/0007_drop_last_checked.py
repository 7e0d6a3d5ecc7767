"""triggers.last_checked: dropped, nothing ever wrote or read it

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-12
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("triggers", schema=None) as batch_op:
        batch_op.drop_column("last_checked")


def downgrade() -> None:
    with op.batch_alter_table("triggers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_checked", sa.DateTime(timezone=True), nullable=True))
