"""🔑 My configs through the real bot process, the Telegram emulator and three panels:
what the user saw, the rows, and what the panels hold."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import asyncpg

from orbit import clock
from orbit.configs.service import qr_png
from orbit.sandbox.telegram_control import ShownMessage
from orbit.ui.views import format_date
from tests.e2e.conftest import Panel, Telegram
from tests.support.telegram_user import TelegramUser

MakeUser = Callable[..., TelegramUser]
GB = 1024**3


async def subscribed(db: asyncpg.Pool, user: TelegramUser, *, days: int = 30) -> None:
    """/start, then a subscription written straight to the row (buying is tested elsewhere)."""
    await user.send("/start")
    await db.execute(
        "UPDATE users SET subscription_until = now() + make_interval(days => $2) WHERE id = $1",
        user.id,
        days,
    )


async def configs(db: asyncpg.Pool, user_id: int) -> list[dict[str, object]]:
    rows = await db.fetch(
        "SELECT id, name, status, instance_id, panel_username, subscription_url,"
        " deleted_at IS NOT NULL AS gone FROM configs WHERE user_id = $1 ORDER BY id",
        user_id,
    )
    return [dict(r) for r in rows]


def panel_users(panels: list[Panel]) -> dict[str, list[str]]:
    return {p.id: sorted(p.emulator.usernames) for p in panels}


def text(message: ShownMessage) -> str:
    return message.text or message.caption or ""


async def create(
    user: TelegramUser, done: str = "is ready", button: str = "➕ New config"
) -> ShownMessage:
    """Press ➕ and wait for the outcome (the press is answered before the config is made)."""
    answer = await user.press(button)
    assert answer.text is None and not answer.show_alert
    shown = await user.wait_until(lambda ms: done in text(ms[-1]) or "not created" in text(ms[-1]))
    return shown[-1]


async def test_create_show_qr_rename_delete(
    bot: object, make_user: MakeUser, db: asyncpg.Pool, panels: list[Panel], telegram: Telegram
) -> None:
    ann = make_user(3001, first_name="Ann")
    await subscribed(db, ann)
    await ann.send("/menu")
    await ann.press("🔑 My configs")
    screen = await ann.last()
    assert text(screen).startswith("🔑 My configs (0 of 2)")
    assert "You have no configs yet" in text(screen)
    assert screen.button_texts == ["➕ New config", "« Menu"]

    created = await create(ann)
    [row] = await configs(db, 3001)
    assert row["status"] == "active" and row["instance_id"] == "p1" and row["name"] == "Config 1"
    assert panel_users(panels) == {"p1": [row["panel_username"]], "p2": [], "p3": []}
    assert created.message_id == screen.message_id  # the same message, edited
    assert text(created).startswith("✅ Config «Config 1» is ready.")
    assert "Status: ✅ active" in text(created) and "Traffic used: 0 B, no limit" in text(created)
    assert str(row["subscription_url"]) in text(created)
    assert created.button_texts == ["📷 QR code", "✏️ Rename", "🗑 Delete", "« My configs"]

    # The QR code: a photo of exactly the subscription link's code.
    await ann.press("📷 QR code")
    photo = await ann.last()
    assert photo.photo is not None and text(photo) == "QR code of «Config 1»: scan it in your VPN app."
    assert await telegram.control.file(photo.photo.file_id) == qr_png(str(row["subscription_url"]))
    assert photo.button_texts == ["« Back"]
    await ann.press("« Back")  # under the photo: the config screen comes anew, below it
    again = await ann.last()
    assert again.message_id > photo.message_id and text(again).startswith("Config 1")

    # Rename: bad names are refused and change nothing; a good one is kept as a label.
    await ann.press("✏️ Rename")
    assert text(await ann.last()).startswith("Send a new name for «Config 1».")
    for bad in ("<b>bold</b>", "x" * 33, "Phone 📱", "two\nlines"):
        reply = await ann.send(bad)
        assert text(reply).startswith("This name does not fit"), bad
        assert (await configs(db, 3001))[0]["name"] == "Config 1"
    renamed = await ann.send("  Ann's   phone ")
    assert text(renamed).startswith("✏️ Renamed to «Ann's phone».")
    [row] = await configs(db, 3001)
    assert row["name"] == "Ann's phone"
    assert panel_users(panels)["p1"] == [row["panel_username"]]  # the panel user is the same

    await ann.press("« My configs")
    listing = text(await ann.last())
    assert "1. Ann's phone — ✅ active" in listing and "traffic: 0 B, no limit" in listing

    # Delete asks first; Cancel keeps it.
    await ann.press("1. Ann's phone")
    await ann.press("🗑 Delete")
    assert text(await ann.last()).startswith("Delete «Ann's phone»?")
    await ann.press("✖️ Cancel")
    assert text(await ann.last()).startswith("Ann's phone")
    assert not (await configs(db, 3001))[0]["gone"]
    await ann.press("🗑 Delete")
    await ann.press("🗑 Yes, delete it")
    assert text(await ann.last()) == "🗑 Config «Ann's phone» deleted."
    [row] = await configs(db, 3001)
    assert row["gone"] and row["status"] == "deleted"
    assert panel_users(panels) == {"p1": [], "p2": [], "p3": []}

    # The old confirmation, pressed again (a stale screen): nothing left to delete.
    config_id = row["id"]
    answer = await ann.press(data=f"cfg:erase:{config_id}", forge=True)
    assert answer.show_alert and answer.text == "This config is not in your list (it may have been deleted)."


async def test_no_subscription_double_press_and_the_limit(
    bot: object, make_user: MakeUser, db: asyncpg.Pool, panels: list[Panel]
) -> None:
    bob = make_user(3002, first_name="Bob")
    await bob.send("/start")
    await bob.press("🔑 My configs")
    screen = await bob.last()
    assert "Valid until: no active subscription" in text(screen)
    assert screen.button_texts == ["🛒 Buy a plan", "« Menu"]  # no ➕ without a subscription

    # A forged ➕ anyway: told why, nothing made.
    answer = await bob.press(data="cfg:new:0", message_id=screen.message_id, forge=True)
    assert not answer.show_alert  # answered at once, the outcome is on the screen
    shown = await bob.wait_until(lambda ms: text(ms[-1]).startswith("You need"))
    assert text(shown[-1]).startswith("You need an active subscription for configs")
    assert await configs(db, 3002) == []

    await db.execute("UPDATE users SET subscription_until = now() + interval '5 days' WHERE id = 3002")
    await bob.press("« My configs")
    # A double press on ➕ makes one config. The press that lost shows "out of date"
    # at once; the one that won shows the config once it is made, before or after that.
    screen = await bob.last()
    presses = await asyncio.gather(
        bob.press("➕ New config", message_id=screen.message_id),
        bob.press("➕ New config", message_id=screen.message_id),
    )
    assert all(p.answered and not p.show_alert for p in presses)

    def ready(shown: list[ShownMessage]) -> bool:
        versions = [v.text or "" for m in shown for v in (*m.edits, m)]
        return any("is ready" in v for v in versions)

    await bob.wait_until(ready)
    assert len(await configs(db, 3002)) == 1
    assert sum(len(users) for users in panel_users(panels).values()) == 1

    await bob.press("« My configs")
    await create(bob)
    await bob.press("« My configs")
    screen = await bob.last()
    assert text(screen).startswith("🔑 My configs (2 of 2)")
    assert "➕ New config" not in screen.button_texts  # the plan's limit is reached

    await bob.press(data="cfg:new:2", message_id=screen.message_id, forge=True)
    shown = await bob.wait_until(lambda ms: text(ms[-1]).startswith("Your plan"))
    assert text(shown[-1]).startswith("Your plan allows 2 configs and you have them all.")
    assert len(await configs(db, 3002)) == 2
    assert sum(len(users) for users in panel_users(panels).values()) == 2


async def test_another_users_config_cannot_be_touched(
    bot: object, make_user: MakeUser, db: asyncpg.Pool, panels: list[Panel], telegram: Telegram
) -> None:
    ann = make_user(3003, first_name="Ann")
    await subscribed(db, ann)
    await ann.press("🔑 My configs")
    await create(ann)
    [before] = await configs(db, 3003)

    eve = make_user(3004, first_name="Eve")
    await subscribed(db, eve)
    seen = len(await eve.messages())
    for action in ("show", "qr", "rename", "delete", "erase"):
        answer = await eve.press(data=f"cfg:{action}:{before['id']}", forge=True)
        assert answer.show_alert, action
        assert answer.text == "This config is not in your list (it may have been deleted).", action
    for forged in ("cfg:show:99999999999999999999", "cfg:show:-5", "cfg:show:x", "cfg:bogus:1"):
        answer = await eve.press(data=forged, forge=True)
        assert answer.show_alert and answer.text, forged

    assert await configs(db, 3003) == [before]
    assert panel_users(panels)["p1"] == [before["panel_username"]]
    assert len(await eve.messages()) == seen  # no screen, no QR photo, no prompt
    assert await telegram.control.calls("sendPhoto") == []


async def test_panels_down_fail_over_show_the_stored_usage_and_refuse_cleanly(
    bot: object, make_user: MakeUser, db: asyncpg.Pool, panels: list[Panel]
) -> None:
    cat = make_user(3005, first_name="Cat")
    await subscribed(db, cat)
    await db.execute("INSERT INTO purchases (user_id, plan_id, days, price_kop, source, starts_at, ends_at)"
                     " VALUES (3005, '3m', 90, 0, 'admin', now(), now() + interval '90 days')")
    await cat.press("🔑 My configs")
    await create(cat)  # on p1
    p1, p2, p3 = panels
    await p1.emulator.down()

    await cat.press("« My configs")
    await create(cat)  # p1 is down: p2 takes it
    rows = await configs(db, 3005)
    assert [r["instance_id"] for r in rows] == ["p1", "p2"]
    assert panel_users(panels)["p2"] == [rows[1]["panel_username"]]

    await cat.press("« My configs")
    listing = text(await cat.last())
    assert listing.startswith("🔑 My configs (2 of 3)")
    # The list asks no panel: each shows what its screen read at its creation.
    assert "1. Config 1 — ✅ active\n    traffic: 0 B, no limit · just now" in listing
    assert "2. Config 2 — ✅ active\n    traffic: 0 B, no limit · just now" in listing
    # Config 1's own screen asks p1, which is down: the stored usage, with its age.
    await cat.press("1. Config 1")
    shown = text(await cat.last())
    assert "Status: ❔ server not answering" in shown
    assert "Traffic used: 0 B, no limit · just now" in shown
    await cat.press("« My configs")

    # Every panel down: the user is told, and no config is left behind.
    await p2.emulator.down()
    await p3.emulator.down()
    failed = await create(cat)
    assert text(failed).startswith("❌ No VPN server answered, so the config was not created.")
    assert failed.button_texts == ["« My configs", "« Menu"]
    rows = await configs(db, 3005)
    assert len(rows) == 3 and rows[2]["gone"] and rows[2]["status"] == "deleted"
    await cat.press("« My configs")
    assert text(await cat.last()).startswith("🔑 My configs (2 of 3)")


def panel_requests(panels: list[Panel]) -> list[str]:
    return [f"{p.id} {r.method} {r.path}" for p in panels for r in p.emulator.requests]


async def _janitor_read(
    db: asyncpg.Pool, config_id: int, used: int, ago: timedelta, limit: int = 0
) -> None:
    """What the janitor's usage round stores: `used` bytes, read `ago` by the project's clock."""
    await db.execute(
        "UPDATE configs SET usage_bytes = $2, usage_read_at = orbit_now() - $3::interval,"
        " data_limit_bytes = $4 WHERE id = $1",
        config_id, used, ago, limit,
    )  # fmt: skip


async def test_the_list_shows_stored_usage_and_asks_no_panel(
    bot: object, make_user: MakeUser, db: asyncpg.Pool, panels: list[Panel]
) -> None:
    dan = make_user(3006, first_name="Dan")
    await subscribed(db, dan)
    await dan.press("🔑 My configs")
    await create(dan)
    await dan.press("« My configs")
    await create(dan)
    first, second = await configs(db, 3006)
    await _janitor_read(db, int(first["id"]), int(1.2 * GB), timedelta(minutes=5), limit=50 * GB)
    await db.execute(
        "UPDATE configs SET usage_bytes = NULL, usage_read_at = NULL WHERE id = $1", second["id"]
    )
    p1 = panels[0].emulator
    p1.add_user_traffic(str(first["panel_username"]), int(1.5 * GB))  # more than stored
    for panel in panels:
        panel.emulator.clear_requests()

    await dan.press("« My configs")
    listing = text(await dan.last())
    assert "1. Config 1 — ✅ active\n    traffic: 1.2 GB of 50.0 GB · 5 min ago" in listing
    assert "2. Config 2 — ✅ active\n    traffic: not read yet" in listing
    assert panel_requests(panels) == []

    # Its own screen reads the panel now (no age shown) and stores the reading...
    await dan.press("1. Config 1")
    shown = text(await dan.last())
    assert "Status: ✅ active" in shown and "Traffic used: 1.5 GB of 50.0 GB\n" in shown
    assert p1.count("GET", "/api/user/{username}") == 1
    row = await db.fetchrow(
        "SELECT usage_bytes, orbit_now() - usage_read_at AS age FROM configs WHERE id = $1", first["id"]
    )
    assert row["usage_bytes"] == int(1.5 * GB) and row["age"] < timedelta(seconds=30)
    # ...which the list shows next, still asking no panel.
    p1.clear_requests()
    await dan.press("« My configs")
    assert "traffic: 1.5 GB of 50.0 GB · just now" in text(await dan.last())
    # Ages are the project's clock's: two hours on, by orbit_now() alone.
    await clock.advance(db, 2 * 3600 + 60)
    await dan.press("« Menu")
    await dan.press("🔑 My configs")
    assert "traffic: 1.5 GB of 50.0 GB · 2 h ago" in text(await dan.last())
    assert panel_requests(panels) == []

    # Its panel down: its own screen shows the stored usage with its age, not "unknown".
    await p1.down()
    await dan.press("1. Config 1")
    shown = text(await dan.last())
    assert "Status: ❔ server not answering" in shown
    assert "Traffic used: 1.5 GB of 50.0 GB · 2 h ago" in shown
    await dan.press("« My configs")
    await dan.press("2. Config 2")  # never read, and its panel silent
    assert "Traffic used: unknown" in text(await dan.last())


async def test_the_stored_usage_in_russian(
    bot: object, make_user: MakeUser, db: asyncpg.Pool, panels: list[Panel]
) -> None:
    ivan = make_user(3007, first_name="Иван", language_code="ru")
    await subscribed(db, ivan)
    await db.execute("INSERT INTO purchases (user_id, plan_id, days, price_kop, source, starts_at, ends_at)"
                     " VALUES (3007, '3m', 90, 0, 'admin', now(), now() + interval '90 days')")
    for number, name in enumerate(("Телефон", "Ноутбук", "Планшет")):
        await db.execute(
            "INSERT INTO configs (user_id, instance_id, panel_username, name, status)"
            " VALUES (3007, 'p1', $1, $2, 'active')",
            f"u3007_{number}", name,
        )  # fmt: skip
    phone, laptop, _ = await configs(db, 3007)
    await _janitor_read(db, int(phone["id"]), int(1.2 * GB), timedelta(minutes=5), limit=50 * GB)
    await _janitor_read(db, int(laptop["id"]), 300 * 1024**2, timedelta(days=3))
    read_at = await db.fetchval("SELECT usage_read_at FROM configs WHERE id = $1", laptop["id"])
    await ivan.press("🔑 Мои конфиги")
    listing = text(await ivan.last())
    assert listing.startswith("🔑 Мои конфиги (3 из 3)")
    assert "1. Телефон — ✅ активен\n    трафик: 1.2 ГБ из 50.0 ГБ · 5 мин назад" in listing
    assert f"2. Ноутбук — ✅ активен\n    трафик: 300 МБ, без лимита · на {format_date(read_at)}" in listing
    assert "3. Планшет — ✅ активен\n    трафик: ещё не получен" in listing
    assert panel_requests(panels) == []


async def test_a_config_being_made_when_the_bot_is_stopped_is_finished_first(
    start_bot: Callable[..., object], make_user: MakeUser, db: asyncpg.Pool, panels: list[Panel]
) -> None:
    worker = await start_bot()  # type: ignore[misc]
    ann = make_user(3401, first_name="Ann")
    await subscribed(db, ann)
    await ann.press("🔑 My configs")
    for panel in panels:  # the panel user takes 2 s to make, wherever it goes
        panel.emulator.slow(2.0, method="POST", path="/api/user")
    answer = await ann.press("➕ New config")  # answered at once; the config is made after
    assert answer.text is None and not answer.show_alert
    await asyncio.sleep(0.5)
    assert await worker.stop() == 0  # type: ignore[attr-defined]  # SIGTERM mid-creation
    shown = await ann.messages()
    assert text(shown[-1]).startswith("✅ Config «Config 1» is ready."), text(shown[-1])
    assert [c["status"] for c in await configs(db, 3401)] == ["active"]
    log = worker.output()  # type: ignore[attr-defined]
    assert "orbit.bot.errors" not in log and "Traceback" not in log, log[-3000:]
    assert "pub/sub" not in log, log[-3000:]  # a clean stop does not cut the shared Redis client


async def test_a_failure_after_the_press_was_answered_is_told_in_a_message(
    bot: object, make_user: MakeUser, db: asyncpg.Pool, panels: list[Panel]
) -> None:
    ann = make_user(3501, first_name="Ann")
    await subscribed(db, ann)
    await ann.press("🔑 My configs")
    # ➕ is answered before the config is made; making it now fails (its table is gone).
    await db.execute("ALTER TABLE configs RENAME TO configs_away")
    try:
        answer = await ann.press("➕ New config")
        shown = await ann.wait_until(lambda ms: "went wrong" in (ms[-1].text or ""))
    finally:
        await db.execute("ALTER TABLE configs_away RENAME TO configs")
    assert answer.text is None and not answer.show_alert
    assert shown[-1].text == "Something went wrong on our side. Please try again in a minute."
    assert panel_users(panels) == {"p1": [], "p2": [], "p3": []}
