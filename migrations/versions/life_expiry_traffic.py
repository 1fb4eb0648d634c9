"""life: expiry and grace, traffic limits on the config rows

Revision ID: life_expiry_traffic
Revises: bcast_jobs

- `expired_at`: the janitor stopped the panel user at the subscription's end
  (`orbit/subscriptions/expiry.py`); a renewal clears it.
- `retired_at`: the grace passed without a renewal and the panel user was deleted;
  the row stays as history (status `deleted`). `revived_from` on the config a
  later renewal made in its place: unique, so a row is revived once.
- `data_limit_reset_strategy`: Marzban's, from the plan (`no_reset`, `day`, ...).
- `usage_bytes`, `usage_read_at`: what the panel reported last and when;
  `usage_period` counts the resets seen (a renewal's, or the panel's own by
  strategy) and keys the 90 %/100 % notices (`orbit/subscriptions/traffic.py`).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "life_expiry_traffic"
down_revision = "bcast_jobs"
branch_labels = None
depends_on = None

STRATEGIES = "data_limit_reset_strategy IN ('no_reset', 'day', 'week', 'month', 'year')"


def upgrade() -> None:
    op.add_column("configs", sa.Column("expired_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("configs", sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("configs", sa.Column("revived_from", sa.BigInteger(), nullable=True))
    op.create_foreign_key(
        op.f("fk_configs_revived_from_configs"), "configs", "configs", ["revived_from"], ["id"]
    )
    op.create_unique_constraint(op.f("uq_configs_revived_from"), "configs", ["revived_from"])
    op.add_column(
        "configs",
        sa.Column("data_limit_reset_strategy", sa.Text(), server_default="no_reset", nullable=False),
    )
    op.create_check_constraint(op.f("ck_configs_reset_strategy_known"), "configs", STRATEGIES)
    # The expiry round's candidates: live configs not stopped yet, by owner.
    op.create_index(
        "ix_configs_unexpired",
        "configs",
        ["user_id"],
        postgresql_where=sa.text("deleted_at IS NULL AND expired_at IS NULL"),
    )
    # The grace round's candidates: live configs stopped at their end.
    op.create_index(
        "ix_configs_expired",
        "configs",
        ["id"],
        postgresql_where=sa.text("deleted_at IS NULL AND expired_at IS NOT NULL"),
    )
    op.add_column("configs", sa.Column("usage_bytes", sa.BigInteger(), nullable=True))
    op.add_column("configs", sa.Column("usage_read_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "configs",
        sa.Column("usage_period", sa.Integer(), server_default="0", nullable=False),
    )


def downgrade() -> None:
    op.drop_column("configs", "usage_period")
    op.drop_column("configs", "usage_read_at")
    op.drop_column("configs", "usage_bytes")
    op.drop_constraint(op.f("ck_configs_reset_strategy_known"), "configs", type_="check")
    op.drop_column("configs", "data_limit_reset_strategy")
    op.drop_index(
        "ix_configs_expired",
        table_name="configs",
        postgresql_where=sa.text("deleted_at IS NULL AND expired_at IS NOT NULL"),
    )
    op.drop_index(
        "ix_configs_unexpired",
        table_name="configs",
        postgresql_where=sa.text("deleted_at IS NULL AND expired_at IS NULL"),
    )
    op.drop_constraint(op.f("uq_configs_revived_from"), "configs", type_="unique")
    op.drop_constraint(op.f("fk_configs_revived_from_configs"), "configs", type_="foreignkey")
    op.drop_column("configs", "revived_from")
    op.drop_column("configs", "retired_at")
    op.drop_column("configs", "expired_at")
