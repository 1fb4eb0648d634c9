"""Main-menu navigation, settings (language), forged and stale buttons, blocked users."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg

from tests.e2e.conftest import Telegram
from tests.support.journey import eventually
from tests.support.telegram_user import TelegramUser

MakeUser = Callable[..., TelegramUser]


async def test_navigation_edits_one_message_and_settings_switch_the_language(
    bot: object, make_user: MakeUser, db: asyncpg.Pool, telegram: Telegram
) -> None:
    ann = make_user(3001, first_name="Ann")
    menu = await ann.send("/start")
    for button in ("📅 Subscription", "« Menu", "⚙️ Settings", "« Menu", "❓ Help", "« Menu",
                   "🛒 Buy a plan", "« Menu"):
        answer = await ann.press(button)
        assert not answer.show_alert, (button, answer.text)
    shown = await ann.messages()
    assert [m.message_id for m in shown] == [menu.message_id]  # no new message, only edits
    assert len(shown[0].edits) == 8
    assert shown[0].text is not None and shown[0].text.startswith("Orbit VPN")

    # Pressing the language that is already chosen re-renders an identical screen:
    # Telegram says "message is not modified", which is not an error.
    await ann.press("⚙️ Settings")
    answer = await ann.press("• English 🇬🇧")
    assert answer.text == "Language saved." and not answer.show_alert
    assert len(await ann.messages()) == 1
    calls = await telegram.control.calls("editMessageText")
    assert any(c.error_code == 400 and "not modified" in (c.description or "") for c in calls)
    assert not await telegram.control.calls("sendMessage") or all(
        "went wrong" not in c.params.get("text", "") for c in await telegram.control.calls("sendMessage")
    )

    # The language choice is stored and honoured (Telegram still says "en").
    ann = make_user(3002, first_name="Ann", language_code="en")
    await ann.send("/start")
    await ann.press("⚙️ Settings")
    answer = await ann.press("Русский 🇷🇺")
    assert answer.text == "Язык сохранён."
    screen = await ann.last()
    assert screen.text is not None and screen.text.startswith("Настройки")
    assert "• Русский 🇷🇺" in screen.button_texts
    assert await db.fetchval("SELECT language FROM users WHERE id = 3002") == "ru"
    # Telegram still says "en"; the stored choice wins from now on.
    menu = await ann.send("/menu")
    assert menu.text is not None and "Подписка: пока нет" in menu.text
    help_ = await ann.send("/help")
    assert help_.text is not None and help_.text.startswith("Как подключиться")
    await ann.press("« Меню")
    await ann.press("⚙️ Настройки")
    await ann.press("English 🇬🇧")
    assert await db.fetchval("SELECT language FROM users WHERE id = 3002") == "en"


async def test_forged_and_stale_buttons_are_answered_and_change_nothing(
    bot: object, make_user: MakeUser, db: asyncpg.Pool
) -> None:
    ann = make_user(3003, first_name="Ann")
    menu = await ann.send("/start")
    before = await db.fetchrow("SELECT * FROM users WHERE id = 3003")
    stale = "This button is out of date. Open the menu again: /menu"
    cases = {
        "m:nope": stale,  # no such screen
        "garbage-data": stale,
        "lang:de": stale,  # no such language
        "renew:maybe": stale,  # not a boolean
        "gate:99m": stale,  # neither the trial nor a plan
        "plan:99m": "There is no such plan.",
        "buy:99m:15000:abcd1234": "There is no such plan.",
        "buy:1m:1:abcd1234": "The price has changed; check the new one.",  # not the price shown
    }
    for data, expected in cases.items():
        answer = await ann.press(data=data, message_id=menu.message_id, forge=True)
        assert answer.text == expected and answer.show_alert, (data, answer)
    assert await db.fetchrow("SELECT * FROM users WHERE id = 3003") == before
    assert await db.fetchval("SELECT count(*) FROM purchases") == 0
    assert await db.fetchval("SELECT count(*) FROM ledger") == 0

    # Someone who never pressed /start gets told to, whatever they press.
    ghost = make_user(3004, first_name="Ghost")
    await ghost.send("/help")  # a chat exists, still no user row
    for data in ("m:main", "m:sub", "m:buy", "m:settings", "m:ref", "trial", "plan:1m", "renew:0",
                 "buy:1m:15000:abcd1234", "lang:ru", "m:nope", "garbage-data"):
        answer = await ghost.press(data=data, forge=True)
        assert answer.text == "Press /start first." and answer.show_alert, data
    assert await db.fetchval("SELECT count(*) FROM users WHERE id = 3004") == 0


async def test_a_user_who_blocked_the_bot_is_marked_until_they_write_again(
    bot: object, make_user: MakeUser, db: asyncpg.Pool, telegram: Telegram
) -> None:
    ann = make_user(3005, first_name="Ann")
    await ann.send("/start")

    async def blocked_at() -> object:
        return await db.fetchval("SELECT blocked_at FROM users WHERE id = 3005")

    # Telegram tells the bot (my_chat_member: kicked).
    await telegram.control.block(3005)
    await eventually(blocked_at)
    # A press that was on its way: the bot's edit gets 403 and the user is marked again.
    await db.execute("UPDATE users SET blocked_at = NULL WHERE id = 3005")
    await ann.press("❓ Help")
    await eventually(blocked_at)
    edits = await telegram.control.calls("editMessageText")
    assert edits[-1].error_code == 403
    # Writing again (Telegram unblocks on "Restart") clears the mark.
    shown = await ann.send("/start")
    assert shown.text is not None and shown.text.startswith("Welcome back")
    assert await blocked_at() is None


async def test_a_press_under_telegrams_flood_limit_waits_it_out_and_ends_as_usual(
    bot: object, make_user: MakeUser, telegram: Telegram
) -> None:
    # One message a second per chat: an edit right after the menu sent by /start would be a
    # 429 (it was, before the send budget); now it waits for the chat's second instead.
    await telegram.control.set_rate_limits(per_chat_per_sec=1, global_per_sec=30)
    ann = make_user(3101, first_name="Ann")
    menu = await ann.send("/start")
    answer = await ann.press("❓ Help")
    assert not answer.show_alert and answer.text is None  # no "something went wrong"
    shown = await ann.messages()
    assert [m.message_id for m in shown] == [menu.message_id]
    assert (shown[0].text or "").startswith("How to connect")
    stats = await telegram.control.rate_stats()
    assert stats.too_many_requests == [] and stats.early_retries == 0
    [edit] = await telegram.control.calls("editMessageText")
    [sent] = await telegram.control.calls("sendMessage")
    assert edit.at - sent.at >= 0.9  # the chat's second, waited out before asking


async def test_a_failing_handler_still_answers_the_press_in_the_users_language(
    bot: object, make_user: MakeUser, db: asyncpg.Pool
) -> None:
    ann = make_user(3201, first_name="Ann", language_code="en")
    await ann.send("/start")
    await ann.press("⚙️ Settings")
    await ann.press("Русский 🇷🇺")  # stored: ru, while Telegram still says en
    before = await ann.last()
    # The referral screen's query now fails inside the handler (the table is gone).
    await db.execute("ALTER TABLE referrals RENAME TO referrals_away")
    try:
        await ann.press("« Меню")
        answer = await ann.press("👥 Пригласить друзей")
    finally:
        await db.execute("ALTER TABLE referrals_away RENAME TO referrals")
    assert answer.show_alert and answer.text == "У нас что-то пошло не так. Попробуйте ещё раз через минуту."
    after = await ann.last()
    assert after.message_id == before.message_id and (after.text or "").startswith("Orbit VPN")
