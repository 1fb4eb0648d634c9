"""TON: rate, payment creation, and matching wallet transfers, against the tonapi emulator."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import aiohttp
import asyncpg
import msgspec
import pytest
from redis.asyncio import Redis

from orbit import keys
from orbit.payments import service, ton
from orbit.payments.audit import audit
from orbit.payments.ton_watch import cursor_name
from orbit.payments.tonapi import TonapiClient, TonapiError, TonapiUnavailable
from orbit.sandbox.tonapi import TonapiEmulator
from orbit.settings import Settings
from tests.payments_core.conftest import TON_WALLET, TONAPI_KEY, Shop, tonapi_client

MakeUser = Callable[..., Awaitable[int]]
NANO = 10**9


async def _balance(db: asyncpg.Pool, user_id: int) -> int:
    return await db.fetchval("SELECT balance_kop FROM users WHERE id = $1", user_id)


async def _audit_ok(db: asyncpg.Pool) -> None:
    async with db.acquire() as conn:
        assert await audit(conn) == []


# --- rate and creation ---------------------------------------------------------------------


async def test_rate_is_fetched_cached_and_falls_back(
    redis: Redis, http: aiohttp.ClientSession, tonapi: TonapiEmulator, settings: Settings
) -> None:
    tonapi.set_rate(250.0)
    assert await ton.ton_rate(redis, http, settings) == 250.0
    tonapi.set_rate(300.0)
    assert await ton.ton_rate(redis, http, settings) == 250.0  # cached
    assert 0 < await redis.ttl(keys.TON_RATE) <= ton.RATE_TTL_SECONDS
    assert sum(r.path == "/v2/rates" for r in tonapi.requests) == 1
    assert tonapi.requests[0].headers.get("Authorization") == f"Bearer {TONAPI_KEY}"

    await redis.delete(keys.TON_RATE)
    tonapi.fail_next(5, 503)
    assert await ton.ton_rate(redis, http, settings) == settings.ton_rub_rate
    assert 0 < await redis.ttl(keys.TON_RATE) <= ton.FALLBACK_TTL_SECONDS


def test_amount_arithmetic() -> None:
    assert ton.nanotons_for(22_050, 220.5) == NANO  # 220.50 RUB at 220.5 RUB/TON
    assert ton.nanotons_for(10_000, 220.5) == 453_600_000  # 0.45351... rounded up to 0.0001
    assert ton.format_ton(453_600_000) == "0.4536" and ton.format_ton(2 * NANO) == "2"
    with pytest.raises(ValueError):
        ton.nanotons_for(100, 0)
    assert ton.normalize_comment(" orb abc 123\n") == "ORBABC123"
    assert ton.normalize_comment("   ") is None and ton.normalize_comment(None) is None
    assert ton.ton_link("EQabc", 5, "ORB A&B") == "ton://transfer/EQabc?amount=5&text=ORB%20A%26B"


async def test_create_ton_payment(
    db: asyncpg.Pool, tonapi: TonapiEmulator, settings: Settings, shop: Shop, make_user: MakeUser
) -> None:
    await make_user(1)
    tonapi.set_rate(200.0)
    invoices = [await shop.invoice(1, 300) for _ in range(20)]
    first = invoices[0]
    assert first.nanotons == 1_500_000_000 and first.amount_ton == "1.5" and first.rate_rub == 200.0
    assert first.address == TON_WALLET
    assert first.link == f"ton://transfer/{TON_WALLET}?amount=1500000000&text={first.comment}"
    assert len({i.comment for i in invoices}) == 20
    assert all(i.comment.startswith("ORB") and len(i.comment) == 9 for i in invoices)
    row = await db.fetchrow("SELECT * FROM payments WHERE id = $1", first.payment.id)
    assert (row["method"], row["status"], row["currency"], row["amount_kop"], row["currency_amount"]) == (
        "ton", "pending", "TON", 30_000, 1_500_000_000,
    )
    minutes = (row["expires_at"] - row["created_at"]).total_seconds() / 60
    assert abs(minutes - settings.payment_timeout_minutes) < 0.1
    assert ton.qr_png(first.link).startswith(b"\x89PNG\r\n\x1a\n")

    with pytest.raises(service.AmountOutOfRange):
        await shop.invoice(1, 10)
    with pytest.raises(service.MethodNotConfigured):
        await shop.invoice(1, 300, msgspec.structs.replace(settings, ton_address=None))
    assert await db.fetchval("SELECT count(*) FROM payments") == 20


# --- matching --------------------------------------------------------------------------------


async def test_transfers_are_matched_and_credited(
    db: asyncpg.Pool, tonapi: TonapiEmulator, shop: Shop, make_user: MakeUser
) -> None:
    await make_user(5)
    await make_user(1, referrer=5)
    await make_user(2, language="ru")
    tonapi.set_rate(200.0)
    exact = await shop.invoice(1, 300)  # 1.5 TON
    under = await shop.invoice(2, 200)  # 1 TON
    over = await shop.invoice(2, 200)
    late = await shop.invoice(2, 200)
    await db.execute(
        "UPDATE payments SET status = 'expired', expires_at = now() - interval '1 hour' WHERE id = $1",
        late.payment.id,
    )

    tonapi.send_ton(TON_WALLET, exact.nanotons, exact.comment)
    tonapi.send_ton(TON_WALLET, NANO // 2, under.comment)  # half
    tonapi.send_ton(TON_WALLET, 2 * NANO, f"  {over.comment.lower()} ")  # retyped comment, double
    tonapi.send_ton(TON_WALLET, NANO, late.comment)
    tonapi.send_ton(TON_WALLET, NANO, "ORBNOSUCH")  # unknown comment
    tonapi.send_ton(TON_WALLET, NANO)  # no comment
    tonapi.send_ton(TON_WALLET, NANO, exact.comment, bounced=True)
    tonapi.send_ton(TON_WALLET, NANO, exact.comment, failed=True)
    tonapi.send_outgoing(TON_WALLET, "0:" + "cd" * 32, NANO, exact.comment)
    tonapi.send_ton("0:" + "ef" * 32, NANO, exact.comment)  # someone else's wallet

    result = await shop.poll()
    assert (result.new, result.matched, result.unmatched, result.ignored) == (8, 4, 2, 2)

    payments = {
        r["id"]: r for r in await db.fetch("SELECT id, status, credited_kop, external_id FROM payments")
    }
    assert payments[exact.payment.id]["credited_kop"] == 30_000
    assert payments[under.payment.id]["credited_kop"] == 10_000
    assert payments[over.payment.id]["credited_kop"] == 40_000
    assert payments[late.payment.id]["credited_kop"] == 20_000
    assert {r["status"] for r in payments.values()} == {"confirmed"}
    assert await _balance(db, 1) == 30_000
    assert await _balance(db, 2) == 70_000
    assert await _balance(db, 5) == 5_000  # the referral bonus of user 1's first top-up

    stored = await db.fetch("SELECT status, count(*) AS n FROM ton_transactions GROUP BY status")
    assert {r["status"]: r["n"] for r in stored} == {"matched": 4, "unmatched": 2, "ignored": 2}
    unmatched = await db.fetch("SELECT comment FROM ton_transactions WHERE status = 'unmatched'")
    assert sorted(str(r["comment"]) for r in unmatched) == ["None", "ORBNOSUCH"]
    texts = [r["text"] for r in await db.fetch("SELECT text FROM outbox WHERE chat_id = 2 ORDER BY id")]
    assert len(texts) == 3
    assert "100 ₽ из 200 ₽" in texts[0] and "400 ₽ вместо 200 ₽" in texts[1]
    assert "после истечения срока" in texts[2]
    cursor = await db.fetchval("SELECT value FROM cursors WHERE name = $1", cursor_name(TON_WALLET))
    own = [tx["lt"] for tx in tonapi.transactions(TON_WALLET)]
    assert int(cursor) == max(own)
    await _audit_ok(db)


async def test_a_further_transfer_to_a_paid_comment_is_credited(
    db: asyncpg.Pool, tonapi: TonapiEmulator, shop: Shop, make_user: MakeUser
) -> None:
    await make_user(1)
    tonapi.set_rate(200.0)
    invoice = await shop.invoice(1, 200)
    tonapi.send_ton(TON_WALLET, NANO // 2, invoice.comment)  # underpaid: 100 of 200
    await shop.poll()
    tonapi.send_ton(TON_WALLET, NANO // 2, invoice.comment)  # the rest
    await shop.poll()
    assert await _balance(db, 1) == 20_000
    row = await db.fetchrow("SELECT status, credited_kop FROM payments")
    assert tuple(row) == ("confirmed", 20_000)
    keys_ = [r["idempotency_key"] for r in await db.fetch("SELECT idempotency_key FROM ledger ORDER BY id")]
    assert keys_[0] == f"payment:{invoice.payment.id}" and keys_[1].startswith("ton:")
    assert await db.fetchval("SELECT count(*) FROM outbox WHERE chat_id = 1") == 2
    await _audit_ok(db)


async def test_the_same_transaction_delivered_twice_is_credited_once(
    db: asyncpg.Pool, tonapi: TonapiEmulator, shop: Shop, make_user: MakeUser
) -> None:
    await make_user(1)
    invoices = await shop.paid_in_full(1, 100, 3)
    tonapi.send_ton(TON_WALLET, 5 * invoices[0].nanotons, invoices[0].comment)  # a further transfer too
    await shop.poll()
    balance = await _balance(db, 1)
    assert balance == 3 * 10_000 + 5 * 10_000

    # tonapi hands the whole history out again (a cursor lost or rewound, a second watcher).
    async with db.acquire() as conn:
        await conn.execute("UPDATE cursors SET value = '0'")
    again = await shop.poll()
    assert (again.fetched, again.new, again.matched) == (4, 0, 0)
    # Two watchers at once (a lease hand-over) on a rewound cursor: still once.
    await db.execute("UPDATE cursors SET value = '0'")
    await asyncio.gather(*(shop.poll() for _ in range(3)))
    assert await _balance(db, 1) == balance
    assert await db.fetchval("SELECT count(*) FROM ledger") == 4
    assert await db.fetchval("SELECT count(*) FROM outbox") == 4
    await _audit_ok(db)


async def test_pages_through_everything_new(
    db: asyncpg.Pool, tonapi: TonapiEmulator, shop: Shop, make_user: MakeUser
) -> None:
    await make_user(1)
    await shop.paid_in_full(1, 100, 11)
    result = await shop.poll(page_size=3)
    assert result.matched == 11
    pages = [r for r in tonapi.requests if r.path.endswith("/transactions")]
    assert pages[0].query["after_lt"] == "0" and len(pages) == 4
    assert all(r.query["sort_order"] == "asc" and r.query["limit"] == "3" for r in pages)
    assert await _balance(db, 1) == 110_000
    assert await db.fetchval("SELECT count(*) FROM payments WHERE status = 'confirmed'") == 11


async def test_old_wallet_history_is_ignored_not_unmatched(
    db: asyncpg.Pool, tonapi: TonapiEmulator, shop: Shop, make_user: MakeUser
) -> None:
    await make_user(1)
    old = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())
    tonapi.send_ton(TON_WALLET, NANO, "thanks for the coffee", utime=old)
    await shop.poll()  # no TON payment ever: history
    await shop.invoice(1, 100)
    tonapi.send_ton(TON_WALLET, NANO, "ORBWHAT00")
    await shop.poll()
    rows = await db.fetch("SELECT comment, status FROM ton_transactions ORDER BY lt")
    assert [tuple(r) for r in rows] == [("thanks for the coffee", "ignored"), ("ORBWHAT00", "unmatched")]


# --- the tonapi client -------------------------------------------------------------------------


async def test_429_and_5xx_back_off_then_succeed(http: aiohttp.ClientSession, tonapi: TonapiEmulator) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    tonapi.send_ton(TON_WALLET, NANO, "x")
    tonapi.fail_next(2, 429)
    tonapi.fail_next(1, 502)
    client = tonapi_client(http, tonapi, retries=5, base_delay=0.1, max_delay=1.0, sleep=sleep)
    txs = await client.transactions(TON_WALLET, 0)
    assert len(txs) == 1 and txs[0].in_msg is not None and txs[0].in_msg.comment == "x"
    assert [r.status for r in tonapi.requests] == [429, 429, 502, 200]
    assert len(slept) == 3
    # Exponential with jitter: each delay lies in [ceiling/2, ceiling], ceilings 0.1, 0.2, 0.4.
    for delay, ceiling in zip(slept, (0.1, 0.2, 0.4), strict=True):
        assert ceiling / 2 <= delay <= ceiling


async def test_back_off_is_bounded(http: aiohttp.ClientSession, tonapi: TonapiEmulator) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    tonapi.fail_next(50, 429)
    client = tonapi_client(http, tonapi, retries=3, base_delay=1.0, max_delay=2.0, sleep=sleep)
    with pytest.raises(TonapiUnavailable):
        await client.transactions(TON_WALLET, 0)
    assert len(tonapi.requests) == 4 and len(slept) == 3 and max(slept) <= 2.0

    tonapi.reset()
    with pytest.raises(TonapiError) as info:  # a 4xx is not retried
        await client.transactions("not-an-address", 0)
    assert not isinstance(info.value, TonapiUnavailable) and len(tonapi.requests) == 1
    wrong_key = TonapiClient(http, tonapi.base_url or "", "wrong", sleep=sleep)
    with pytest.raises(TonapiError):
        await wrong_key.transactions(TON_WALLET, 0)
