"""The top-up flow end to end: amounts (preset, typed, bad), the configured methods,
forged buttons, the TON screen and its "I paid" poke."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest
from redis.asyncio import Redis

from orbit import keys
from orbit.sandbox.tonapi import TonapiEmulator
from tests.support.telegram_user import TelegramUser

MakeUser = Callable[..., TelegramUser]
WALLET = "0:" + "cd" * 32
INVALID = "Send the amount in roubles as a number, for example 300 or 149.50."
OUT_OF_RANGE = "The amount must be from 50 ₽ to 100000 ₽."
STALE = "This button is out of date. Open the menu again: /menu"


@pytest.fixture
async def tonapi() -> AsyncIterator[TonapiEmulator]:
    emulator = TonapiEmulator()
    await emulator.start()
    yield emulator
    await emulator.stop()


@pytest.fixture
async def ton_bot(start_bot: Callable[..., object], tonapi: TonapiEmulator) -> None:
    """The bot with a TON wallet (rates from the tonapi emulator) and no CryptoBot."""
    assert tonapi.base_url is not None
    await start_bot(TON_ADDRESS=WALLET, TONAPI_URL=tonapi.base_url)  # type: ignore[misc]


async def test_amounts_typed_and_forged_are_checked_then_ton(
    ton_bot: None, make_user: MakeUser, db: asyncpg.Pool, redis: Redis
) -> None:
    ann = make_user(8301, first_name="Ann")
    await ann.send("/start")
    await ann.press("💰 Balance")
    screen = await ann.last()
    assert screen.text == "💰 Balance: 0 ₽\n\nNo operations yet."
    await ann.press("➕ Top up")
    amounts = await ann.last()
    assert amounts.button_texts[:5] == ["50 ₽", "100 ₽", "300 ₽", "500 ₽", "1000 ₽"]

    await ann.press("✏️ Another amount")
    prompt = await ann.last()
    assert prompt.text is not None and prompt.text.startswith(
        "Send the amount in roubles, from 50 ₽ to 100000 ₽"
    )
    answers = {
        "abc": INVALID,
        "-100": INVALID,
        "0": OUT_OF_RANGE,
        "49.99": OUT_OF_RANGE,
        "100001": OUT_OF_RANGE,
        "99999999999999999999": INVALID,  # absurd
        "1e5": INVALID,
        "12.345": INVALID,
        "NaN": INVALID,
    }
    for text, expected in answers.items():
        reply = await ann.send(text)
        assert reply.text == expected, text
        assert reply.button_texts == ["✖️ Cancel"]  # still in the flow
    methods = await ann.send("150,5")
    assert methods.text == "Top up by 150.50 ₽. Choose a payment method:"
    assert methods.button_texts == ["💎 TON", "⭐ Telegram Stars (112 ⭐)", "« Back", "« Menu"]
    # The flow ended: a number now is just a message nobody asked for.
    await ann.send_silently("300")

    forged = {
        "pm:stars:100": OUT_OF_RANGE,  # 1 ₽
        "pm:stars:999999999": OUT_OF_RANGE,
        "pm:cryptobot:30000": "This payment method is not available right now. Please choose another one.",
        "pm:paypal:30000": STALE,
        "pm:stars:abc": STALE,
        "tu:10": OUT_OF_RANGE,
        "tu:-5": STALE,
        "tonpaid:424242": "This payment was not found.",
        "cbchk:424242": "This payment was not found.",
    }
    for data, expected in forged.items():
        await asyncio.sleep(0.01)  # payment buttons are rate-limited (6 s, shrunk 1000× here)
        answer = await ann.press(data=data, forge=True)
        assert answer.text == expected, data
        assert answer.show_alert, data
    assert await db.fetchval("SELECT count(*) FROM payments") == 0
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 8301") == 0

    # Cancel leaves the typed-amount flow.
    await ann.press("« Back")
    # The press is answered at once; its screen follows within the chat's second
    # (the hint for "300" above went out just before it).
    await ann.wait_until(lambda shown: any("✏️ Another amount" in m.button_texts for m in shown))
    await ann.press("✏️ Another amount")
    cancelled = await ann.send("/cancel")
    assert cancelled.text == "Top-up cancelled."

    await _ton_screen_and_i_paid(make_user(8302, first_name="Bob"), make_user, db, redis)


async def _ton_screen_and_i_paid(
    bob: TelegramUser, make_user: MakeUser, db: asyncpg.Pool, redis: Redis
) -> None:
    """The TON screen and its "I paid" poke (inside the test above: a bot process per test costs seconds)."""
    await bob.send("/start")
    await bob.press("💰 Balance")
    await bob.press("➕ Top up")
    await bob.press("300 ₽")
    await bob.press("💎 TON")
    shown = await bob.last()
    payment = await db.fetchrow("SELECT id, comment, currency_amount, status, method FROM payments")
    assert payment["method"] == "ton" and payment["status"] == "pending"
    assert payment["currency_amount"] == 1_360_600_000  # 300 ₽ at 220.5 ₽/TON, rounded up to 0.0001 TON
    assert shown.kind == "photo" and shown.photo is not None and shown.photo.width > 100
    caption = shown.caption or ""
    assert "Send exactly 1.3606 TON" in caption and WALLET in caption and payment["comment"] in caption
    assert f"ton://transfer/{WALLET}?amount=1360600000&text={payment['comment']}" in caption
    assert shown.button_texts == ["✅ I paid", "« Menu"]

    pubsub = redis.pubsub()
    await pubsub.subscribe(keys.channel(redis, keys.TON_POKE_CHANNEL))
    try:
        answer = await bob.press("✅ I paid")
        assert answer.text is not None and answer.text.startswith("Checking the blockchain")
        poke = None
        for _ in range(50):
            poke = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
            if poke is not None:
                break
            await asyncio.sleep(0)
        assert poke is not None and poke["data"] == str(payment["id"])
    finally:
        await pubsub.aclose()

    # Someone else's "I paid" for this payment is refused.
    eve = make_user(8303, first_name="Eve")
    await eve.send("/start")
    answer = await eve.press(data=f"tonpaid:{payment['id']}", forge=True)
    assert answer.text == "This payment was not found."
