"""🔑 My configs through the real bot process, the Telegram emulator and three panels:
what the user saw, the rows, and what the panels hold."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg

from orbit.configs.service import qr_png
from orbit.sandbox.telegram_control import ShownMessage
from tests.e2e.conftest import Panel, Telegram
from tests.support.telegram_user import TelegramUser

MakeUser = Callable[..., TelegramUser]


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


async def test_panels_down_fail_over_show_unknown_and_refuse_cleanly(
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
    assert "1. Config 1 — ❔ server not answering\n    traffic: unknown" in listing
    assert "2. Config 2 — ✅ active\n    traffic: 0 B, no limit" in listing

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
