"""Housekeeping: each chore is one statement, safe under concurrent janitors, reading
the one clock (`orbit_now()`), so tests move time instead of waiting for it."""

from __future__ import annotations

import asyncpg

from orbit import metrics

OUTBOX_RETENTION_DAYS = 30
CLOSED_PAYMENT_RETENTION_DAYS = 7
REVIEWED_TON_RETENTION_DAYS = 90

EXPIRE_PAYMENTS = """
UPDATE payments SET status = 'expired'
WHERE id IN (
    SELECT id FROM payments
    WHERE status = 'pending' AND expires_at < orbit_now()
    ORDER BY expires_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
RETURNING method
"""

PURGE_OUTBOX = """
DELETE FROM outbox
WHERE id IN (
    SELECT id FROM outbox
    WHERE status IN ('sent', 'skipped', 'failed')
      AND created_at < orbit_now() - make_interval(days => $1)
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
"""

# Failed and expired invoices nobody paid: kept a week for support questions, then
# gone, unless money or a transfer names them (the ledger and ton_transactions keep
# their foreign keys; a confirmed or refunded payment is never touched).
DELETE_CLOSED_PAYMENTS = """
DELETE FROM payments
WHERE id IN (
    SELECT p.id FROM payments p
    WHERE p.status IN ('failed', 'expired')
      AND p.created_at < orbit_now() - make_interval(days => $1)
      AND NOT EXISTS (SELECT 1 FROM ledger l WHERE l.payment_id = p.id)
      AND NOT EXISTS (SELECT 1 FROM ton_transactions t WHERE t.payment_id = p.id)
    ORDER BY p.created_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
"""

# Unmatched or rejected transfers an admin dismissed (`orbit ton dismiss`), and the
# wallet's old history stored as `ignored`: after 90 days, unless they name a payment.
# A transfer credited by hand is `matched` and stays with the ledger entry it made.
DELETE_REVIEWED_TON = """
DELETE FROM ton_transactions
WHERE hash IN (
    SELECT hash FROM ton_transactions
    WHERE (status = 'ignored' OR (status IN ('unmatched', 'rejected') AND reviewed_at IS NOT NULL))
      AND payment_id IS NULL
      AND created_at < orbit_now() - make_interval(days => $1)
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
"""


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])


async def expire_pending_payments(pool: asyncpg.Pool, batch: int = 1000) -> int:
    """Pending payments past `expires_at` become `expired` (a late TON transfer is
    still credited by the watcher: the money arrived)."""
    expired = await pool.fetch(EXPIRE_PAYMENTS, batch)
    for row in expired:
        metrics.count("payments_total", method=row["method"], status="expired")
    return len(expired)


async def purge_old_outbox(pool: asyncpg.Pool, batch: int = 5000) -> int:
    return _count(await pool.execute(PURGE_OUTBOX, OUTBOX_RETENTION_DAYS, batch))


async def delete_closed_payments(pool: asyncpg.Pool, batch: int = 5000) -> int:
    return _count(await pool.execute(DELETE_CLOSED_PAYMENTS, CLOSED_PAYMENT_RETENTION_DAYS, batch))


async def delete_reviewed_ton_transfers(pool: asyncpg.Pool, batch: int = 5000) -> int:
    return _count(await pool.execute(DELETE_REVIEWED_TON, REVIEWED_TON_RETENTION_DAYS, batch))
