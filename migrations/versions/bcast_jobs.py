"""bcast_jobs: long admin actions as `jobs` rows; broadcasts with an audience, a button
and a cancel

Revision ID: bcast_jobs
Revises: scale_indexes

A drain or a broadcast started from the bot is a `jobs` row the janitor's job
loop picks up (`FOR UPDATE SKIP LOCKED`), so restarting the bot does not cut it
short. A broadcast gets its audience's filters (`language`), an optional button
(`reply_markup`) and `cancelled_at`; outbox rows of a cancelled broadcast become
`cancelled` instead of being sent.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "bcast_jobs"
down_revision = "scale_indexes"
branch_labels = None
depends_on = None

OUTBOX_STATUSES_OLD = "status IN ('pending', 'sending', 'sent', 'failed', 'skipped')"
OUTBOX_STATUSES_NEW = "status IN ('pending', 'sending', 'sent', 'failed', 'skipped', 'cancelled')"


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("args", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("state", sa.Text(), server_default="queued", nullable=False),
        sa.Column("progress", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("created_by", sa.BigInteger(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=True),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.Column("locale", sa.Text(), server_default="en", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind IN ('broadcast', 'drain')", name=op.f("ck_jobs_kind_known")),
        sa.CheckConstraint(
            "state IN ('queued', 'running', 'done', 'failed')", name=op.f("ck_jobs_state_known")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    op.create_index(
        "ix_jobs_open",
        "jobs",
        ["id"],
        unique=False,
        postgresql_where=sa.text("state IN ('queued', 'running')"),
    )
    op.add_column("broadcasts", sa.Column("language", sa.Text(), nullable=True))
    op.add_column("broadcasts", sa.Column("reply_markup", postgresql.JSONB(), nullable=True))
    op.add_column("broadcasts", sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True))
    op.create_check_constraint(
        op.f("ck_broadcasts_audience_known"),
        "broadcasts",
        "audience IN ('all', 'active', 'expired', 'trial', 'never_paid')",
    )
    op.drop_constraint(op.f("ck_outbox_status_known"), "outbox", type_="check")
    op.create_check_constraint(op.f("ck_outbox_status_known"), "outbox", OUTBOX_STATUSES_NEW)


def downgrade() -> None:
    op.execute("UPDATE outbox SET status = 'skipped' WHERE status = 'cancelled'")
    op.drop_constraint(op.f("ck_outbox_status_known"), "outbox", type_="check")
    op.create_check_constraint(op.f("ck_outbox_status_known"), "outbox", OUTBOX_STATUSES_OLD)
    op.drop_constraint(op.f("ck_broadcasts_audience_known"), "broadcasts", type_="check")
    op.drop_column("broadcasts", "cancelled_at")
    op.drop_column("broadcasts", "reply_markup")
    op.drop_column("broadcasts", "language")
    op.drop_index(
        "ix_jobs_open", table_name="jobs", postgresql_where=sa.text("state IN ('queued', 'running')")
    )
    op.drop_table("jobs")
