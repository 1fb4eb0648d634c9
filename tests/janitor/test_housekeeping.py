"""Housekeeping chores (orbit/janitor/housekeeping.py) with the one clock moved forward:
what is old enough goes, what is referenced or still useful stays."""

from __future__ import annotations

import asyncpg

from orbit import clock
from orbit.janitor import housekeeping

DAY = 86400.0


async def _user(db: asyncpg.Pool, user_id: int = 1) -> None:
    await db.execute("INSERT INTO users (id, language) VALUES ($1, 'en')", user_id)


async def _payment(db: asyncpg.Pool, status: str, *, minutes: int = 10, method: str = "stars") -> int:
    return await db.fetchval(
        "INSERT INTO payments (user_id, method, status, amount_kop, currency, currency_amount,"
        " expires_at, created_at)"
        " VALUES (1, $1, $2, 10000, 'XTR', 75, orbit_now() + make_interval(mins => $3), orbit_now())"
        " RETURNING id",
        method,
        status,
        minutes,
    )


async def _ids(db: asyncpg.Pool, table: str, key: str = "id") -> list[object]:
    return [r[key] for r in await db.fetch(f"SELECT {key} FROM {table} ORDER BY {key}")]


async def test_pending_payments_expire_when_their_window_passes(db: asyncpg.Pool) -> None:
    await _user(db)
    soon = await _payment(db, "pending", minutes=10)
    later = await _payment(db, "pending", minutes=60)
    assert await housekeeping.expire_pending_payments(db) == 0
    await clock.advance(db, 11 * 60)
    assert await housekeeping.expire_pending_payments(db) == 1
    statuses = dict(await db.fetch("SELECT id, status FROM payments"))
    assert statuses == {soon: "expired", later: "pending"}
    assert await housekeeping.expire_pending_payments(db) == 0


async def test_week_old_failed_and_expired_payments_go_unless_referenced(db: asyncpg.Pool) -> None:
    await _user(db)
    expired = await _payment(db, "expired")
    failed = await _payment(db, "failed")
    confirmed = await _payment(db, "confirmed")
    credited = await _payment(db, "expired", method="ton")  # a late transfer was credited to it
    await db.execute(
        "INSERT INTO ledger (user_id, amount_kop, balance_after_kop, kind, idempotency_key, payment_id)"
        " VALUES (1, 100, 100, 'topup', 'late', $1)",
        credited,
    )
    named = await _payment(db, "failed", method="ton")  # a transfer names it
    await db.execute(
        "INSERT INTO ton_transactions (hash, lt, amount_nanoton, payment_id, status, utime)"
        " VALUES ('h1', 1, 5, $1, 'rejected', orbit_now())",
        named,
    )
    await clock.advance(db, 6 * DAY)
    young = await _payment(db, "expired")
    assert await housekeeping.delete_closed_payments(db) == 0
    await clock.advance(db, 1.5 * DAY)
    assert await housekeeping.delete_closed_payments(db) == 2
    assert await _ids(db, "payments") == sorted([confirmed, credited, named, young])
    assert expired not in await _ids(db, "payments") and failed not in await _ids(db, "payments")


async def test_reviewed_unmatched_ton_transfers_go_after_90_days(db: asyncpg.Pool) -> None:
    await _user(db)
    rows = {
        "reviewed": ("unmatched", True),
        "waiting": ("unmatched", False),
        "rejected_reviewed": ("rejected", True),
        "old_history": ("ignored", False),
        "credited": ("matched", True),
    }
    for n, (tx_hash, (status, reviewed)) in enumerate(rows.items()):
        await db.execute(
            "INSERT INTO ton_transactions (hash, lt, amount_nanoton, status, utime, reviewed_at)"
            " VALUES ($1, $2, 5, $3, orbit_now(), CASE WHEN $4 THEN orbit_now() END)",
            tx_hash, n, status, reviewed,
        )  # fmt: skip
    await clock.advance(db, 89 * DAY)
    assert await housekeeping.delete_reviewed_ton_transfers(db) == 0
    await clock.advance(db, 2 * DAY)
    assert await housekeeping.delete_reviewed_ton_transfers(db) == 3
    assert await _ids(db, "ton_transactions", "hash") == ["credited", "waiting"]


async def test_sent_outbox_rows_go_after_30_days(db: asyncpg.Pool) -> None:
    await _user(db)
    for status in ("sent", "pending", "sending"):
        await db.execute(
            "INSERT INTO outbox (chat_id, kind, text, status, created_at)"
            " VALUES (1, 'n', 't', $1, orbit_now())",
            status,
        )
    await clock.advance(db, 29 * DAY)
    fresh = await db.fetchval(
        "INSERT INTO outbox (chat_id, kind, text, status, created_at)"
        " VALUES (1, 'n', 't', 'sent', orbit_now()) RETURNING id"
    )
    assert await housekeeping.purge_old_outbox(db) == 0
    await clock.advance(db, 2 * DAY)
    assert await housekeeping.purge_old_outbox(db) == 1
    left = await db.fetch("SELECT id, status FROM outbox ORDER BY id")
    assert [r["status"] for r in left] == ["pending", "sending", "sent"] and left[-1]["id"] == fresh
