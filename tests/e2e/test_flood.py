"""Nothing done unseen: a config made while Telegram holds the chat in a flood wait
reaches its user once the limit allows, through the real bot process and the
Telegram emulator with its limits on (the default)."""

from __future__ import annotations

import time
from collections.abc import Callable

import asyncpg

from tests.e2e.conftest import Panel, Telegram
from tests.e2e.test_configs import configs, subscribed, text
from tests.support.journey import eventually
from tests.support.telegram_user import TelegramUser

MakeUser = Callable[..., TelegramUser]


async def test_a_config_made_during_a_flood_wait_is_shown_when_it_ends(
    bot: object, make_user: MakeUser, db: asyncpg.Pool, panels: list[Panel], telegram: Telegram
) -> None:
    ann = make_user(3501, first_name="Ann")
    await subscribed(db, ann)
    await ann.send("/menu")
    await ann.press("🔑 My configs")
    assert (await telegram.control.rate_stats()).limits.enabled

    await telegram.control.flood(7, chat_id=ann.id)  # longer than the old replies waited (5 s)
    pressed = time.monotonic()
    answer = await ann.press("➕ New config")  # answered at once: the spinner stops
    assert answer.answered and time.monotonic() - pressed < 3
    shown = await ann.wait_until(lambda ms: "is ready" in text(ms[-1]), timeout=20)
    assert time.monotonic() - pressed >= 6.5  # not before Telegram allowed it
    [row] = await configs(db, ann.id)
    assert row["status"] == "active" and str(row["subscription_url"]) in text(shown[-1])
    stats = await telegram.control.rate_stats()
    assert stats.early_retries == 0  # nothing sent to Telegram before retry_after had passed
    assert [t.scope for t in stats.too_many_requests] == ["chat"]


async def test_a_flood_longer_than_a_reply_may_wait_delivers_through_the_outbox(
    start_bot: Callable[..., object],
    make_user: MakeUser,
    db: asyncpg.Pool,
    panels: list[Panel],
    telegram: Telegram,
) -> None:
    await start_bot(SEND_MAX_WAIT_SECONDS="2")  # type: ignore[misc]
    bea = make_user(3502, first_name="Bea")
    await subscribed(db, bea)
    await bea.send("/menu")
    await bea.press("🔑 My configs")

    await telegram.control.flood(6, chat_id=bea.id)
    pressed = time.monotonic()
    await bea.press("➕ New config")
    # The edit gave up waiting; the screen went to the outbox, sent as a new message after the flood.
    shown = await bea.wait_until(lambda ms: "is ready" in text(ms[-1]), timeout=30)
    assert time.monotonic() - pressed >= 5.5
    [row] = await configs(db, bea.id)
    assert row["status"] == "active" and str(row["subscription_url"]) in text(shown[-1])
    status = "SELECT status FROM outbox WHERE kind = 'effect' AND chat_id = $1"
    assert await eventually(lambda: db.fetchval(status, bea.id)) in ("sending", "sent")
    assert await eventually(lambda: _sent(db, status, bea.id))
    stats = await telegram.control.rate_stats()
    assert stats.early_retries == 0


async def _sent(db: asyncpg.Pool, query: str, user_id: int) -> bool:
    return await db.fetchval(query, user_id) == "sent"


async def test_a_press_whose_screen_must_wait_is_answered_at_once(
    bot: object, make_user: MakeUser, telegram: Telegram
) -> None:
    cat = make_user(3503, first_name="Cat")
    await cat.send("/start")
    await telegram.control.flood(4, chat_id=cat.id)
    menu = await cat.last_with_button("❓ Help")
    pressed_at = time.monotonic()
    pressed = await telegram.control.press(cat.id, message_id=menu.message_id, button_text="❓ Help")
    answer = await telegram.control.callback_answer(pressed.callback_query_id, timeout=10)
    answered_in = time.monotonic() - pressed_at
    assert answer.answered and not answer.show_alert and answered_in < 2.5  # no spinner left hanging
    shown = await cat.wait_until(lambda ms: (ms[-1].text or "").startswith("How to connect"), timeout=15)
    assert time.monotonic() - pressed_at >= 3.5 and shown[-1].message_id == menu.message_id
    assert (await telegram.control.rate_stats()).early_retries == 0
