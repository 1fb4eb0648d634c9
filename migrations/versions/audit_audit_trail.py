"""audit trail: one append-only row per admin action

Revision ID: audit_audit_trail
Revises: 0005_clock

`admin_audit` says who (an admin's Telegram id, or `cli:<os user>`) did what to
whom, with the state before and after as JSON. Rows are written in the same
transaction as the change (orbit/audit/) and, like the ledger, never changed: a
trigger refuses UPDATE and DELETE.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from orbit.schema import AUDIT_APPEND_ONLY_DROP_SQL, AUDIT_APPEND_ONLY_SQL

revision = "audit_audit_trail"
down_revision = "0005_clock"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "admin_audit",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("orbit_now()"), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("target_user_id", sa.BigInteger(), nullable=True),
        sa.Column("target", sa.Text(), nullable=True),
        sa.Column("before", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("after", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.CheckConstraint("char_length(actor) BETWEEN 1 AND 100", name=op.f("ck_admin_audit_actor_length")),
        sa.CheckConstraint("char_length(action) BETWEEN 1 AND 64", name=op.f("ck_admin_audit_action_length")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_audit")),
    )
    op.create_index("ix_admin_audit_at_id", "admin_audit", ["at", "id"])
    op.create_index("ix_admin_audit_target_user_id_id", "admin_audit", ["target_user_id", "id"])
    op.create_index("ix_admin_audit_actor_id", "admin_audit", ["actor", "id"])
    for statement in AUDIT_APPEND_ONLY_SQL:
        op.execute(statement)


def downgrade() -> None:
    for statement in AUDIT_APPEND_ONLY_DROP_SQL:
        op.execute(statement)
    op.drop_index("ix_admin_audit_actor_id", table_name="admin_audit")
    op.drop_index("ix_admin_audit_target_user_id_id", table_name="admin_audit")
    op.drop_index("ix_admin_audit_at_id", table_name="admin_audit")
    op.drop_table("admin_audit")
