"""clock: one movable "now" for every query that compares with the present

Revision ID: 0005_clock
Revises: 0004_marzban

`orbit_now()` is `now()` plus the offset in the one-row `clock` table. Production
never moves it (the offset stays 0); tests and the sandbox's clock control move it
forward so expiry, reminders, grace and payment windows can be watched without
sleeping. The function is STABLE, so Postgres evaluates it once per statement and
an index on a timestamp column still serves `col < orbit_now()`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_clock"
down_revision = "0004_marzban"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "clock",
        sa.Column("singleton", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("offset_seconds", sa.Float(), server_default="0", nullable=False),
        sa.CheckConstraint("singleton", name="one_row"),
        sa.PrimaryKeyConstraint("singleton", name=op.f("pk_clock")),
    )
    op.execute("INSERT INTO clock (singleton, offset_seconds) VALUES (true, 0)")
    op.execute(
        """
        CREATE FUNCTION orbit_now() RETURNS timestamptz
        LANGUAGE sql STABLE PARALLEL SAFE AS $$
            SELECT now() + make_interval(secs => coalesce(
                (SELECT offset_seconds FROM clock WHERE singleton), 0))
        $$
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION orbit_now()")
    op.drop_table("clock")
