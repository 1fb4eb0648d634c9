"""A pending payment whose window has passed shows as expired on its "I paid" and
"Check payment" buttons and on its own screen, before the janitor has marked it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest

from orbit import clock
from orbit.sandbox.tonapi import TonapiEmulator
from tests.support.telegram_user import TelegramUser

MakeUser = Callable[..., TelegramUser]
WALLET = "0:" + "cd" * 32


@pytest.fixture
async def tonapi() -> AsyncIterator[TonapiEmulator]:
    emulator = TonapiEmulator()
    await emulator.start()
    yield emulator
    await emulator.stop()


async def test_an_expired_ton_invoice_says_so_on_i_paid_and_on_its_screen(
    start_bot: Callable[..., object], tonapi: TonapiEmulator, make_user: MakeUser, db: asyncpg.Pool
) -> None:
    assert tonapi.base_url is not None
    await start_bot(TON_ADDRESS=WALLET, TONAPI_URL=tonapi.base_url)  # type: ignore[misc]
    kim = make_user(8401, first_name="Kim")
    await kim.send("/start")
    await kim.press("💰 Balance")
    await kim.press("➕ Top up")
    await kim.press("300 ₽")
    await kim.press("💎 TON")
    invoice = await kim.last()
    assert invoice.button_texts == ["✅ I paid", "« Menu"]

    await clock.advance(db, 11 * 60)  # past PAYMENT_TIMEOUT_MINUTES (10); the janitor has not run
    assert await db.fetchval("SELECT status FROM payments") == "pending"
    await asyncio.sleep(0.01)  # payment buttons are rate-limited (6 s, shrunk 1000× here)
    answer = await kim.press("✅ I paid")
    assert answer.show_alert and answer.text == "⌛ This invoice has expired."
    [shown] = [m for m in await kim.messages() if m.message_id == invoice.message_id]
    assert shown.kind == "photo" and (shown.caption or "").startswith(
        "⌛ This TON invoice for 300 ₽ has expired."
    )
    assert "still credited when it arrives" in (shown.caption or "")
    assert shown.button_texts == ["➕ Top up", "« Menu"]
    assert await db.fetchval("SELECT status FROM payments") == "pending"  # the janitor's to mark
