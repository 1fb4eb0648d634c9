"""MAX_PENDING_PAYMENTS (issue 16, defect 2): counted under the user's row lock, so
concurrent requests cannot pass it; paid or expired invoices free their slot."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg
import msgspec
import pytest

from orbit.payments import service, stars
from orbit.settings import Settings


async def test_concurrent_invoices_stop_at_the_cap(
    db: asyncpg.Pool, settings: Settings, make_user: Callable[..., Awaitable[int]]
) -> None:
    capped = msgspec.structs.replace(settings, max_pending_payments=2)
    await make_user(41)
    await make_user(42)
    results = await asyncio.gather(
        *(stars.create_stars_payment(db, capped, 41, 30_000) for _ in range(6)), return_exceptions=True
    )
    made = [r for r in results if isinstance(r, stars.StarsInvoice)]
    refused = [r for r in results if isinstance(r, service.TooManyPendingPayments)]
    assert (len(made), len(refused)) == (2, 4), results
    assert await db.fetchval("SELECT count(*) FROM payments WHERE user_id = 41") == 2
    # Per user: another user is not affected.
    await stars.create_stars_payment(db, capped, 42, 30_000)

    # An expired invoice no longer counts; neither does a paid one.
    expired = "UPDATE payments SET expires_at = now() - interval '1 second' WHERE id = $1"
    await db.execute(expired, made[0].payment.id)
    await db.execute("UPDATE payments SET status = 'confirmed' WHERE id = $1", made[1].payment.id)
    await stars.create_stars_payment(db, capped, 41, 30_000)
    await stars.create_stars_payment(db, capped, 41, 30_000)
    with pytest.raises(service.TooManyPendingPayments):
        await stars.create_stars_payment(db, capped, 41, 30_000)
