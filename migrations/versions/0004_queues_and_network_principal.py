"""task queue claims and grants; triggers.network_principal_id (whose allowlist applies)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("triggers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("network_principal_id", sa.Uuid(), nullable=True))
        batch_op.create_foreign_key(
            "fk_triggers_network_principal_id_users",
            "users",
            ["network_principal_id"],
            ["id"],
            ondelete="SET NULL",
        )
    # Until now every trigger went out through its owner's allowlist: keep that.
    op.execute("UPDATE triggers SET network_principal_id = user_id")

    op.create_table(
        "task_queue_claims",
        sa.Column("task_queue", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("task_queue"),
    )
    with op.batch_alter_table("task_queue_claims", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_task_queue_claims_user_id"), ["user_id"], unique=False)

    op.create_table(
        "task_queue_grants",
        sa.Column("task_queue", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("task_queue", "user_id"),
    )
    with op.batch_alter_table("task_queue_grants", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_task_queue_grants_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("task_queue_grants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_task_queue_grants_user_id"))
    op.drop_table("task_queue_grants")
    with op.batch_alter_table("task_queue_claims", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_task_queue_claims_user_id"))
    op.drop_table("task_queue_claims")
    with op.batch_alter_table("triggers", schema=None) as batch_op:
        batch_op.drop_constraint("fk_triggers_network_principal_id_users", type_="foreignkey")
        batch_op.drop_column("network_principal_id")
