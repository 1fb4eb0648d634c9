"""user card: a banned user is told once; admin actions carry an idempotency key

Revision ID: audit_user_card
Revises: recon_strangers_housekeeping

`users.ban_notice_sent` is claimed (false -> true) by the bot before it tells a
banned user about the ban, so a flood from them gets one answer, not one each;
every ban or unban resets it.

`admin_audit.action_key` (unique when set) makes an admin action that has no
other key of its own (granting days) happen once per confirmation: the audit
row is written first, and a second press finds it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "audit_user_card"
down_revision = "recon_strangers_housekeeping"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "users", sa.Column("ban_notice_sent", sa.Boolean(), server_default=sa.text("false"), nullable=False)
    )
    op.add_column("admin_audit", sa.Column("action_key", sa.Text(), nullable=True))
    op.create_unique_constraint(op.f("uq_admin_audit_action_key"), "admin_audit", ["action_key"])


def downgrade() -> None:
    op.drop_constraint(op.f("uq_admin_audit_action_key"), "admin_audit", type_="unique")
    op.drop_column("admin_audit", "action_key")
    op.drop_column("users", "ban_notice_sent")
