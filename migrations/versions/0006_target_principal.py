"""triggers.target_principal_id: whose allowlist a graph's http_request nodes go through

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("triggers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("target_principal_id", sa.Uuid(), nullable=True))
        batch_op.create_foreign_key(
            "fk_triggers_target_principal_id_users",
            "users",
            ["target_principal_id"],
            ["id"],
            ondelete="SET NULL",
        )
    # Until now every graph's requests went out through its owner's allowlist: keep that.
    op.execute("UPDATE triggers SET target_principal_id = user_id")


def downgrade() -> None:
    with op.batch_alter_table("triggers", schema=None) as batch_op:
        batch_op.drop_constraint("fk_triggers_target_principal_id_users", type_="foreignkey")
        batch_op.drop_column("target_principal_id")
