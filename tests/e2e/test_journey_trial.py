"""The free trial (once per account forever) and the optional channel gate."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import asyncpg

from orbit.ui.views import format_date
from tests.e2e.conftest import Panel, Telegram
from tests.support.journey import fund
from tests.support.telegram_user import TelegramUser

MakeUser = Callable[..., TelegramUser]
CHANNEL = "@orbit_news"


async def test_the_trial_is_granted_once_per_account(
    bot: object, make_user: MakeUser, db: asyncpg.Pool
) -> None:
    ann = make_user(4001, first_name="Ann")
    await ann.send("/start")
    started = datetime.now(UTC)
    answer = await ann.press("🎁 Free trial")
    assert not answer.show_alert
    row = await db.fetchrow("SELECT trial_used_at, subscription_until FROM users WHERE id = 4001")
    assert row["trial_used_at"] is not None
    assert abs(row["subscription_until"] - started - timedelta(days=7)) < timedelta(minutes=1)
    screen = await ann.last()
    assert screen.text == (
        f"🎁 Your free trial runs until {format_date(row['subscription_until'])}."
        " Create a config in 🔑 My configs to connect."
    )
    assert screen.button_texts == ["🔑 My configs", "« Menu"]

    await ann.press("« Menu")
    menu = await ann.last()
    assert "🎁 Free trial" not in menu.button_texts and "Try Orbit free" not in (menu.text or "")
    assert f"Subscription: free trial until {format_date(row['subscription_until'])}" in (menu.text or "")
    await ann.press("📅 Subscription")
    assert (await ann.last()).text.startswith(  # type: ignore[union-attr]
        f"Subscription\n\nFree trial until {format_date(row['subscription_until'])}."
    )

    # An old trial button, pressed again (or forged): refused, nothing changes.
    answer = await ann.press(data="trial", forge=True)
    assert answer.text == "You have already used your free trial." and answer.show_alert
    # Even after the subscription ran out and the user came back.
    await db.execute("UPDATE users SET subscription_until = now() - interval '60 days' WHERE id = 4001")
    await ann.send("/start")
    answer = await ann.press(data="trial", forge=True)
    assert answer.text == "You have already used your free trial."
    assert await db.fetchval(
        "SELECT subscription_until < now() FROM users WHERE id = 4001"
    ), "a second trial was granted"
    assert await db.fetchval("SELECT trial_used_at FROM users WHERE id = 4001") == row["trial_used_at"]


async def test_the_channel_gate_comes_before_the_trial_and_a_purchase(
    start_bot: Callable[..., object],
    panels: list[Panel],
    make_user: MakeUser,
    db: asyncpg.Pool,
    telegram: Telegram,
) -> None:
    await start_bot(REQUIRED_CHANNEL=CHANNEL)  # type: ignore[misc]
    ann = make_user(4002, first_name="Ann")
    await ann.send("/start")
    await ann.press("🎁 Free trial")
    gate = await ann.last()
    assert gate.text == (
        f"To use the free trial or buy a plan, join our channel {CHANNEL} first,"
        " then press «I've joined»."
    )
    assert gate.button("📢 Open the channel").url == "https://t.me/orbit_news"
    answer = await ann.press("✅ I've joined")
    assert answer.text == f"You have not joined {CHANNEL} yet." and answer.show_alert
    assert await db.fetchval("SELECT trial_used_at FROM users WHERE id = 4002") is None

    await telegram.control.set_member(CHANNEL, 4002, "member")
    await ann.press("✅ I've joined")
    assert (await ann.last()).text.startswith("🎁 Your free trial runs until")  # type: ignore[union-attr]
    assert await db.fetchval("SELECT trial_used_at FROM users WHERE id = 4002") is not None

    # A purchase is gated the same way; leaving the channel closes it again.
    await telegram.control.set_member(CHANNEL, 4002, "left")
    await fund(db, 4002, 20_000)
    await ann.press("« Menu")
    await ann.press("🛒 Buy a plan")
    await ann.press("1 month — 150 ₽")
    assert (await ann.last()).text.startswith("To use the free trial or buy a plan")  # type: ignore[union-attr]
    await telegram.control.set_member(CHANNEL, 4002, "member")
    await ann.press("✅ I've joined")
    confirm = await ann.last()
    assert confirm.text is not None and confirm.text.startswith("Confirm the purchase")
    # Left again between the confirmation and the payment: still refused, nothing paid.
    await telegram.control.set_member(CHANNEL, 4002, "kicked")
    await ann.press("✅ Pay 150 ₽")
    assert (await ann.last()).text.startswith("To use the free trial or buy a plan")  # type: ignore[union-attr]
    assert await db.fetchval("SELECT count(*) FROM purchases") == 0
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 4002") == 20_000
    calls = await telegram.control.calls("getChatMember")
    assert calls and all(c.params["chat_id"] == CHANNEL for c in calls)
