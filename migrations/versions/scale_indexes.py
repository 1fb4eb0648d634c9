"""scale: indexes the hot queries were missing (tests/test_hot_query_plans.py found them)

Revision ID: scale_indexes
Revises: audit_audit_trail

- `configs (user_id, created_at)` in place of the partial `configs (user_id)`: the
  create path counts a user's deleted configs too (the daily create limit, the
  default label), which the partial index could not serve.
- `configs (updated_at)` for the rows drift repair looks for.
- `users (id) WHERE blocked_at IS NOT NULL`: the outbox claim skips rows of users who
  blocked the bot; without it each claim read the whole users table.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "scale_indexes"
down_revision = "audit_audit_trail"
branch_labels = None
depends_on = None

DRIFTED = "(needs_sync OR status = 'pending') AND deleted_at IS NULL"


def upgrade() -> None:
    op.create_index("ix_configs_user_id_created_at", "configs", ["user_id", "created_at"])
    op.drop_index("ix_configs_user_id", table_name="configs", postgresql_where=sa.text("deleted_at IS NULL"))
    op.create_index("ix_configs_drifted", "configs", ["updated_at"], postgresql_where=sa.text(DRIFTED))
    op.create_index("ix_users_blocked", "users", ["id"], postgresql_where=sa.text("blocked_at IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("ix_users_blocked", table_name="users", postgresql_where=sa.text("blocked_at IS NOT NULL"))
    op.drop_index("ix_configs_drifted", table_name="configs", postgresql_where=sa.text(DRIFTED))
    op.create_index(
        "ix_configs_user_id", "configs", ["user_id"], postgresql_where=sa.text("deleted_at IS NULL")
    )
    op.drop_index("ix_configs_user_id_created_at", table_name="configs")
