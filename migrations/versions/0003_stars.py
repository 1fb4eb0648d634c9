"""reconcile_issues: what reconciliation could not fix by itself

Revision ID: 0003_stars
Revises: 0002_ton
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_stars"
down_revision = "0002_ton"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reconcile_issues",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("amount_kop", sa.BigInteger(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconcile_issues")),
        sa.UniqueConstraint("source", "subject", "kind", name="uq_reconcile_issues_source_subject_kind"),
    )
    op.create_index(
        "ix_reconcile_issues_open",
        "reconcile_issues",
        ["created_at"],
        unique=False,
        postgresql_where=sa.text("resolved_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_reconcile_issues_open", table_name="reconcile_issues", postgresql_where=sa.text("resolved_at IS NULL")
    )
    op.drop_table("reconcile_issues")
