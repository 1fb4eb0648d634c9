"""TON transfers: what each one credited, and transfers that could not be processed

Revision ID: 0002_ton
Revises: 0001_initial
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_ton"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

_CHECK = "ck_ton_transactions_status_known"

# What each transfer already credited, read back from the ledger: the first transfer of
# a payment confirmed it (key payment:{id}, the payment's external_id is its hash), every
# other one has its own key ton:{hash} (further transfers, and admin credits of unmatched ones).
_BACKFILL = """
UPDATE ton_transactions t
SET credited_kop = coalesce(
    (SELECT l.amount_kop FROM ledger l WHERE l.idempotency_key = 'ton:' || t.hash),
    (SELECT l.amount_kop FROM payments p JOIN ledger l ON l.idempotency_key = 'payment:' || p.id
     WHERE p.id = t.payment_id AND p.external_id = t.hash)
)
WHERE t.status = 'matched'
"""


def upgrade() -> None:
    op.add_column("ton_transactions", sa.Column("credited_kop", sa.BigInteger(), nullable=True))
    op.add_column("ton_transactions", sa.Column("reason", sa.Text(), nullable=True))
    op.drop_constraint(op.f(_CHECK), "ton_transactions", type_="check")
    op.create_check_constraint(
        op.f(_CHECK), "ton_transactions", "status IN ('matched', 'unmatched', 'ignored', 'rejected')"
    )
    op.execute(_BACKFILL)


def downgrade() -> None:
    # A rejected transfer was never credited: it reads as unmatched to the old code.
    op.execute("UPDATE ton_transactions SET status = 'unmatched' WHERE status = 'rejected'")
    op.drop_constraint(op.f(_CHECK), "ton_transactions", type_="check")
    op.create_check_constraint(
        op.f(_CHECK), "ton_transactions", "status IN ('matched', 'unmatched', 'ignored')"
    )
    op.drop_column("ton_transactions", "reason")
    op.drop_column("ton_transactions", "credited_kop")
