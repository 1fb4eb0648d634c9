"""Reconciliation against the Telegram and Crypto Pay emulators (real HTTP), the real
database: what Telegram or Crypto Pay recorded and we did not is fixed once."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import msgspec
import pytest
from aiogram import Bot
from redis.asyncio import Redis

from orbit import ledger
from orbit.bot_client import create_bot
from orbit.i18n import Translator
from orbit.janitor import reconciliation
from orbit.payments import cryptobot as crypto_pay
from orbit.payments import service, stars
from orbit.payments.audit import audit
from orbit.payments.cryptobot_reconcile import reconcile_cryptobot
from orbit.payments.reconcile import ReconcileDeps
from orbit.payments.stars_reconcile import reconcile_stars
from orbit.sandbox.cryptobot import CryptoBotEmulator
from orbit.sandbox.telegram import TelegramEmulator
from orbit.sandbox.telegram_control import TelegramControl
from orbit.settings import Settings
from tests.conftest import TEST_BOT_TOKEN
from tests.payments.conftest import MakeUser, balance
from tests.support.cli import orbit

ADMIN = 900_000_001


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def telegram(http: aiohttp.ClientSession) -> AsyncIterator[TelegramControl]:
    emulator = TelegramEmulator()
    url = await emulator.start()
    yield TelegramControl(url, http)
    await emulator.stop()


@pytest.fixture
def stars_settings(settings: Settings, telegram: TelegramControl) -> Settings:
    url = telegram._base.removesuffix("/control")
    return msgspec.structs.replace(
        settings, bot_token=TEST_BOT_TOKEN, telegram_api_url=url, admin_ids=(ADMIN,)
    )


@pytest.fixture
async def bot(stars_settings: Settings) -> AsyncIterator[Bot]:
    bot = create_bot(stars_settings)
    yield bot
    await bot.session.close()


async def _audit_holds(db: asyncpg.Pool) -> None:
    async with db.acquire() as conn:
        assert await audit(conn) == []


async def _ledger_rows(db: asyncpg.Pool) -> list[tuple[int, int, str]]:
    return [tuple(r) for r in await db.fetch("SELECT user_id, amount_kop, kind FROM ledger ORDER BY id")]


async def test_a_charge_the_bot_never_saw_is_credited_exactly_once(
    db: asyncpg.Pool,
    redis: Redis,
    make_user: MakeUser,
    stars_settings: Settings,
    translator: Translator,
    telegram: TelegramControl,
    bot: Bot,
) -> None:
    await make_user(1)
    invoice = await stars.create_stars_payment(db, stars_settings, 1, 30_000)
    charge = await telegram.charge(1, invoice.stars, invoice.payload)  # successful_payment lost

    report = await reconcile_stars(db, redis, translator, stars_settings, bot)
    assert (report.checked, report.credited, report.reversed, report.unresolved) == (1, 1, 0, 0)
    assert await balance(db, 1) == 30_000
    row = await db.fetchrow("SELECT status, external_id FROM payments WHERE id = $1", invoice.payment.id)
    assert dict(row) == {"status": "confirmed", "external_id": charge.telegram_payment_charge_id}
    assert await db.fetchval("SELECT count(*) FROM outbox WHERE chat_id = 1") == 1  # the user is told

    # Twice, and from the start: nothing changes.
    before = await _ledger_rows(db)
    again = await reconcile_stars(db, redis, translator, stars_settings, bot)
    full = await reconcile_stars(db, redis, translator, stars_settings, bot, from_start=True)
    assert again.changed == full.changed == 0 and again.checked == 1
    assert await _ledger_rows(db) == before
    await _audit_holds(db)


async def test_a_charge_naming_no_payment_is_reported_once_to_the_admins(
    db: asyncpg.Pool,
    redis: Redis,
    make_user: MakeUser,
    stars_settings: Settings,
    translator: Translator,
    telegram: TelegramControl,
    bot: Bot,
) -> None:
    await make_user(1)
    await stars.create_stars_payment(db, stars_settings, 1, 30_000)  # Orbit takes Stars from now on
    charge = await telegram.charge(1, 50, "nonsense\x00<b>")
    first = await reconcile_stars(db, redis, translator, stars_settings, bot)
    second = await reconcile_stars(db, redis, translator, stars_settings, bot, from_start=True)
    assert (first.credited, first.unresolved) == (0, 1)
    assert (second.credited, second.unresolved) == (0, 0)
    issue = await db.fetchrow("SELECT source, subject, kind, user_id, detail FROM reconcile_issues")
    assert issue["subject"] == charge.telegram_payment_charge_id and issue["kind"] == "charge_unmatched"
    assert issue["user_id"] == 1 and "\x00" not in issue["detail"]
    [alert] = await db.fetch("SELECT text FROM outbox WHERE chat_id = $1", ADMIN)
    assert "&lt;b&gt;" in alert["text"] and "orbit reconcile --issues" in alert["text"]
    assert await db.fetchval("SELECT count(*) FROM ledger") == 0

    # A charge from before Orbit's first Stars payment (another bot on this token) is not ours.
    await db.execute("UPDATE payments SET created_at = now() + interval '2 hours'")
    await telegram.charge(1, 70, "their-order")
    older = await reconcile_stars(db, redis, translator, stars_settings, bot, from_start=True)
    assert (older.checked, older.unresolved) == (2, 0)
    assert await db.fetchval("SELECT count(*) FROM reconcile_issues") == 1


async def test_a_refund_made_outside_the_bot_reverses_the_credit_or_is_reported(
    db: asyncpg.Pool,
    redis: Redis,
    make_user: MakeUser,
    stars_settings: Settings,
    translator: Translator,
    telegram: TelegramControl,
    bot: Bot,
) -> None:
    await make_user(1)
    await make_user(2)
    paid = {}
    for user in (1, 2):
        invoice = await stars.create_stars_payment(db, stars_settings, user, 15_000)
        charge = await telegram.charge(user, invoice.stars, invoice.payload)
        await stars.confirm_stars(
            db, redis, translator, stars_settings, user, "XTR", invoice.stars, invoice.payload,
            charge.telegram_payment_charge_id,
        )  # fmt: skip
        paid[user] = (invoice.payment.id, charge.telegram_payment_charge_id)
    async with db.acquire() as conn, conn.transaction():  # user 2 spends most of it
        await ledger.debit(conn, 2, 10_000, "purchase", "test-purchase")
    for _, charge_id in paid.values():
        await telegram.refund_charge(charge_id)  # by support, not by the bot

    report = await reconcile_stars(db, redis, translator, stars_settings, bot)
    assert (report.reversed, report.unresolved) == (1, 1)
    assert await balance(db, 1) == 0 and await balance(db, 2) == 5_000
    statuses = await db.fetch("SELECT id, status FROM payments ORDER BY id")
    assert [r["status"] for r in statuses] == ["refunded", "confirmed"]
    issue = await db.fetchrow("SELECT subject, kind, resolved_at FROM reconcile_issues")
    assert (issue["subject"], issue["kind"], issue["resolved_at"]) == (paid[2][1], "refund_uncovered", None)
    await _audit_holds(db)

    again = await reconcile_stars(db, redis, translator, stars_settings, bot)
    assert again.changed == 0 and again.unresolved == 0
    assert await db.fetchval("SELECT count(*) FROM outbox WHERE chat_id = $1", ADMIN) == 1

    # Once the balance covers it again, the next run reverses it and closes the issue.
    async with db.acquire() as conn, conn.transaction():
        await ledger.credit(conn, 2, 10_000, "adjustment", "test-top-up")
    later = await reconcile_stars(db, redis, translator, stars_settings, bot)
    assert later.reversed == 1 and await balance(db, 2) == 0
    assert await db.fetchval("SELECT resolved_at IS NOT NULL FROM reconcile_issues")
    await _audit_holds(db)


async def test_a_refund_whose_answer_is_lost_keeps_the_debit_until_reconciled(
    db: asyncpg.Pool,
    redis: Redis,
    make_user: MakeUser,
    stars_settings: Settings,
    translator: Translator,
    telegram: TelegramControl,
    bot: Bot,
) -> None:
    """Defect 5: Telegram returned the Stars but its answer timed out."""
    await make_user(1)
    invoice = await stars.create_stars_payment(db, stars_settings, 1, 30_000)
    charge = await telegram.charge(1, invoice.stars, invoice.payload)
    charge_id = charge.telegram_payment_charge_id
    await stars.confirm_stars(
        db, redis, translator, stars_settings, 1, "XTR", invoice.stars, invoice.payload, charge_id
    )
    await telegram.hold_answers("refundStarPayment", 3.0)
    refund = await stars.refund_stars(db, redis, translator, bot, invoice.payment.id, timeout=1, actor="9")

    assert [c.refunded for c in await telegram.charges()] == [True]  # the Stars went back
    assert not refund.confirmed
    assert await balance(db, 1) == 0  # so the debit stays
    row = await db.fetchrow("SELECT status, details FROM payments WHERE id = $1", invoice.payment.id)
    assert row["status"] == "refunded" and row["details"]["refund_state"] == "unconfirmed"
    await _audit_holds(db)

    # Asking again (the admin's /refund once more) meets CHARGE_ALREADY_REFUNDED: settled.
    again = await stars.refund_stars(db, redis, translator, bot, invoice.payment.id, actor="9")
    assert again.confirmed and again.entry.replayed and await balance(db, 1) == 0
    await db.execute(  # back to unconfirmed, for reconciliation to settle it instead
        "UPDATE payments SET details = details || '{\"refund_state\": \"unconfirmed\"}'"
    )
    report = await reconcile_stars(db, redis, translator, stars_settings, bot)
    assert (report.settled, report.reversed, report.credited) == (1, 0, 0)
    row = await db.fetchrow("SELECT status, details FROM payments WHERE id = $1", invoice.payment.id)
    assert row["details"]["refund_state"] == "confirmed"
    assert (await reconcile_stars(db, redis, translator, stars_settings, bot)).changed == 0
    assert await balance(db, 1) == 0
    await _audit_holds(db)


async def test_an_unconfirmed_refund_telegram_never_made_is_asked_again(
    db: asyncpg.Pool,
    redis: Redis,
    make_user: MakeUser,
    stars_settings: Settings,
    translator: Translator,
    telegram: TelegramControl,
    bot: Bot,
) -> None:
    await make_user(1)
    invoice = await stars.create_stars_payment(db, stars_settings, 1, 30_000)
    charge = await telegram.charge(1, invoice.stars, invoice.payload)
    await stars.confirm_stars(
        db, redis, translator, stars_settings, 1, "XTR", invoice.stars, invoice.payload,
        charge.telegram_payment_charge_id,
    )  # fmt: skip
    unreachable = create_bot(msgspec.structs.replace(stars_settings, telegram_api_url="http://127.0.0.1:9"))
    try:
        refund = await stars.refund_stars(
            db, redis, translator, unreachable, invoice.payment.id, timeout=1, actor="9"
        )
    finally:
        await unreachable.session.close()
    assert not refund.confirmed and await balance(db, 1) == 0
    assert [c.refunded for c in await telegram.charges()] == [False]

    report = await reconcile_stars(db, redis, translator, stars_settings, bot)
    assert report.settled == 1
    assert [c.refunded for c in await telegram.charges()] == [True]  # the Stars the user was owed
    assert (await reconcile_stars(db, redis, translator, stars_settings, bot)).changed == 0
    assert len(await telegram.calls("refundStarPayment")) == 1
    await _audit_holds(db)


async def test_paid_invoices_whose_webhook_was_lost_are_credited_once(
    db: asyncpg.Pool,
    redis: Redis,
    make_user: MakeUser,
    settings: Settings,
    translator: Translator,
    cryptobot: CryptoBotEmulator,
    http: aiohttp.ClientSession,
) -> None:
    await make_user(1)
    lost = await crypto_pay.create_cryptobot_payment(db, http, settings, 1, 30_000, "top-up")
    unpaid = await crypto_pay.create_cryptobot_payment(db, http, settings, 1, 10_000, "top-up")
    # A crash between createInvoice and recording its id: only the payload names the payment.
    async with db.acquire() as conn:
        orphan = await service.create_payment(
            conn, 1, "cryptobot", 20_000, "RUB", 20_000, service.payment_expires_at(settings)
        )
    client = crypto_pay.client_for(http, settings)
    orphan_invoice = await client.create_invoice(
        "200.00", payload=str(orphan.id), description="x", expires_in=600
    )
    assert cryptobot.webhook_url is None  # no webhook reaches us: every one is lost
    for invoice_id in (int(lost.external_id or 0), orphan_invoice.invoice_id):
        await cryptobot.pay_invoice(invoice_id, "USDT")
    await db.execute("UPDATE payments SET status = 'expired'")  # the janitor expired them meanwhile

    report = await reconcile_cryptobot(db, redis, http, translator, settings)
    assert (report.checked, report.credited, report.unresolved) == (3, 2, 0)
    assert await balance(db, 1) == 50_000
    rows = await db.fetch("SELECT id, status, external_id FROM payments ORDER BY id")
    assert [r["status"] for r in rows] == ["confirmed", "expired", "confirmed"]
    assert rows[2]["external_id"] == str(orphan_invoice.invoice_id)
    assert unpaid.status == "pending"

    before = await _ledger_rows(db)
    again = await reconcile_cryptobot(db, redis, http, translator, settings)
    assert again.changed == 0 and again.unresolved == 0
    assert await _ledger_rows(db) == before
    await _audit_holds(db)

    # An invoice paid to this app for something that is not ours: reported once.
    stranger = await client.create_invoice("75.00", payload="shop-order-17", description="x", expires_in=600)
    await cryptobot.pay_invoice(stranger.invoice_id, "TON")
    first = await reconcile_cryptobot(db, redis, http, translator, settings)
    second = await reconcile_cryptobot(db, redis, http, translator, settings)
    assert (first.unresolved, second.unresolved, first.credited, second.credited) == (1, 0, 0, 0)
    assert await db.fetchval("SELECT kind FROM reconcile_issues") == "invoice_unmatched"


async def test_the_janitor_runs_reconciliation_once_per_interval(
    db: asyncpg.Pool,
    redis: Redis,
    make_user: MakeUser,
    stars_settings: Settings,
    translator: Translator,
    telegram: TelegramControl,
    bot: Bot,
    http: aiohttp.ClientSession,
) -> None:
    await make_user(1)
    invoice = await stars.create_stars_payment(db, stars_settings, 1, 30_000)
    await telegram.charge(1, invoice.stars, invoice.payload)
    deps = ReconcileDeps(db, redis, http, translator, stars_settings, bot)
    other_janitor = ReconcileDeps(db, redis, http, translator, stars_settings, bot)
    assert await reconciliation.reconcile_due(deps) == 1
    assert await reconciliation.reconcile_due(other_janitor) == 0  # claimed for this interval
    assert 0 < await redis.ttl("reconcile:claim") <= stars_settings.reconcile_interval_seconds
    assert len(await telegram.calls("getStarTransactions")) == 1
    assert await balance(db, 1) == 30_000


async def test_the_command_line_prints_fixes_lists_issues_and_fails_on_an_unreadable_source(
    db: asyncpg.Pool,
    make_user: MakeUser,
    stars_settings: Settings,
    telegram: TelegramControl,
    base_env: dict[str, str],
) -> None:
    await make_user(1)
    invoice = await stars.create_stars_payment(db, stars_settings, 1, 30_000)
    charge = await telegram.charge(1, invoice.stars, invoice.payload)
    await telegram.charge(1, 10, "not-ours")
    env = {
        **base_env,
        "LOG_LEVEL": "WARNING",
        "BOT_TOKEN": TEST_BOT_TOKEN,
        "TELEGRAM_API_URL": stars_settings.telegram_api_url,
        "ADMIN_IDS": str(ADMIN),
    }
    code, out, err = await orbit(env, "reconcile")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "stars: checked 2, credited 1, reversed 0, settled 0, unresolved 1"
    assert lines[1].startswith(f"  fixed: charge {charge.telegram_payment_charge_id} of user 1 was never")
    code, out, _ = await orbit(env, "reconcile", "--issues")
    assert code == 0 and " stars charge_unmatched stx" in out and "names no payment" in out

    # Crypto Pay configured but unreachable: that source fails, Stars still runs, exit 1.
    broken = {**env, "CRYPTOBOT_TOKEN": "1:x", "CRYPTOBOT_API_URL": "http://127.0.0.1:9"}
    code, out, _ = await orbit(broken, "reconcile")
    assert code == 1
    assert out.splitlines()[0].startswith("stars: checked 2, credited 0")
    assert out.splitlines()[1].startswith("cryptobot: checked 0, credited 0, reversed 0, settled 0,")
    assert "failed: CryptoPayError" in out
