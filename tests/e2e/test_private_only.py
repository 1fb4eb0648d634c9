"""The bot talks in private chats only (issue 16, defect 1): the real bot process, a group
and a channel in the Telegram emulator, and nothing posted, edited or registered there."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import aiohttp
import asyncpg
import msgspec

from orbit.ui.admin_views import AdminCb
from orbit.ui.callbacks import MenuCb
from tests.e2e.conftest import ADMIN_ID, BOT_TOKEN, Telegram
from tests.support.journey import eventually
from tests.support.processes import WorkerProcess
from tests.support.telegram_user import TelegramUser

GROUP = -1001000000777
CHANNEL = -1001000000888
STRANGER = 7_101


async def _dropped(http_session: aiohttp.ClientSession, bot: WorkerProcess) -> int:
    async with http_session.get(f"http://127.0.0.1:{bot.env['BOT_HTTP_PORT']}/metrics") as resp:
        body = await resp.text()
    counts = [line.rsplit(" ", 1)[1] for line in body.splitlines() if line.startswith("orbit_group_updates")]
    return sum(int(float(count)) for count in counts)


async def test_groups_and_channels_get_nothing(
    bot: WorkerProcess,
    telegram: Telegram,
    http_session: aiohttp.ClientSession,
    db: asyncpg.Pool,
    make_user: Callable[..., TelegramUser],
) -> None:
    control = telegram.control
    await control.create_group(GROUP, "supergroup", "Friends")
    await control.create_group(CHANNEL, "channel", "News")
    # A menu and an admin screen the bot posted in the group before this fix.
    markup = {
        "inline_keyboard": [
            [{"text": "❓ Help", "callback_data": MenuCb(screen="help").pack()}],
            [{"text": "📊 Stats", "callback_data": AdminCb(screen="stats").pack()}],
        ]
    }
    async with http_session.post(
        f"{telegram.url}/bot{BOT_TOKEN}/sendMessage",
        json={"chat_id": GROUP, "text": "Old menu", "reply_markup": msgspec.json.encode(markup).decode()},
    ) as resp:
        assert resp.status == 200, await resp.text()
    before = [c.seq for c in await control.calls()]

    await control.send_text(STRANGER, "/start", chat_id=GROUP, first_name="Stranger")
    await control.send_text(STRANGER, "/start@orbit_sandbox_bot ref_1", chat_id=GROUP)
    await control.send_text(ADMIN_ID, "/admin", chat_id=GROUP, first_name="Admin")
    await control.send_text(STRANGER, "/menu", chat_id=GROUP)
    await control.send_text(STRANGER, "hello", chat_id=GROUP)
    # The bot asks for no channel posts (no handler): Telegram would not even send this one.
    post = await control.send_text(STRANGER, "/start", chat_id=CHANNEL)
    help_press = await control.press(STRANGER, button_text="❓ Help", chat_id=GROUP)
    stats_press = await control.press(ADMIN_ID, button_text="📊 Stats", chat_id=GROUP)

    answers = [
        await control.callback_answer(p.callback_query_id, timeout=10) for p in (help_press, stats_press)
    ]
    # Every group and channel update reached the bot and was dropped there (checked below).
    expected = 7 if post.dropped else 8
    with contextlib.suppress(AssertionError):
        await eventually(lambda: _is(_dropped(http_session, bot), expected))

    shown = [m for m in await control.messages(GROUP) if m.from_bot]
    assert [(m.text, m.edited) for m in shown] == [("Old menu", False)]
    assert [m for m in await control.messages(CHANNEL) if m.from_bot] == []
    calls = [c for c in await control.calls() if c.seq not in before]
    assert [c for c in calls if str(c.params.get("chat_id")) in (str(GROUP), str(CHANNEL))] == []
    assert {c.method for c in calls} <= {"getUpdates", "answerCallbackQuery"}
    assert await db.fetchval("SELECT count(*) FROM users") == 0  # nobody registered from a group
    assert await _dropped(http_session, bot) == expected
    # Every press is answered (no spinner), with a notice only the presser sees.
    for answer in answers:
        assert answer.answered and not answer.show_alert
        assert answer.text == "I only work in a private chat: open me from my profile and press Start."

    # The same people in their private chats are served as always.
    stranger = make_user(STRANGER, first_name="Stranger")
    menu = await stranger.send("/start")
    assert menu.chat_id == STRANGER and menu.buttons
    assert await db.fetchval("SELECT count(*) FROM users WHERE id = $1", STRANGER) == 1

    # They remove the bot from the group: that is not blocking it in their private chat.
    member = {"user": {"id": 123456, "is_bot": True, "first_name": "Orbit"}}
    kicked = await control.inject_update({"my_chat_member": {
        "chat": {"id": GROUP, "type": "supergroup", "title": "Friends"},
        "from": {"id": STRANGER, "is_bot": False, "first_name": "Stranger"},
        "date": 1767225600,
        "old_chat_member": {**member, "status": "member"},
        "new_chat_member": {**member, "status": "kicked", "until_date": 0},
    }})  # fmt: skip
    assert not kicked.dropped
    await eventually(lambda: _is(_dropped(http_session, bot), expected + 1))
    assert await db.fetchval("SELECT blocked_at FROM users WHERE id = $1", STRANGER) is None


async def _is(count: object, expected: int) -> bool:
    return await count == expected  # type: ignore[misc]
