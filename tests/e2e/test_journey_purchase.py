"""Buying a plan: confirmation, the debit, the end date, the panels; and every way it can go wrong."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import aiohttp
import asyncpg
from redis.asyncio import Redis

from orbit.configs.service import create_config
from orbit.marzban.provisioning import PanelDeps
from orbit.plans import Plans, load_plans
from orbit.settings import Settings
from orbit.ui.views import format_date
from tests.e2e.conftest import Panel, Telegram
from tests.support.journey import fund
from tests.support.telegram_user import TelegramUser

MakeUser = Callable[..., TelegramUser]


async def _rows(db: asyncpg.Pool, user_id: int) -> tuple[object, ...]:
    user = await db.fetchrow("SELECT balance_kop, subscription_until FROM users WHERE id = $1", user_id)
    purchases = await db.fetchval("SELECT count(*) FROM purchases WHERE user_id = $1", user_id)
    debits = await db.fetchval("SELECT count(*) FROM ledger WHERE user_id = $1 AND amount_kop < 0", user_id)
    return user["balance_kop"], user["subscription_until"], purchases, debits


async def test_not_enough_money_shows_the_missing_amount_and_changes_nothing(
    bot: object, make_user: MakeUser, db: asyncpg.Pool
) -> None:
    ann = make_user(5001, first_name="Ann")
    await ann.send("/start")
    await fund(db, 5001, 12_050)  # 120.50 ₽
    await ann.press("🛒 Buy a plan")
    plans_screen = await ann.last()
    assert plans_screen.text == "Choose a plan\n\nYour balance: 120.50 ₽"
    assert plans_screen.button_texts == [
        "1 month — 150 ₽", "3 months — 400 ₽", "6 months — 750 ₽", "12 months — 1400 ₽", "« Menu",
    ]
    await ann.press("3 months — 400 ₽")
    before = await _rows(db, 5001)
    await ann.press("✅ Pay 400 ₽")
    screen = await ann.last()
    assert screen.text == (
        "Not enough money\n\nPrice: 400 ₽\nYour balance: 120.50 ₽\nMissing: 279.50 ₽"
    )
    assert screen.button("💰 Top up 279.50 ₽").callback_data == "m:balance"
    assert await _rows(db, 5001) == before


async def test_a_purchase_debits_once_extends_and_reaches_every_panel(
    bot: object,
    make_user: MakeUser,
    db: asyncpg.Pool,
    redis: Redis,
    settings: Settings,
    panels: list[Panel],
    http_session: aiohttp.ClientSession,
) -> None:
    plans: Plans = load_plans(settings)
    ann = make_user(5002, first_name="Ann")
    await ann.send("/start")
    await ann.press("🎁 Free trial")
    deps = PanelDeps(pool=db, redis=redis, http=http_session, settings=settings)
    configs = [await create_config(deps, plans, 5002) for _ in range(2)]
    trial_end = await db.fetchval("SELECT subscription_until FROM users WHERE id = 5002")
    await fund(db, 5002, 50_000)

    await ann.press("« Menu")
    await ann.press("🛒 Buy a plan")
    await ann.press("3 months — 400 ₽")
    confirm = await ann.last()
    new_end = trial_end + timedelta(days=90)
    assert confirm.text == (
        "Confirm the purchase\n\nPlan: 3 months (90 days)\nPrice: 400 ₽\nYour balance: 500 ₽\n"
        f"Subscription until: {format_date(new_end)}\n\n"
        "🔁 Auto-renewal is on: a day before the subscription ends, this plan is bought again"
        " from your balance. Switch it off in 📅 Subscription."
    )
    pay = confirm.button("✅ Pay 400 ₽")
    assert pay.callback_data is not None and pay.callback_data.startswith("buy:3m:40000:")

    # A double press: both carry the same token; one purchase, both answered. The
    # second is refused by the rate limit or, if it got through, replays the first.
    first, second = await asyncio.gather(
        ann.press(data=pay.callback_data, message_id=confirm.message_id, forge=True),
        ann.press(data=pay.callback_data, message_id=confirm.message_id, forge=True),
    )
    assert None in {first.text, second.text}
    allowed = {None, "This purchase is already done.", "Too fast. Try again in 1 s."}
    assert {first.text, second.text} <= allowed
    done = await ann.last()
    assert done.text == (
        f"✅ Paid 400 ₽ for 3 months.\n\nSubscription until: {format_date(new_end)}\nBalance: 100 ₽"
    )
    assert await _rows(db, 5002) == (10_000, new_end, 1, 1)
    purchase = await db.fetchrow("SELECT plan_id, days, price_kop, starts_at, ends_at FROM purchases")
    assert tuple(purchase) == ("3m", 90, 40_000, trial_end, new_end)
    # Every config's panel user now ends with the subscription.
    by_id = {p.id: p for p in panels}
    for view in configs:
        panel_user = by_id[view.config.instance_id].emulator.user(view.config.panel_username)
        assert panel_user["expire"] == int(new_end.timestamp())
    assert not await db.fetchval("SELECT bool_or(needs_sync) FROM configs WHERE user_id = 5002")
    # The old confirmation, pressed again much later: still the one purchase.
    late = await ann.press(data=pay.callback_data, message_id=confirm.message_id, forge=True)
    assert late.text == "This purchase is already done."
    assert await _rows(db, 5002) == (10_000, new_end, 1, 1)

    await ann.press("« Menu")
    await ann.press("📅 Subscription")
    sub = await ann.last()
    assert sub.text is not None and f"Active until {format_date(new_end)}." in sub.text
    assert "Plan: 3 months." in sub.text


async def test_a_panel_down_during_the_purchase_queues_a_repair(
    bot: object,
    make_user: MakeUser,
    db: asyncpg.Pool,
    redis: Redis,
    settings: Settings,
    panels: list[Panel],
    http_session: aiohttp.ClientSession,
) -> None:
    plans = load_plans(settings)
    ann = make_user(5003, first_name="Ann")
    await ann.send("/start")
    await ann.press("🎁 Free trial")
    deps = PanelDeps(pool=db, redis=redis, http=http_session, settings=settings)
    view = await create_config(deps, plans, 5003)
    panel = next(p for p in panels if p.id == view.config.instance_id)
    expire_before = panel.emulator.user(view.config.panel_username)["expire"]
    await fund(db, 5003, 15_000)
    await ann.press("« Menu")
    await ann.press("🛒 Buy a plan")
    await ann.press("1 month — 150 ₽")
    await panel.emulator.down()
    try:
        await ann.press("✅ Pay 150 ₽", timeout=30)
    finally:
        await panel.emulator.up()
    done = await ann.last()
    assert done.text is not None and done.text.startswith("✅ Paid 150 ₽ for 1 month.")
    balance, until, purchases, debits = await _rows(db, 5003)
    assert (balance, purchases, debits) == (0, 1, 1)
    config = await db.fetchrow("SELECT needs_sync, last_error FROM configs WHERE id = $1", view.config.id)
    assert config["needs_sync"] and config["last_error"]
    assert panel.emulator.user(view.config.panel_username)["expire"] == expire_before
    assert until is not None


async def test_auto_renewal_switch(
    bot: object, make_user: MakeUser, db: asyncpg.Pool, telegram: Telegram
) -> None:
    ann = make_user(5004, first_name="Ann")
    await ann.send("/start")
    assert await db.fetchval("SELECT auto_renew FROM users WHERE id = 5004") is True
    await ann.press("📅 Subscription")
    screen = await ann.last()
    assert "Auto-renewal: on." in (screen.text or "")
    answer = await ann.press("🔁 Turn auto-renewal off")
    assert answer.text == "Auto-renewal is off."
    assert await db.fetchval("SELECT auto_renew FROM users WHERE id = 5004") is False
    screen = await ann.last()
    assert "Auto-renewal: off." in (screen.text or "") and "🔁 Turn auto-renewal on" in screen.button_texts
    # The old "off" button pressed again sets the same value (not a toggle).
    answer = await ann.press(data="renew:0", forge=True)
    assert answer.text == "Auto-renewal is off."
    assert await db.fetchval("SELECT auto_renew FROM users WHERE id = 5004") is False
    await ann.press("🔁 Turn auto-renewal on")
    assert await db.fetchval("SELECT auto_renew FROM users WHERE id = 5004") is True
