"""/start, /menu, /help and referral links, through the real bot process."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import asyncpg

from orbit.sandbox.telegram import BOT_USERNAME
from tests.e2e.conftest import Telegram
from tests.support.telegram_user import TelegramUser

MakeUser = Callable[..., TelegramUser]


async def _count(db: asyncpg.Pool, sql: str, *args: object) -> int:
    return await db.fetchval(sql, *args)


async def test_start_registers_once_in_telegrams_language_and_shows_the_menu(
    bot: object, make_user: MakeUser, db: asyncpg.Pool, telegram: Telegram
) -> None:
    ivan = make_user(2001, language_code="ru", first_name="Иван", username="ivan")
    shown = await ivan.send("/start")
    assert shown.text is not None
    assert shown.text.startswith("Добро пожаловать в Orbit VPN, Иван!")
    assert "Подписка: пока нет" in shown.text and "Баланс: 0 ₽" in shown.text
    assert shown.button_texts == [
        "🎁 Бесплатный период", "📅 Подписка", "🛒 Купить тариф", "🔑 Мои конфиги", "💰 Баланс",
        "👥 Пригласить друзей", "🎟 Промокод", "⚙️ Настройки", "❓ Помощь",
    ]
    row = await db.fetchrow("SELECT language, username, first_name, trial_used_at FROM users WHERE id = 2001")
    assert tuple(row) == ("ru", "ivan", "Иван", None)

    again = await ivan.send("/start")
    assert again.text is not None and again.text.startswith("С возвращением, Иван!")
    assert await _count(db, "SELECT count(*) FROM users") == 1

    # The command menu was set at start-up, in English by default and in Russian.
    calls = await telegram.control.calls("setMyCommands")
    by_language = {
        c.params.get("language_code"): {cmd["command"]: cmd["description"]
                                        for cmd in json.loads(c.params["commands"])}
        for c in calls
    }
    assert set(by_language) == {None, "ru"}
    assert by_language[None]["menu"] == "Main menu" and by_language["ru"]["menu"] == "Главное меню"

    # Concurrent /starts of a new user: one row.
    eve = make_user(2002, first_name="Eve")
    await asyncio.gather(*(eve.send_silently("/start") for _ in range(6)))
    shown = await eve.wait_until(lambda ms: any(m.text and "Welcome" in m.text for m in ms))
    assert await _count(db, "SELECT count(*) FROM users WHERE id = 2002") == 1
    # Every reply is the menu or, for /starts that came too fast, the rate-limit notice.
    for message in shown:
        assert message.text is not None
        assert message.text.startswith(("Welcome to Orbit VPN, Eve!", "Welcome back, Eve!", "Too fast."))


async def test_referral_links_record_the_inviter_of_a_new_user_only(
    bot: object, make_user: MakeUser, db: asyncpg.Pool
) -> None:
    ann = make_user(2003, first_name="Ann")
    await ann.send("/start")
    await ann.press("👥 Invite friends")
    screen = await ann.last()
    link = f"https://t.me/{BOT_USERNAME}?start=ref_2003"
    assert screen.text is not None and link in screen.text and "Invited: 0" in screen.text
    assert "you get 50 ₽" in screen.text

    bob = make_user(2004, first_name="Bob")
    await bob.send("/start ref_2003")
    assert await db.fetchval("SELECT referrer_id FROM referrals WHERE referee_id = 2004") == 2003

    await ann.press("« Menu")
    await ann.press("👥 Invite friends")
    assert "Invited: 1" in ((await ann.last()).text or "")

    # Oneself, an unknown id, garbage: the user is registered, no referral is recorded.
    cat = make_user(2006, first_name="Cat")
    assert "Welcome to Orbit VPN" in ((await cat.send("/start ref_2006")).text or "")
    dan = make_user(2007, first_name="Dan")
    assert "Welcome to Orbit VPN" in ((await dan.send("/start ref_987654321")).text or "")
    fay = make_user(2008, first_name="Fay")
    assert "Welcome to Orbit VPN" in ((await fay.send("/start ref_<b>x</b>")).text or "")
    # An existing user following a link later is not "invited".
    assert "Welcome back" in ((await ann.send("/start ref_2004")).text or "")
    assert await db.fetchval("SELECT array_agg(referee_id) FROM referrals") == [2004]  # Bob's only
    assert await _count(db, "SELECT count(*) FROM users") == 5


async def test_menu_and_help_commands(
    bot: object, make_user: MakeUser, db: asyncpg.Pool
) -> None:
    gus = make_user(2009, first_name="Gus <script>")
    # /menu from someone who never pressed /start registers them like /start.
    menu = await gus.send("/menu")
    assert menu.text is not None and menu.text.startswith("Orbit VPN")
    assert await _count(db, "SELECT count(*) FROM users WHERE id = 2009") == 1
    shown = await gus.send("/help")
    assert shown.text is not None
    assert "How to connect" in shown.text and "@orbit_support" in shown.text
    for app in ("v2rayNG", "Hiddify", "Streisand", "v2rayN"):
        assert app in shown.text
    assert shown.button_texts == ["« Menu"]
    # HTML in a user's name is shown as text, never parsed.
    start = await gus.send("/start")
    assert start.text is not None and start.text.startswith("Welcome back, Gus <script>!")
