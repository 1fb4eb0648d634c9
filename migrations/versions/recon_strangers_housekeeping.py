"""panel strangers, reviewed TON transfers, an index for old closed payments

Revision ID: recon_strangers_housekeeping
Revises: life_expiry_traffic

- `panel_strangers`: panel users the reconciliation found on a panel that no config
  row knows (`orbit instances orphans ID`), one row per instance and username.
- `ton_transactions.reviewed_at`: an admin looked at an unmatched transfer
  (`orbit ton dismiss HASH`); housekeeping deletes reviewed ones after 90 days.
- `ix_payments_closed_created_at`: housekeeping finds failed and expired payments
  older than 7 days without reading the whole table.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "recon_strangers_housekeeping"
down_revision = "life_expiry_traffic"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "panel_strangers",
        sa.Column("instance_id", sa.Text(), nullable=False),
        sa.Column("panel_username", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("note", sa.Text()),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["marzban_instances.id"],
            name=op.f("fk_panel_strangers_instance_id_marzban_instances"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("instance_id", "panel_username", name=op.f("pk_panel_strangers")),
    )
    op.add_column("ton_transactions", sa.Column("reviewed_at", sa.DateTime(timezone=True)))
    op.create_index(
        "ix_payments_closed_created_at",
        "payments",
        ["created_at"],
        postgresql_where=sa.text("status IN ('failed', 'expired')"),
    )


def downgrade() -> None:
    op.drop_index("ix_payments_closed_created_at", table_name="payments")
    op.drop_column("ton_transactions", "reviewed_at")
    op.drop_table("panel_strangers")
