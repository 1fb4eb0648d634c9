"""Crash windows of the money paths: a real process killed with SIGKILL at the worst
moment, then `orbit reconcile` (a real process) against the emulators. Afterwards
nothing is lost, nothing is counted twice, a second reconcile changes nothing and
`orbit audit` holds.

The worst moment is made without hooks in Orbit's code: the test holds the
payment's row lock (the handler waits inside its transaction) or the Telegram
emulator holds its answer after the effect (the refund happened, the caller
has not heard).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable

import aiohttp
import asyncpg
import msgspec
import pytest
from redis.asyncio import Redis

from orbit.bot_client import create_bot
from orbit.i18n import create_translator
from orbit.payments.reconcile import ReconcileDeps, Report, reconcilers, run_reconcilers
from orbit.sandbox.cryptobot import CryptoBotEmulator
from orbit.settings import load_settings
from tests.e2e.conftest import Telegram
from tests.e2e.test_payments_stars import _stars_invoice
from tests.support.cli import orbit
from tests.support.journey import eventually
from tests.support.processes import ROOT, spawn, wait_for_heartbeat
from tests.support.telegram_user import TelegramUser

MakeUser = Callable[..., TelegramUser]
CRYPTO_TOKEN = "778:AAcryptobot-crash-token"


async def _lock_waiters(db: asyncpg.Pool) -> int:
    return await db.fetchval(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )


async def _reconcile(env: dict[str, str]) -> dict[str, dict[str, object]]:
    code, out, err = await orbit({**env, "LOG_LEVEL": "WARNING"}, "reconcile", "--json")
    assert code == 0, err + out
    return {r["source"]: r for r in msgspec.json.decode(out)}


async def _reconcile_again(db: asyncpg.Pool, redis: Redis, env: dict[str, str]) -> list[Report]:
    """The second run, in this process (a CLI start costs seconds on a loaded machine)."""
    settings = load_settings(env)
    bot = create_bot(settings)
    try:
        async with aiohttp.ClientSession() as http:
            deps = ReconcileDeps(db, redis, http, create_translator(), settings, bot)
            reports = await run_reconcilers(reconcilers(deps))
    finally:
        await bot.session.close()
    assert all(r.error is None for r in reports), reports
    return reports


async def _audit(env: dict[str, str]) -> None:
    code, out, err = await orbit(env, "audit")
    assert code == 0, out + err


async def _ledger(db: asyncpg.Pool) -> list[tuple[int, int, str]]:
    return [tuple(r) for r in await db.fetch("SELECT user_id, amount_kop, kind FROM ledger ORDER BY id")]


async def test_bot_killed_while_crediting_successful_payment(
    start_bot: Callable[..., object],
    bot_env: dict[str, str],
    log_dir: object,
    redis: Redis,
    make_user: MakeUser,
    db: asyncpg.Pool,
    telegram: Telegram,
) -> None:
    first = await spawn("bot", bot_env, log_dir)  # type: ignore[arg-type]
    await wait_for_heartbeat(redis, "bot", pid=first.pid, timeout=90)
    ann = make_user(8301, first_name="Ann")
    invoice_message = await _stars_invoice(ann)
    payment_id = await db.fetchval("SELECT id FROM payments")

    async with db.acquire() as blocker:
        lock = blocker.transaction()
        await lock.start()
        await blocker.execute("SELECT 1 FROM payments WHERE id = $1 FOR UPDATE", payment_id)
        outcome = await telegram.control.pay(ann.id, invoice_message)
        assert outcome.status == "paid"
        await eventually(lambda: _lock_waiters(db))  # the handler waits inside its transaction
        await asyncio.sleep(0.5)  # long enough for polling to ask for the next updates
        await first.stop(signal.SIGKILL)
        await lock.rollback()

    # The update was not confirmed while its handler ran: Telegram delivers it again.
    await start_bot()
    await eventually(lambda: db.fetchval("SELECT balance_kop = 30000 FROM users WHERE id = 8301"))
    await ann.wait_until(lambda shown: any((m.text or "").startswith("✅ Payment received") for m in shown))
    report = await _reconcile(bot_env)  # and reconciliation finds nothing left to do
    assert report["stars"]["checked"] == 1 and report["stars"]["credited"] == 0
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 8301") == 30_000
    assert await db.fetchval("SELECT status FROM payments WHERE id = $1", payment_id) == "confirmed"
    assert await db.fetchval("SELECT external_id FROM payments") == outcome.telegram_payment_charge_id
    before = await _ledger(db)
    assert len(before) == 1
    [again] = await _reconcile_again(db, redis, bot_env)
    assert again.changed == 0
    assert await _ledger(db) == before
    await _audit(bot_env)


@pytest.fixture
async def charged(db: asyncpg.Pool, telegram: Telegram, bot_env: dict[str, str]) -> tuple[int, str]:
    """User 8302 with a 300 ₽ Stars top-up that Telegram charged and only
    reconciliation recorded (its successful_payment never reached a bot)."""
    await db.execute("INSERT INTO users (id) VALUES (8302)")
    payment_id = await db.fetchval(
        "INSERT INTO payments (user_id, method, amount_kop, currency, currency_amount, expires_at)"
        " VALUES (8302, 'stars', 30000, 'XTR', 223, now() + interval '10 minutes') RETURNING id"
    )
    charge = await telegram.control.charge(8302, 223, str(payment_id))
    report = await _reconcile(bot_env)
    assert report["stars"]["credited"] == 1
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 8302") == 30_000
    return payment_id, charge.telegram_payment_charge_id


async def test_refund_killed_after_telegram_returned_the_stars(
    charged: tuple[int, str], bot_env: dict[str, str], db: asyncpg.Pool, redis: Redis, telegram: Telegram
) -> None:
    payment_id, _ = charged
    await telegram.control.hold_answers("refundStarPayment", 60)
    refund = await asyncio.create_subprocess_exec(
        *(sys.executable, "-c", "from orbit.cli.main import main; main()"),
        *("payments", "refund", str(payment_id)),
        cwd=str(ROOT),
        env={"PATH": os.environ.get("PATH", ""), **bot_env},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await eventually(lambda: telegram.control.calls("refundStarPayment"), timeout=90)
        assert [c.refunded for c in await telegram.control.charges()] == [True]
        # The debit waits, uncommitted, for an answer that the kill makes never come.
        refund.send_signal(signal.SIGKILL)
    finally:
        await refund.wait()
    assert await db.fetchval("SELECT status FROM payments WHERE id = $1", payment_id) == "confirmed"
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 8302") == 30_000

    report = await _reconcile(bot_env)
    assert report["stars"]["reversed"] == 1
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 8302") == 0
    assert await db.fetchval("SELECT status FROM payments WHERE id = $1", payment_id) == "refunded"
    before = await _ledger(db)
    assert [kind for _, _, kind in before] == ["topup", "refund"]
    [again] = await _reconcile_again(db, redis, bot_env)
    assert again.changed == 0
    assert await _ledger(db) == before
    await _audit(bot_env)


@pytest.fixture
async def crypto_env(bot_env: dict[str, str]) -> AsyncIterator[tuple[CryptoBotEmulator, dict[str, str]]]:
    webhook = f"http://127.0.0.1:{bot_env['BOT_HTTP_PORT']}/cryptobot/webhook"
    emulator = CryptoBotEmulator(CRYPTO_TOKEN, webhook, webhook_retry_delay=0.05)
    url = await emulator.start()
    yield emulator, {**bot_env, "CRYPTOBOT_TOKEN": CRYPTO_TOKEN, "CRYPTOBOT_API_URL": url}
    await emulator.stop()


async def test_bot_killed_while_confirming_a_crypto_pay_webhook(
    crypto_env: tuple[CryptoBotEmulator, dict[str, str]],
    start_bot: Callable[..., object],
    log_dir: object,
    redis: Redis,
    make_user: MakeUser,
    db: asyncpg.Pool,
) -> None:
    cryptobot, env = crypto_env
    first = await spawn("bot", env, log_dir)  # type: ignore[arg-type]
    await wait_for_heartbeat(redis, "bot", pid=first.pid, timeout=90)
    bob = make_user(8303, first_name="Bob")
    await bob.send("/start")
    await bob.press("💰 Balance")
    await bob.press("➕ Top up")
    await bob.press("500 ₽")
    await bob.press("🤖 CryptoBot (USDT, TON, BTC…)")
    payment_id, invoice_id = await db.fetchrow("SELECT id, external_id::bigint FROM payments")

    async with db.acquire() as blocker:
        lock = blocker.transaction()
        await lock.start()
        await blocker.execute("SELECT 1 FROM payments WHERE id = $1 FOR UPDATE", payment_id)
        paying = asyncio.create_task(cryptobot.pay_invoice(invoice_id, "USDT"))
        await eventually(lambda: _lock_waiters(db))  # the webhook handler waits inside its transaction
        await first.stop(signal.SIGKILL)
        await lock.rollback()
        await paying  # every delivery attempt failed: the webhook is lost
    assert not any(d.ok for d in cryptobot.deliveries)
    assert await db.fetchval("SELECT status FROM payments") == "pending"

    await start_bot(CRYPTOBOT_TOKEN=CRYPTO_TOKEN, CRYPTOBOT_API_URL=env["CRYPTOBOT_API_URL"])
    report = await _reconcile(env)
    assert report["cryptobot"]["credited"] == 1
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 8303") == 50_000
    await bob.wait_until(lambda shown: any((m.text or "").startswith("✅ Payment received") for m in shown))
    before = await _ledger(db)
    again = await _reconcile_again(db, redis, env)
    assert [r.changed for r in again] == [0, 0]
    assert await _ledger(db) == before and len(before) == 1
    await _audit(env)


async def test_the_janitor_process_reconciles_on_its_interval(
    bot_env: dict[str, str], log_dir: object, redis: Redis, db: asyncpg.Pool, telegram: Telegram
) -> None:
    """The reconciliation job itself: a real janitor with BOT_TOKEN credits a charge
    that no bot saw, once, without anyone running `orbit reconcile`."""
    await db.execute("INSERT INTO users (id) VALUES (8304)")
    payment_id = await db.fetchval(
        "INSERT INTO payments (user_id, method, amount_kop, currency, currency_amount, expires_at)"
        " VALUES (8304, 'stars', 30000, 'XTR', 223, now() + interval '10 minutes') RETURNING id"
    )
    await telegram.control.charge(8304, 223, str(payment_id))
    janitor = await spawn("janitor", {**bot_env, "RECONCILE_INTERVAL_SECONDS": "3600"}, log_dir)  # type: ignore[arg-type]
    try:
        await wait_for_heartbeat(redis, "janitor", pid=janitor.pid, timeout=90)
        await eventually(lambda: db.fetchval("SELECT balance_kop = 30000 FROM users WHERE id = 8304"), 30)
        assert 3500 < await redis.ttl("reconcile:claim") <= 3600
    finally:
        assert await janitor.stop() == 0, janitor.output()[-2000:]
    assert "reconcile stars fixed: charge" in janitor.output()
    assert await db.fetchval("SELECT count(*) FROM ledger") == 1
