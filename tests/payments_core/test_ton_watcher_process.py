"""The real `python -m orbit.ton_watcher` process against the tonapi emulator."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from redis.asyncio import Redis

from orbit import keys
from orbit.payments import service, ton
from orbit.payments.audit import audit
from orbit.payments.ton_watch import cursor_name
from orbit.sandbox.tonapi import TonapiEmulator
from orbit.settings import Settings
from tests.payments_core.conftest import TON_WALLET, TONAPI_KEY, Shop
from tests.payments_core.test_ton_reconcile import _a_transfer_the_watcher_missed
from tests.support.processes import WorkerProcess, spawn, wait_for_heartbeat

MakeUser = Callable[..., Awaitable[int]]
NANO = 10**9


@pytest.fixture
def watcher_env(base_env: dict[str, str], tonapi: TonapiEmulator) -> dict[str, str]:
    return {
        **base_env,
        "TON_ADDRESS": TON_WALLET,
        "TONAPI_URL": tonapi.base_url or "",
        "TONAPI_KEY": TONAPI_KEY,
        "REFERRAL_BONUS": "50",
    }


@pytest.fixture
async def start_watcher(
    watcher_env: dict[str, str], log_dir: Path
) -> AsyncIterator[Callable[[], Awaitable[WorkerProcess]]]:
    running: list[WorkerProcess] = []

    async def start() -> WorkerProcess:
        worker = await spawn("ton_watcher", watcher_env, log_dir)
        running.append(worker)
        return worker

    yield start
    for worker in running:
        if worker.proc.returncode is None:
            code = await worker.stop()
            assert code == 0, worker.output()[-3000:]


async def _wait_for(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 20.0) -> None:
    # Waits after a spawn include the interpreter's start-up, which takes up to 90 s when five
    # test runs start processes at once on two cores; a wait ends as soon as its check holds.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def _pending_payments(db: asyncpg.Pool, user_id: int, count: int, amount_kop: int) -> list[str]:
    """`count` TON payments of `amount_kop` at 1 TON = 100 RUB; returns their comments."""
    comments = [f"ORBK{n:05d}" for n in range(count)]
    expires = datetime.now(UTC) + timedelta(minutes=10)
    async with db.acquire() as conn, conn.transaction():
        for comment in comments:
            await service.create_payment(
                conn, user_id, "ton", amount_kop, "TON", amount_kop * NANO // 10_000, expires, comment=comment
            )
    return comments


async def test_a_transfer_is_confirmed_at_once_when_poked(
    db: asyncpg.Pool,
    redis: Redis,
    tonapi: TonapiEmulator,
    make_user: MakeUser,
    start_watcher: Callable[[], Awaitable[WorkerProcess]],
    settings: Settings,
) -> None:
    await make_user(7, language="ru")
    await make_user(8, referrer=7)
    tonapi.set_rate(200.0)
    async with aiohttp.ClientSession() as http:
        invoice = await ton.create_ton_payment(db, redis, http, settings, 8, 30_000)
    worker = await start_watcher()
    await wait_for_heartbeat(redis, "ton_watcher", pid=worker.pid)
    await _wait_for(lambda: _polled_once(tonapi), "the first poll")

    tonapi.send_ton(TON_WALLET, invoice.nanotons, invoice.comment)
    await redis.publish(keys.channel(redis, keys.TON_POKE_CHANNEL), "8")  # the "I paid" button

    async def confirmed() -> bool:
        status = await db.fetchval("SELECT status FROM payments WHERE id = $1", invoice.payment.id)
        return status == "confirmed"

    # Well inside the 30 s timer: the poke woke the watcher.
    await _wait_for(confirmed, "the payment to be confirmed", timeout=120)
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 8") == 30_000
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 7") == 5_000
    entry = await db.fetchrow("SELECT kind, idempotency_key FROM ledger WHERE user_id = 8")
    assert tuple(entry) == ("topup", f"payment:{invoice.payment.id}")
    rows = await db.fetch("SELECT chat_id, kind, text FROM outbox ORDER BY id")
    assert [(r["chat_id"], r["kind"]) for r in rows] == [(8, "payment_confirmed"), (7, "referral_bonus")]
    assert "+300 ₽" in rows[0]["text"] and "🎁" in rows[1]["text"]
    assert all(r.headers.get("Authorization") == f"Bearer {TONAPI_KEY}" for r in tonapi.requests)

    # The same transaction delivered again (the cursor rewound): nothing more is credited.
    await db.execute("UPDATE cursors SET value = '0'")
    polls = len(tonapi.requests)
    await redis.publish(keys.channel(redis, keys.TON_POKE_CHANNEL), "8")
    await _wait_for(
        lambda: _cursor_is(db, max(tx["lt"] for tx in tonapi.transactions(TON_WALLET))),
        "the rewound cursor to be caught up",
    )
    assert len(tonapi.requests) > polls
    assert await db.fetchval("SELECT count(*) FROM ledger") == 2
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 8") == 30_000
    assert await worker.stop() == 0


async def _polled_once(tonapi: TonapiEmulator) -> bool:
    return any(r.path.endswith("/transactions") and r.status == 200 for r in tonapi.requests)


async def _cursor_is(db: asyncpg.Pool, lt: int) -> bool:
    value = await db.fetchval("SELECT value FROM cursors WHERE name = $1", cursor_name(TON_WALLET))
    return value is not None and int(value) == lt


async def _writing_backends(db: asyncpg.Pool) -> int:
    """Other sessions of this database inside a transaction that has written something."""
    return await db.fetchval(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL"
    )


async def test_kill_9_in_the_middle_of_a_batch_then_restart_credits_each_payment_once(
    db: asyncpg.Pool,
    redis: Redis,
    tonapi: TonapiEmulator,
    make_user: MakeUser,
    start_watcher: Callable[[], Awaitable[WorkerProcess]],
) -> None:
    count = 600
    await make_user(1)
    comments = await _pending_payments(db, 1, count, 10_000)
    for comment in comments:
        tonapi.send_ton(TON_WALLET, NANO, comment)  # 1 TON = 100 RUB each

    worker = await start_watcher()
    # Kill it while a page's transaction has written rows but not committed.
    await _wait_for(lambda: _writing_backends(db), "a batch in flight", timeout=120)
    worker.proc.send_signal(signal.SIGKILL)
    await worker.proc.wait()
    await _wait_for(lambda: _no_writers(db), "the killed session to be rolled back")

    confirmed = await db.fetchval("SELECT count(*) FROM payments WHERE status = 'confirmed'")
    assert confirmed < count, "the kill came after the last batch: not in the middle"
    # What survived is exactly the committed pages: every stored row is at or below the cursor.
    cursor = int(await db.fetchval("SELECT coalesce(max(value), '0') FROM cursors") or 0)
    assert await db.fetchval("SELECT count(*) FROM ton_transactions WHERE lt > $1", cursor) == 0
    assert await db.fetchval("SELECT count(*) FROM ton_transactions") == confirmed
    assert await db.fetchval("SELECT count(*) FROM ledger") == confirmed

    restarted = await start_watcher()

    async def all_confirmed() -> bool:
        return await db.fetchval("SELECT count(*) FROM payments WHERE status = 'confirmed'") == count

    await _wait_for(all_confirmed, "every payment to be confirmed", timeout=120)
    assert await restarted.stop() == 0
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 1") == count * 10_000
    per_payment = await db.fetch("SELECT payment_id, count(*) AS n FROM ledger GROUP BY payment_id")
    assert len(per_payment) == count and {r["n"] for r in per_payment} == {1}
    assert await db.fetchval("SELECT count(*) FROM ton_transactions WHERE status = 'matched'") == count
    assert await db.fetchval("SELECT count(DISTINCT dedup_key) FROM outbox") == count
    assert await db.fetchval("SELECT count(*) FROM outbox") == count
    async with db.acquire() as conn:
        assert await audit(conn) == []


async def _no_writers(db: asyncpg.Pool) -> bool:
    return await _writing_backends(db) == 0


async def test_429s_from_tonapi_are_backed_off_and_the_payment_still_arrives(
    db: asyncpg.Pool,
    redis: Redis,
    tonapi: TonapiEmulator,
    make_user: MakeUser,
    start_watcher: Callable[[], Awaitable[WorkerProcess]],
) -> None:
    await make_user(1)
    [comment] = await _pending_payments(db, 1, 1, 10_000)
    tonapi.send_ton(TON_WALLET, NANO, comment)
    tonapi.fail_next(3, 429)
    worker = await start_watcher()

    async def confirmed() -> bool:
        return await db.fetchval("SELECT status FROM payments") == "confirmed"

    await _wait_for(confirmed, "the payment to be confirmed", timeout=120)
    statuses = [r.status for r in tonapi.requests]
    assert statuses[:4] == [429, 429, 429, 200]
    gaps = [b.at - a.at for a, b in zip(tonapi.requests, tonapi.requests[1:4], strict=False)]
    assert all(gap > 0.2 for gap in gaps), gaps  # it waited before each retry
    assert "retry 1/5" in worker.output()
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 1") == 10_000


async def test_without_a_wallet_the_watcher_idles_and_stops_cleanly(
    base_env: dict[str, str], redis: Redis, log_dir: Path
) -> None:
    worker = await spawn("ton_watcher", base_env, log_dir)
    await wait_for_heartbeat(redis, "ton_watcher", pid=worker.pid)
    assert await worker.stop() == 0
    assert "TON payments are off" in worker.output()


async def test_the_watcher_reconciles_what_tonapi_listed_late(
    db: asyncpg.Pool,
    redis: Redis,
    tonapi: TonapiEmulator,
    shop: Shop,
    make_user: MakeUser,
    start_watcher: Callable[[], Awaitable[WorkerProcess]],
) -> None:
    """A transfer tonapi listed only after the cursor had passed it: the running watcher's
    reconciliation (at start, then every TON_RECONCILE_INTERVAL_MINUTES) credits it once."""
    await make_user(1)
    payment_id, _ = await _a_transfer_the_watcher_missed(shop, tonapi)
    worker = await start_watcher()

    async def confirmed() -> bool:
        return await db.fetchval("SELECT status FROM payments WHERE id = $1", payment_id) == "confirmed"

    await _wait_for(confirmed, "the missed payment to be reconciled", timeout=120)
    assert await worker.stop() == 0
    assert "1 missed and stored now (1 matched, 100 RUB credited" in worker.output()
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 1") == 30_000
    async with db.acquire() as conn:
        assert await audit(conn) == []
