"""TON transfers built to hurt: odd comments, duplicates in a page, crumbs that fish for
the referral bonus, late payments that bet on the rate. Against the tonapi emulator."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
from redis.asyncio import Redis

from orbit import keys
from orbit.payments import service
from orbit.payments.audit import audit
from orbit.payments.ton_watch import cursor_name
from orbit.sandbox.tonapi import TonapiEmulator
from orbit.text import is_clean
from tests.payments_core.conftest import TON_WALLET, Shop

MakeUser = Callable[..., Awaitable[int]]
NANO = 10**9


async def _balance(db: asyncpg.Pool, user_id: int) -> int:
    return await db.fetchval("SELECT balance_kop FROM users WHERE id = $1", user_id)


async def _cursor(db: asyncpg.Pool) -> int:
    return int(await db.fetchval("SELECT value FROM cursors WHERE name = $1", cursor_name(TON_WALLET)))


async def _audit(db: asyncpg.Pool) -> list[str]:
    async with db.acquire() as conn:
        return [str(m) for m in await audit(conn)]


def _page(
    tonapi: TonapiEmulator, *, replace: dict[str, str] | None = None, twice: str | None = None
) -> bytes:
    """The wallet's real transactions as tonapi's JSON, with comment markers swapped for raw
    JSON text (e.g. a lone `\\ud800` escape no builder can encode) and one hash listed twice."""
    txs = tonapi.transactions(TON_WALLET)
    if twice is not None:
        txs += [tx for tx in txs if tx["hash"] == twice]
    body = json.dumps({"transactions": txs})
    for marker, raw in (replace or {}).items():
        body = body.replace(marker, raw)
    return body.encode()


async def test_a_nul_comment_does_not_stop_the_watcher(
    db: asyncpg.Pool, tonapi: TonapiEmulator, shop: Shop, make_user: MakeUser
) -> None:
    await make_user(1)
    honest = await shop.invoice(1, 100)
    tonapi.send_ton(TON_WALLET, NANO // 100, "ORB\x00PWNED\x1b[31m")  # anyone can send this for a fee
    tonapi.send_ton(TON_WALLET, honest.nanotons, honest.comment)

    result = await shop.poll()

    assert result.matched == 1 and result.unmatched == 1
    assert await _balance(db, 1) == 10_000
    assert await _cursor(db) == max(tx["lt"] for tx in tonapi.transactions(TON_WALLET))
    stored = await db.fetchval("SELECT comment FROM ton_transactions WHERE status = 'unmatched'")
    assert stored == "ORBPWNED [31m" and is_clean(stored)
    assert await _audit(db) == []


async def test_a_lone_surrogate_or_a_huge_value_does_not_stop_the_watcher(
    db: asyncpg.Pool, tonapi: TonapiEmulator, shop: Shop, make_user: MakeUser
) -> None:
    """tonapi's JSON may carry `\\ud800` (a comment of invalid UTF-16): the whole page used to
    be refused by the decoder, forever. A value no bigint holds used to abort the page."""
    await make_user(1)
    first, second = await shop.invoice(1, 100), await shop.invoice(1, 200)
    tonapi.send_ton(TON_WALLET, NANO // 100, "SURROGATE-MARK")
    tonapi.send_ton(TON_WALLET, first.nanotons, first.comment)
    tonapi.send_ton(TON_WALLET, 2**70, second.comment)  # more than any bigint (and any wallet)
    tonapi.send_ton(TON_WALLET, second.nanotons, second.comment)
    tonapi.script_page(TON_WALLET, _page(tonapi, replace={"SURROGATE-MARK": "ORB\\ud800\\udc00\\ud800"}))

    result = await shop.poll()

    assert await _balance(db, 1) == 30_000
    assert result.rejected == 1
    assert await _cursor(db) == max(tx["lt"] for tx in tonapi.transactions(TON_WALLET))
    rows = {r["status"]: r for r in await db.fetch("SELECT * FROM ton_transactions")}
    assert is_clean(rows["unmatched"]["comment"]) and "\ufffd" in rows["unmatched"]["comment"]
    assert "out of range" in rows["rejected"]["reason"]
    assert await _audit(db) == []
    again = await shop.poll()  # nothing is retried for ever
    assert again.fetched == 0


async def test_a_transfer_that_breaks_its_page_is_rejected_and_the_page_goes_on(
    db: asyncpg.Pool, tonapi: TonapiEmulator, shop: Shop, make_user: MakeUser
) -> None:
    """The class, not the instance: whatever makes one transfer fail in Postgres (here a
    credit no bigint holds, on a payment priced at 1 nanoton), the page is redone one
    transfer at a time, the culprit stored `rejected` with the error, the rest credited."""
    await make_user(1)
    before, after = await shop.invoice(1, 100), await shop.invoice(1, 100)
    async with db.acquire() as conn, conn.transaction():
        absurd = await service.create_payment(
            conn, 1, "ton", 10_000, "TON", 1, datetime.now(UTC) + timedelta(minutes=10), comment="ORBABSURD"
        )
    tonapi.send_ton(TON_WALLET, before.nanotons, before.comment)
    broken = tonapi.send_ton(TON_WALLET, 9 * 10**18, "ORBABSURD")
    tonapi.send_ton(TON_WALLET, after.nanotons, after.comment)

    result = await shop.poll()

    assert (result.matched, result.rejected, result.new) == (2, 1, 3)
    assert await _balance(db, 1) == 20_000
    assert await _cursor(db) == max(tx["lt"] for tx in tonapi.transactions(TON_WALLET))
    row = await db.fetchrow("SELECT status, reason, payment_id FROM ton_transactions WHERE hash = $1", broken)
    assert row["status"] == "rejected" and "DataError" in row["reason"] and row["payment_id"] is None
    assert await db.fetchval("SELECT status FROM payments WHERE id = $1", absurd.id) == "pending"
    assert await _audit(db) == []


async def test_a_transaction_listed_twice_in_one_page_is_credited_once(
    db: asyncpg.Pool, tonapi: TonapiEmulator, shop: Shop, make_user: MakeUser
) -> None:
    await make_user(1)
    invoice = await shop.invoice(1, 100)
    tx_hash = tonapi.send_ton(TON_WALLET, invoice.nanotons, invoice.comment)
    tonapi.script_page(TON_WALLET, _page(tonapi, twice=tx_hash))

    result = await shop.poll()

    assert result.matched == 1
    assert await _balance(db, 1) == 10_000
    assert await db.fetchval("SELECT count(*) FROM ledger") == 1
    assert await _audit(db) == []


async def test_the_audit_sees_a_transfer_credited_twice(
    db: asyncpg.Pool, tonapi: TonapiEmulator, shop: Shop, make_user: MakeUser
) -> None:
    """What the duplicate-in-a-page bug left behind: the payment's `credited_kop` and the
    ledger agree, but one stored transfer paid for two credits."""
    await make_user(1)
    invoice = await shop.invoice(1, 100)
    tx_hash = tonapi.send_ton(TON_WALLET, invoice.nanotons, invoice.comment)
    await shop.poll()
    assert await _audit(db) == []
    await db.execute(
        "INSERT INTO ledger (user_id, amount_kop, balance_after_kop, kind, idempotency_key, payment_id)"
        " VALUES (1, 10000, 20000, 'topup', $1, $2)",
        f"ton:{tx_hash}",
        invoice.payment.id,
    )
    await db.execute("UPDATE users SET balance_kop = 20000 WHERE id = 1")
    await db.execute("UPDATE payments SET credited_kop = 20000 WHERE id = $1", invoice.payment.id)

    found = await _audit(db)

    assert any(f"payment {invoice.payment.id}" in line and "transfers" in line for line in found), found
    assert any(tx_hash in line and "credited 2 times" in line for line in found), found


async def test_the_referral_bonus_needs_real_money(
    db: asyncpg.Pool, tonapi: TonapiEmulator, shop: Shop, make_user: MakeUser
) -> None:
    await make_user(5)
    await make_user(1, referrer=5)
    tonapi.set_rate(200.0)
    invoice = await shop.invoice(1, 100)  # 0.5 TON
    tonapi.send_ton(TON_WALLET, invoice.nanotons // 10_000, invoice.comment)  # 1 kopeck's worth
    await shop.poll()
    assert await db.fetchval("SELECT credited_kop FROM payments") == 1
    assert await _balance(db, 5) == 0  # a network fee does not earn 50 RUB

    tonapi.send_ton(TON_WALLET, invoice.nanotons // 2, invoice.comment)  # the referee's 50 RUB
    await shop.poll()
    assert await _balance(db, 1) == 5_001
    assert await _balance(db, 5) == 5_000
    assert await _audit(db) == []


async def test_a_late_payment_gets_the_lower_of_the_two_rates(
    db: asyncpg.Pool, redis: Redis, tonapi: TonapiEmulator, shop: Shop, make_user: MakeUser
) -> None:
    await make_user(1)
    tonapi.set_rate(200.0)
    late_fell, late_rose, in_grace = [await shop.invoice(1, 200) for _ in range(3)]  # 1 TON each
    long_ago = datetime.now(UTC) - timedelta(days=1)
    await db.execute(
        "UPDATE payments SET created_at = $2, expires_at = $2 WHERE id = ANY($1::bigint[])",
        [late_fell.payment.id, late_rose.payment.id],
        long_ago,
    )
    await db.execute(
        "UPDATE payments SET expires_at = now() - interval '1 minute' WHERE id = $1", in_grace.payment.id
    )

    tonapi.set_rate(100.0)  # TON halved since: the late payer waited for this
    await redis.delete(keys.TON_RATE)
    tonapi.send_ton(TON_WALLET, NANO, late_fell.comment)
    tonapi.send_ton(TON_WALLET, NANO, in_grace.comment)
    await shop.poll()
    tonapi.set_rate(400.0)  # TON doubled: the invoice's rate is the lower one
    await redis.delete(keys.TON_RATE)
    tonapi.send_ton(TON_WALLET, NANO, late_rose.comment)
    await shop.poll()

    credited = dict(await db.fetch("SELECT id, credited_kop FROM payments"))
    assert credited[late_fell.payment.id] == 10_000
    assert credited[late_rose.payment.id] == 20_000
    assert credited[in_grace.payment.id] == 20_000  # within the grace: the invoice's rate
    assert await _audit(db) == []
