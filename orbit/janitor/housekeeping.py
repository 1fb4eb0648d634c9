"""Housekeeping queries: each is one statement, safe under concurrent janitors."""

from __future__ import annotations

import asyncpg

from orbit import metrics

OUTBOX_RETENTION_DAYS = 30

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
      AND created_at < now() - make_interval(days => $1)
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
