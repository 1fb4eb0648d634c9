"""TON end to end: the real bot and `ton_watcher` processes, the tonapi emulator as the chain."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import pytest
from redis.asyncio import Redis

from orbit import keys
from orbit.sandbox.tonapi import TonapiEmulator
from tests.support.journey import eventually
from tests.support.processes import WorkerProcess, spawn, wait_for_heartbeat
from tests.support.telegram_user import TelegramUser

MakeUser = Callable[..., TelegramUser]
WALLET = "0:" + "7a" * 32
TONAPI_KEY = "e2e-tonapi-key"
RECEIVED = "✅ Payment received: +300 ₽. Balance: 300 ₽."


@pytest.fixture
async def tonapi() -> AsyncIterator[TonapiEmulator]:
    emulator = TonapiEmulator(api_key=TONAPI_KEY)
    await emulator.start()
    emulator.set_rate(200.0)
    yield emulator
    await emulator.stop()


@pytest.fixture
def ton_env(bot_env: dict[str, str], tonapi: TonapiEmulator) -> dict[str, str]:
    return {"TON_ADDRESS": WALLET, "TONAPI_URL": tonapi.base_url or "", "TONAPI_KEY": TONAPI_KEY}


@pytest.fixture
async def watcher(
    bot_env: dict[str, str], ton_env: dict[str, str], redis: Redis, log_dir: Path
) -> AsyncIterator[WorkerProcess]:
    worker = await spawn("ton_watcher", {**bot_env, **ton_env}, log_dir)
    await wait_for_heartbeat(redis, "ton_watcher", pid=worker.pid)
    yield worker
    assert await worker.stop() == 0, worker.output()[-3000:]


async def test_ton_from_the_button_to_the_confirmation(
    start_bot: Callable[..., object],
    ton_env: dict[str, str],
    watcher: WorkerProcess,
    make_user: MakeUser,
    db: asyncpg.Pool,
    redis: Redis,
    tonapi: TonapiEmulator,
) -> None:
    await start_bot(**ton_env)  # type: ignore[operator]
    ann = make_user(8201, first_name="Ann")
    await ann.send("/start")
    await ann.press("💰 Balance")
    await ann.press("➕ Top up")
    await ann.press("300 ₽")
    await ann.press("💎 TON")
    screen = await ann.last()
    payment = await db.fetchrow("SELECT id, status, amount_kop, currency_amount, comment FROM payments")
    assert (payment["status"], payment["amount_kop"], payment["currency_amount"]) == (
        "pending", 30_000, 1_500_000_000,
    )  # fmt: skip
    caption = screen.caption or screen.text or ""
    assert "Send exactly 1.5 TON" in caption and f"with the comment {payment['comment']}" in caption
    assert f"ton://transfer/{WALLET}?amount=1500000000&text={payment['comment']}" in caption
    assert screen.kind == "photo"  # the QR code of that link

    # The user pays from their wallet, with the comment, then presses "I paid".
    tonapi.send_ton(WALLET, 1_500_000_000, payment["comment"])
    answer = await ann.press("✅ I paid")
    assert answer.text is not None and "Checking" in answer.text
    await ann.wait_until(lambda shown: any(m.text == RECEIVED for m in shown), timeout=15)
    assert await db.fetchval("SELECT status FROM payments") == "confirmed"
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 8201") == 30_000
    ledger = await db.fetch("SELECT kind, idempotency_key FROM ledger")
    assert [tuple(r) for r in ledger] == [("topup", f"payment:{payment['id']}")]

    # The same transaction handed out again by tonapi: no second credit, no second message.
    answer = await ann.press("✅ I paid")
    assert answer.text is not None and "already" in answer.text
    await db.execute("UPDATE cursors SET value = '0'")
    before = len(tonapi.requests)
    await redis.publish(keys.channel(redis, keys.TON_POKE_CHANNEL), "again")
    await eventually(lambda: _polled_since(tonapi, before))
    await eventually(lambda: db.fetchval("SELECT value::bigint > 0 FROM cursors"))
    assert await db.fetchval("SELECT count(*) FROM ledger") == 1
    assert [m.text for m in await ann.messages()].count(RECEIVED) == 1


async def _polled_since(tonapi: TonapiEmulator, before: int) -> bool:
    return any(r.path.endswith("/transactions") for r in tonapi.requests[before:])
