"""marzban: public subscription base per instance, usage carried and reset per config,
panel passwords encrypted at rest

Revision ID: 0004_marzban
Revises: 0003_stars

Encrypts every plain-text `marzban_instances.password` when `MARZBAN_PASSWORD_KEY`
is set (environment or `.env`); without it the rows stay as they are and each
process warns at start (orbit/marzban/passwords.py). Downgrading decrypts them,
which needs the key too.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from orbit.marzban.passwords import KEY_VARIABLE, PanelPasswords
from orbit.settings import read_environment

revision = "0004_marzban"
down_revision = "0003_stars"
branch_labels = None
depends_on = None


def _passwords() -> PanelPasswords:
    return PanelPasswords(read_environment().get(KEY_VARIABLE) or None)


def upgrade() -> None:
    op.add_column("marzban_instances", sa.Column("sub_url", sa.Text(), nullable=True))
    op.add_column(
        "configs",
        sa.Column("usage_reset_due", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    op.add_column(
        "configs",
        sa.Column("usage_carried_bytes", sa.BigInteger(), server_default="0", nullable=False),
    )
    op.create_check_constraint(
        op.f("ck_configs_usage_carried_non_negative"), "configs", "usage_carried_bytes >= 0"
    )
    passwords = _passwords()
    if not passwords.has_key:
        return
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, password FROM marzban_instances")).all()
    for instance_id, stored in rows:
        fresh = passwords.reseal(stored, instance_id)
        if fresh is not None:
            bind.execute(
                sa.text("UPDATE marzban_instances SET password = :p WHERE id = :i"),
                {"p": fresh, "i": instance_id},
            )


def downgrade() -> None:
    passwords = _passwords()
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, password FROM marzban_instances")).all()
    for instance_id, stored in rows:
        if passwords.is_sealed(stored):
            bind.execute(
                sa.text("UPDATE marzban_instances SET password = :p WHERE id = :i"),
                {"p": passwords.open(stored, instance_id), "i": instance_id},
            )
    op.drop_constraint(op.f("ck_configs_usage_carried_non_negative"), "configs", type_="check")
    op.drop_column("configs", "usage_carried_bytes")
    op.drop_column("configs", "usage_reset_due")
    op.drop_column("marzban_instances", "sub_url")
