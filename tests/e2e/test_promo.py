"""🎟 Promo codes through the real bot process: what the user saw, the rows, the panels."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import asyncpg

from orbit.promos import queries
from orbit.promos.service import create_promo, disable_promo
from orbit.sandbox.telegram_control import ShownMessage
from tests.e2e.conftest import Panel
from tests.e2e.test_configs import create, subscribed, text
from tests.support.telegram_user import TelegramUser

MakeUser = Callable[..., TelegramUser]


async def state(db: asyncpg.Pool) -> dict[str, object]:
    """Everything a redemption may change."""
    return {
        "users": [tuple(r) for r in await db.fetch(
            "SELECT id, balance_kop, subscription_until FROM users ORDER BY id")],
        "uses": [tuple(r) for r in await db.fetch("SELECT code, uses FROM promocodes ORDER BY code")],
        "activations": await db.fetchval("SELECT count(*) FROM promocode_activations"),
        "ledger": await db.fetchval("SELECT count(*) FROM ledger"),
    }


async def enter(user: TelegramUser, code: str) -> ShownMessage:
    """Open 🎟 from the menu and send `code`."""
    await user.send("/menu")
    await user.press("🎟 Promo code")
    assert text(await user.last()) == "🎟 Send your promo code as a message."
    return await user.send(code)


async def test_balance_code_once_per_user(bot: object, make_user: MakeUser, db: asyncpg.Pool) -> None:
    await create_promo(db, "WELCOME", "balance", 15_000, actor="9")
    ann = make_user(4001, first_name="Ann")
    await ann.send("/start")

    done = await enter(ann, "  welcome ")
    assert text(done) == "✅ Promo code WELCOME applied: +150 ₽ to your balance. Balance: 150 ₽."
    assert done.button_texts == ["« Menu"]
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 4001") == 15_000
    entry = await db.fetchrow(
        "SELECT kind, amount_kop FROM ledger WHERE idempotency_key = 'promo:WELCOME:4001'"
    )
    assert tuple(entry) == ("promo", 15_000)

    before = await state(db)
    again = await enter(ann, "WELCOME")
    assert text(again) == "You have already used this promo code."
    assert again.button_texts == ["✖️ Cancel"]
    assert await state(db) == before

    # Still in the flow after a refusal; /cancel ends it.
    cancelled = await ann.send("/cancel")
    assert text(cancelled) == "Promo code entry cancelled."
    assert await state(db) == before


async def test_last_use_race_and_bad_codes_change_nothing(
    bot: object, make_user: MakeUser, db: asyncpg.Pool
) -> None:
    past = datetime.now(UTC) - timedelta(hours=1)
    await queries.insert(db, "OLD", "balance", 1000, None, past, None)
    await create_promo(db, "OFF", "days", 10, actor="9")
    await disable_promo(db, "OFF", actor="9")
    await create_promo(db, "ONCE", "balance", 5000, max_uses=1, actor="9")

    # Two users send the code with one use left at the same moment: one gets it.
    racers = [make_user(4010 + i, first_name=f"R{i}") for i in range(2)]
    for racer in racers:
        await racer.send("/start")
        await racer.press("🎟 Promo code")
    replies = await asyncio.gather(*(racer.send("once") for racer in racers))
    outcomes = sorted(text(r).split(":")[0] for r in replies)
    assert outcomes == ["This promo code has run out", "✅ Promo code ONCE applied"], outcomes
    assert await db.fetchval("SELECT uses FROM promocodes WHERE code = 'ONCE'") == 1
    assert await db.fetchval("SELECT sum(balance_kop) FROM users") == 5000

    bob = make_user(4003, first_name="Bob")
    await bob.send("/start")
    before = await state(db)
    await bob.send("/menu")
    await bob.press("🎟 Promo code")
    for code, answer in (
        ("NOSUCHCODE", "There is no such promo code."),
        ("<b>x</b>", "There is no such promo code."),
        ("old", "This promo code has expired."),
        ("off", "This promo code has been switched off."),
        ("Once", "This promo code has run out: all its activations are taken."),
    ):
        reply = await bob.send(code)
        assert text(reply).startswith(answer), code
    assert await state(db) == before


async def test_days_code_extends_the_subscription_and_the_panel(
    bot: object, make_user: MakeUser, db: asyncpg.Pool, panels: list[Panel]
) -> None:
    await create_promo(db, "MONTH", "days", 30, actor="9")
    cat = make_user(4004, first_name="Cat", language_code="ru")
    await subscribed(db, cat, days=10)
    await cat.press("🔑 Мои конфиги")
    await create(cat, done="готов", button="➕ Новый конфиг")
    username = await db.fetchval("SELECT panel_username FROM configs WHERE user_id = 4004")
    until = await db.fetchval("SELECT subscription_until FROM users WHERE id = 4004")

    await cat.send("/menu")
    await cat.press("🎟 Промокод")
    done = await cat.send("month")
    new_until = await db.fetchval("SELECT subscription_until FROM users WHERE id = 4004")
    assert new_until == until + timedelta(days=30)
    assert text(done) == (
        "✅ Промокод MONTH применён: +30 дней подписки. "
        f"Действует до {new_until.astimezone(UTC):%d.%m.%Y %H:%M} UTC."
    )
    panel_user = panels[0].emulator.user(username)
    assert panel_user is not None and panel_user["expire"] == int(new_until.timestamp())
