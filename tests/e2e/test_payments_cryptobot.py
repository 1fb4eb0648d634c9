"""CryptoBot end to end: the real bot process, the Crypto Pay emulator posting signed
webhooks to the bot's HTTP port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import asyncpg
import msgspec
import pytest

from orbit.sandbox.cryptobot import CryptoBotEmulator, sign_body
from tests.support.journey import eventually
from tests.support.telegram_user import TelegramUser

MakeUser = Callable[..., TelegramUser]
TOKEN = "777:AAcryptobot-e2e-token"
RECEIVED = "✅ Payment received: +500 ₽. Balance: 500 ₽."


@pytest.fixture
async def cryptobot(bot_env: dict[str, str]) -> AsyncIterator[CryptoBotEmulator]:
    webhook = f"http://127.0.0.1:{bot_env['BOT_HTTP_PORT']}/cryptobot/webhook"
    emulator = CryptoBotEmulator(TOKEN, webhook, webhook_retry_delay=0.05)
    await emulator.start()
    yield emulator
    await emulator.stop()


@pytest.fixture
async def crypto_bot(start_bot: Callable[..., object], cryptobot: CryptoBotEmulator) -> None:
    """The bot process with CryptoBot configured against the emulator."""
    assert cryptobot.base_url is not None
    await start_bot(CRYPTOBOT_TOKEN=TOKEN, CRYPTOBOT_API_URL=cryptobot.base_url)  # type: ignore[misc]


async def _invoice_screen(user: TelegramUser, db: asyncpg.Pool) -> int:
    """/start → Balance → Top up → 500 ₽ → CryptoBot; returns the invoice id."""
    await user.send("/start")
    await user.press("💰 Balance")
    await user.press("➕ Top up")
    await user.press("500 ₽")
    methods = await user.last()
    assert [t for t in methods.button_texts if not t.startswith("«")] == [
        "⭐ Telegram Stars (371 ⭐)",
        "🤖 CryptoBot (USDT, TON, BTC…)",
    ]  # no TON_ADDRESS: no TON button
    await user.press("🤖 CryptoBot (USDT, TON, BTC…)")
    screen = await user.last()
    assert screen.text is not None and screen.text.startswith("🤖 Top-up via CryptoBot: 500 ₽")
    pay_url = screen.button("💳 Pay in CryptoBot").url
    row = await db.fetchrow(
        "SELECT external_id, pay_url, status FROM payments WHERE user_id = $1 ORDER BY id DESC LIMIT 1",
        user.id,
    )
    assert row["status"] == "pending" and row["pay_url"] == pay_url and pay_url.startswith("https://")
    return int(row["external_id"])


async def _texts(user: TelegramUser) -> list[str]:
    return [m.text or "" for m in await user.messages()]


async def test_cryptobot_from_the_button_to_the_confirmation(
    crypto_bot: None, cryptobot: CryptoBotEmulator, make_user: MakeUser, db: asyncpg.Pool
) -> None:
    ann = make_user(8201, first_name="Ann")
    invoice_id = await _invoice_screen(ann, db)

    await cryptobot.pay_invoice(invoice_id, "USDT")
    await cryptobot.deliver_webhook_again(invoice_id)  # the same webhook twice: one credit
    assert [d.status for d in cryptobot.deliveries] == [200, 200]
    await ann.wait_until(lambda shown: any(m.text == RECEIVED for m in shown))
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 8201") == 50_000
    assert await db.fetchval("SELECT count(*) FROM ledger WHERE user_id = 8201") == 1
    assert await db.fetchval("SELECT status FROM payments WHERE user_id = 8201") == "confirmed"

    # "Check payment" on a paid invoice says so and credits nothing more.
    answer = await ann.press("🔄 Check payment")
    assert answer.text == "✅ Payment received!"
    assert (await _texts(ann)).count(RECEIVED) == 1
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 8201") == 50_000

    await _forged_webhooks_are_refused(cryptobot, make_user(8204, first_name="Zoe"), db)


async def test_check_payment_finds_a_payment_whose_webhook_was_lost(
    crypto_bot: None, cryptobot: CryptoBotEmulator, make_user: MakeUser, db: asyncpg.Pool
) -> None:
    bob = make_user(8202, first_name="Bob")
    invoice_id = await _invoice_screen(bob, db)
    answer = await bob.press("🔄 Check payment")
    assert answer.text is not None and answer.text.startswith("The payment has not arrived yet.")

    cryptobot.set_webhook_url(None)
    await cryptobot.pay_invoice(invoice_id, "TON")
    answer = await bob.press("🔄 Check payment")
    assert answer.text == "✅ Payment received!"
    await bob.wait_until(lambda shown: any(m.text == RECEIVED for m in shown))
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 8202") == 50_000

    # A forged check of someone else's payment changes nothing.
    eve = make_user(8203, first_name="Eve")
    await eve.send("/start")
    payment_id = await db.fetchval("SELECT id FROM payments")
    answer = await eve.press(data=f"cbchk:{payment_id}", forge=True)
    assert answer.text == "This payment was not found." and answer.show_alert


async def _forged_webhooks_are_refused(
    cryptobot: CryptoBotEmulator, zoe: TelegramUser, db: asyncpg.Pool
) -> None:
    """A webhook with a wrong or missing signature gets 401 and changes nothing.
    (Run inside another test: a bot process per test costs seconds.)"""
    invoice_id = await _invoice_screen(zoe, db)
    outbox_before = await db.fetchval("SELECT count(*) FROM outbox")
    paid = {**cryptobot.invoice(invoice_id), "status": "paid", "paid_asset": "USDT", "paid_amount": "5.6"}
    body = msgspec.json.encode(
        {
            "update_id": 7,
            "update_type": "invoice_paid",
            "request_date": "2026-01-01T00:00:00.000Z",
            "payload": paid,
        }
    )
    for signature in (None, "", "ab" * 32, sign_body("someone-else", body)):
        delivery = await cryptobot.post_forged_webhook(body, signature)
        assert delivery.status == 401, signature
    assert await db.fetchval("SELECT status FROM payments WHERE user_id = 8204") == "pending"
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 8204") == 0
    assert await db.fetchval("SELECT count(*) FROM outbox") == outbox_before

    # The same bytes correctly signed are accepted.
    delivery = await cryptobot.post_forged_webhook(body, sign_body(TOKEN, body))
    assert delivery.status == 200
    await eventually(lambda: db.fetchval("SELECT balance_kop = 50000 FROM users WHERE id = 8204"))
