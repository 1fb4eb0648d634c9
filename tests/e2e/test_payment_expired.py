"""A pending payment whose window has passed shows as expired on its "I paid" and
"Check payment" buttons and on its own screen, before the janitor has marked it
(the real dispatcher in this process, fed by the Telegram emulator)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import msgspec
import pytest
from redis.asyncio import Redis

from orbit import clock
from orbit.sandbox.cryptobot import CryptoBotEmulator
from orbit.sandbox.tonapi import TonapiEmulator
from orbit.settings import Settings
from tests.support.bot_harness import BotHarness, running_bot

WALLET = "0:" + "cd" * 32
TOKEN = "1234:AAexpired"
USER = 8401
EXPIRED_BUTTONS = ["➕ Top up", "« Menu"]


@pytest.fixture
async def harness(
    db: asyncpg.Pool, redis: Redis, settings: Settings
) -> AsyncIterator[tuple[BotHarness, CryptoBotEmulator]]:
    tonapi = TonapiEmulator()
    await tonapi.start()
    cryptobot = CryptoBotEmulator(TOKEN)
    await cryptobot.start()
    payments = msgspec.structs.replace(
        settings,
        rate_limit_scale=0.001,
        ton_address=WALLET,
        tonapi_url=tonapi.base_url,
        cryptobot_token=TOKEN,
        cryptobot_api_url=cryptobot.base_url,
    )
    try:
        async with aiohttp.ClientSession() as http, running_bot(payments, db, redis, http) as bot:
            yield bot, cryptobot
    finally:
        await cryptobot.stop()
        await tonapi.stop()


async def _message(bot: BotHarness, message_id: int):  # type: ignore[no-untyped-def]
    [shown] = [m for m in await bot.control.messages(USER) if m.message_id == message_id]
    return shown


async def test_an_expired_ton_invoice_says_so_on_i_paid_and_on_its_screen(
    harness: tuple[BotHarness, CryptoBotEmulator], db: asyncpg.Pool
) -> None:
    bot, _ = harness
    await bot.send(USER, "/start", first_name="Kim")
    await bot.press(USER, "pm:ton:30000")
    invoice = (await bot.control.messages(USER))[-1]
    payment_id = await db.fetchval("SELECT id FROM payments WHERE method = 'ton'")
    assert invoice.kind == "photo" and invoice.button_texts == ["✅ I paid", "« Menu"]
    answer = await bot.press(USER, f"tonpaid:{payment_id}")
    assert (answer.text or "").startswith("Checking the blockchain")  # within its window

    await clock.advance(db, 11 * 60)  # past PAYMENT_TIMEOUT_MINUTES (10); the janitor has not run
    answer = await bot.press(USER, f"tonpaid:{payment_id}")
    assert answer.show_alert and answer.text == "⌛ This invoice has expired."
    shown = await _message(bot, invoice.message_id)
    caption = shown.caption or ""
    assert shown.kind == "photo" and caption.startswith("⌛ This TON invoice for 300 ₽ has expired.")
    assert "still credited when it arrives" in caption
    assert shown.button_texts == EXPIRED_BUTTONS
    assert await db.fetchval("SELECT status FROM payments") == "pending"  # the janitor's to mark
    assert bot.handler_errors() == []


async def test_an_expired_cryptobot_invoice_says_so_on_check_and_on_its_screen(
    harness: tuple[BotHarness, CryptoBotEmulator], db: asyncpg.Pool
) -> None:
    bot, _ = harness
    await bot.send(USER, "/start", first_name="Kim")
    await bot.press(USER, "pm:cryptobot:50000")
    screen = (await bot.control.messages(USER))[-1]
    payment_id = await db.fetchval("SELECT id FROM payments WHERE method = 'cryptobot'")
    assert "🔄 Check payment" in screen.button_texts
    answer = await bot.press(USER, f"cbchk:{payment_id}")
    assert answer.text == "The payment has not arrived yet. If you have paid, try again in a minute."

    await clock.advance(db, 11 * 60)
    answer = await bot.press(USER, f"cbchk:{payment_id}")
    assert answer.show_alert and answer.text == "This invoice has expired. Please start a new top-up."
    shown = await _message(bot, screen.message_id)
    assert (shown.text or "").startswith("⌛ This CryptoBot invoice for 500 ₽ has expired.")
    assert shown.button_texts == EXPIRED_BUTTONS
    assert bot.handler_errors() == []
