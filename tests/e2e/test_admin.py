"""🛠 The admin panel through the real bot process: who gets in, what it shows and changes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg

from orbit.sandbox.telegram_control import ShownMessage
from orbit.ui.admin_card_views import AdminCardCb, AdminDaysCb
from orbit.ui.admin_views import (
    AdminAdjustCb,
    AdminBcCb,
    AdminCb,
    AdminInstCb,
    AdminPromoCb,
    AdminUserCb,
)
from tests.e2e.conftest import ADMIN_ID, Panel
from tests.e2e.test_configs import configs, create, subscribed
from tests.support.journey import eventually
from tests.support.telegram_user import TelegramUser

MakeUser = Callable[..., TelegramUser]
STALE = "This button is out of date. Open the menu again: /menu"
BANNED = (
    "Sorry, your access to this bot has been restricted."
    " If you think this is a mistake, write to @orbit_support."
)


def text(message: ShownMessage) -> str:
    return message.text or message.caption or ""


async def state(db: asyncpg.Pool) -> dict[str, object]:
    """Everything an admin action may change."""
    return {
        "users": [
            tuple(r) for r in await db.fetch("SELECT id, balance_kop, is_banned FROM users ORDER BY id")
        ],
        "ledger": await db.fetchval("SELECT count(*) FROM ledger"),
        "instances": [
            tuple(r) for r in await db.fetch("SELECT id, is_active FROM marzban_instances ORDER BY id")
        ],
        "promos": [tuple(r) for r in await db.fetch("SELECT code, is_active FROM promocodes ORDER BY code")],
        "broadcasts": await db.fetchval("SELECT count(*) FROM broadcasts"),
        "outbox": await db.fetchval("SELECT count(*) FROM outbox"),
        "subscriptions": [
            tuple(r) for r in await db.fetch("SELECT id, subscription_until FROM users ORDER BY id")
        ],
        "payments": [tuple(r) for r in await db.fetch("SELECT id, status FROM payments ORDER BY id")],
        "audit": await db.fetchval("SELECT count(*) FROM admin_audit"),
    }


async def open_panel(admin: TelegramUser) -> ShownMessage:
    shown = await admin.send("/admin")
    assert text(shown) == "🛠 Admin panel"
    return shown


async def test_non_admins_get_nothing_and_forged_presses_change_nothing(
    bot: object, make_user: MakeUser, db: asyncpg.Pool
) -> None:
    mallory = make_user(5001, first_name="Mallory")
    victim = make_user(5002, first_name="Victim")
    await mallory.send("/start")
    await victim.send("/start")
    await db.execute("INSERT INTO promocodes (code, kind, value) VALUES ('GIFT', 'balance', 100)")
    before = await state(db)

    # /admin is an unknown command to a non-admin: the hint any unknown command gets,
    # nothing about an admin panel. The reply to /help, sent after it, comes next.
    shown = len(await mallory.messages())
    hint = await mallory.send("/admin")
    assert text(hint) == "I did not understand that. Open the menu: /menu"
    reply = await mallory.send("/help")
    assert text(reply).startswith("How to connect")
    after = await mallory.messages()
    assert len(after) == shown + 2 and all("Admin panel" not in text(m) for m in after)

    forged = [
        AdminCb(screen="stats"),
        AdminUserCb(action="ban", user_id=victim.id),
        AdminUserCb(action="adjust", user_id=victim.id),
        AdminAdjustCb(token="guess"),
        AdminBcCb(action="send", token="guess"),
        AdminInstCb(action="off", instance_id="p1"),
        AdminInstCb(action="drain_yes", instance_id="p1"),
        AdminPromoCb(code="GIFT"),
        AdminCb(screen="audit"),
        AdminCardCb(action="days", user_id=victim.id),
        AdminCardCb(action="configs", user_id=victim.id),
        AdminCardCb(action="audit", user_id=victim.id),
        AdminCardCb(action="refund", user_id=victim.id, payment_id=1),
        AdminCardCb(action="refund_yes", user_id=victim.id, payment_id=1),
        AdminDaysCb(token="guess"),
        AdminUserCb(action="unban", user_id=victim.id),
        AdminInstCb(action="on", instance_id="p1"),
    ]
    for data in forged:
        answer = await mallory.press(data=data.pack(), forge=True)
        assert (answer.text, answer.show_alert) == (STALE, True), data
    # Every admin command and every text an admin flow takes: the unknown-command hint
    # at most, never a screen of the panel.
    for typed in ("/refund 1", "/cancel", "+100", "30", "SPRING balance 100", "5002"):
        await mallory.send_silently(typed)
    await mallory.send("/help")
    assert await state(db) == before
    assert await db.fetchval("SELECT count(*) FROM admin_audit") == 0
    assert all("Admin panel" not in text(m) for m in await mallory.messages())


async def test_admin_sees_stats_and_health(bot: object, make_user: MakeUser, db: asyncpg.Pool) -> None:
    ann = make_user(5101, first_name="Ann")
    await ann.send("/start")
    await db.execute(
        "INSERT INTO payments (user_id, method, status, amount_kop, currency, currency_amount,"
        " credited_kop, expires_at, confirmed_at)"
        " VALUES (5101, 'ton', 'confirmed', 25000, 'TON', 1, 25000, now(), now()),"
        "        (5101, 'stars', 'pending', 5000, 'XTR', 37, NULL, now() + interval '5 min', NULL)"
    )
    admin = make_user(ADMIN_ID, first_name="Admin")
    await open_panel(admin)

    await admin.press("📊 Stats")
    shown = text(await admin.last())
    assert "👥 Users: 1 (new today: 1) · subscribed: 0 · blocked the bot: 0 · banned: 0" in shown
    assert "Plans bought: 0 / 0 / 0 / 0" in shown
    assert "All top-ups: 250 / 250 / 250 / 250" in shown
    assert "Top-ups, TON: 250 / 250 / 250 / 250" in shown
    assert "Top-ups, Stars: 0 / 0 / 0 / 0" in shown
    assert "⏳ Pending payments: 1 (50 ₽)" in shown
    assert "❓ Unmatched TON transfers: 0" in shown

    await admin.press("« Admin panel")
    await admin.press("🩺 Health")
    shown = text(await admin.last())
    assert "Postgres: up · Redis: up" in shown
    # The bot itself is alive, but no supervisord runs here to say so: unknown, not healthy.
    assert "❔ bot: heartbeat" in shown and "supervisor: unknown" in shown
    assert "❌ janitor: heartbeat missing" in shown


async def test_admin_adjusts_a_balance_and_bans(bot: object, make_user: MakeUser, db: asyncpg.Pool) -> None:
    ann = make_user(5201, first_name="Ann", username="ann_e2e")
    await ann.send("/start")
    admin = make_user(ADMIN_ID, first_name="Admin")
    await open_panel(admin)
    await admin.press("👤 Find a user")
    assert text(await admin.last()) == "👤 Send a Telegram id or @username."
    assert text(await admin.send("@nobody_here")) == "❌ No user @nobody_here."
    card = text(await admin.send("@ANN_e2e"))
    assert card.startswith("👤 Ann · id 5201 · @ann_e2e") and "💰 Balance: 0 ₽" in card

    await admin.press("💰 Adjust balance")
    assert text(await admin.last()).startswith("💰 Balance of 5201: 0 ₽.")
    before = await state(db)
    for bad, answer in (
        ("lots", "❌ Send an amount in ₽ like 100, -50 or 99.50."),
        ("0", "❌ The amount must not be zero."),
        ("5000000", "❌ That is more than 1000000 ₽. A typo?"),
    ):
        assert text(await admin.send(bad)) == answer
    assert text(await admin.send("+150")).startswith("Adjust by +150 ₽. Why?")
    confirm = await admin.send("goodwill <3")
    assert text(confirm) == "Adjust the balance of 5201 by +150 ₽?\nReason: goodwill <3"
    assert text(await admin.send("yes please")) == "Press a button above: confirm, or cancel."
    assert await state(db) == before  # nothing changes before the confirmation
    data = confirm.buttons[0][0].callback_data
    assert data is not None

    await admin.press("✅ Confirm")
    done = next(m for m in await admin.messages() if m.message_id == confirm.message_id)  # edited
    assert text(done) == "✅ Balance of 5201 adjusted by +150 ₽. Balance now: 150 ₽."
    entry = await db.fetchrow("SELECT kind, amount_kop, note FROM ledger WHERE user_id = 5201")
    assert tuple(entry) == ("adjustment", 15_000, f"admin {ADMIN_ID}: goodwill <3")
    # The same confirmation pressed again (a double tap, a forged replay) changes nothing.
    again = await admin.press(data=data, forge=True)
    assert (again.text, again.show_alert) == ("This confirmation is out of date. Start again.", True)
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 5201") == 15_000
    assert await db.fetchval("SELECT count(*) FROM ledger") == 1

    # Taking more than there is: refused, nothing changes.
    await admin.press("👤 Open user 5201")
    await admin.press("💰 Adjust balance")
    await admin.send("-200")
    await admin.send("correction")
    await admin.press("✅ Confirm")
    assert text(await admin.last()) == "❌ Refused: the balance is 150 ₽, 200 ₽ cannot be taken."
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 5201") == 15_000

    # A ban: Ann is told once, politely, then silence whatever she sends or presses
    # (her flood is not answered message by message); an unban lets her back.
    await admin.press("👤 Open user 5201")
    answer = await admin.press("🚫 Ban")
    assert answer.text == "🚫 User 5201 is banned."
    assert "🚫 Banned" in text(await admin.last())
    assert text(await ann.send("/menu")) == BANNED
    for typed in ("/menu", "hello", "/start"):
        await ann.send_silently(typed)
    pressed = await ann.press(data="m:main", forge=True)
    assert (pressed.text, pressed.show_alert) == (None, False)  # answered, nothing said
    await admin.press("✅ Unban")
    assert "Balance: 150 ₽" in text(await ann.send("/menu"))
    assert [text(m) for m in await ann.messages()].count(BANNED) == 1
    # Banned again: told once more (the flag is reset by every ban and unban).
    await admin.press("🚫 Ban")  # the card is still shown
    pressed = await ann.press(data="m:main", forge=True)
    assert (pressed.text, pressed.show_alert) == (BANNED, True)
    await ann.send_silently("/menu")
    await admin.press("✅ Unban")
    assert "Balance: 150 ₽" in text(await ann.send("/menu"))
    assert [text(m) for m in await ann.messages()].count(BANNED) == 1
    # Each action is one audit row naming the admin, in order.
    trail = await db.fetch("SELECT actor, action, target_user_id FROM admin_audit ORDER BY id")
    assert [tuple(r) for r in trail] == [
        (str(ADMIN_ID), "balance.adjust", 5201),
        (str(ADMIN_ID), "user.ban", 5201),
        (str(ADMIN_ID), "user.unban", 5201),
        (str(ADMIN_ID), "user.ban", 5201),
        (str(ADMIN_ID), "user.unban", 5201),
    ]


async def test_admin_broadcast_queues_one_row_per_reachable_user(
    bot: object, janitor: object, make_user: MakeUser, db: asyncpg.Pool
) -> None:
    users = [make_user(5300 + n, first_name=f"U{n}") for n in range(4)]
    for user in users:
        await user.send("/start")
    await db.execute("UPDATE users SET blocked_at = now() WHERE id = 5302")
    await db.execute("UPDATE users SET is_banned = true WHERE id = 5303")
    admin = make_user(ADMIN_ID, first_name="Admin")
    await open_panel(admin)

    await admin.press("📣 Broadcast")
    await admin.press("everyone reachable: 2")
    assert text(await admin.last()) == (
        "📣 Send the broadcast text (formatting is kept). It goes to 2 users (everyone reachable)."
    )
    before = await state(db)
    await admin.send("Big <news> & more")
    await admin.press("➡️ No button")
    shown = await admin.wait_until(lambda ms: "Send it to" in text(ms[-1]))
    preview, confirm = shown[-2], shown[-1]
    assert text(preview) == "Big <news> & more"  # exactly what the users will see
    assert text(confirm) == "⬆️ This is how it looks. Send it to 2 users (everyone reachable)?"
    assert await state(db) == before
    data = confirm.buttons[0][0].callback_data
    assert data is not None

    await admin.press("📣 Send")
    broadcast_id = await db.fetchval("SELECT id FROM broadcasts")
    # The janitor's job fans it out; the rows appear without the bot's handler.
    await eventually(
        lambda: db.fetchval("SELECT queued_at IS NOT NULL FROM broadcasts WHERE id = $1", broadcast_id), 30
    )
    rows = await db.fetch(
        "SELECT chat_id, kind, text FROM outbox WHERE broadcast_id = $1 ORDER BY chat_id", broadcast_id
    )
    assert [tuple(r) for r in rows] == [
        (5300, "broadcast", "Big &lt;news&gt; &amp; more"),
        (5301, "broadcast", "Big &lt;news&gt; &amp; more"),
    ]
    again = await admin.press(data=data, forge=True)
    assert again.show_alert and await db.fetchval("SELECT count(*) FROM broadcasts") == 1

    # The outbox sender delivers them; the progress screen counts them.
    for user in users[:2]:
        await user.wait_until(lambda ms: text(ms[-1]) == "Big <news> & more")
    await eventually(
        lambda: db.fetchval(
            "SELECT count(*) = 2 FROM outbox WHERE broadcast_id = $1 AND status = 'sent'", broadcast_id
        )
    )
    await admin.wait_until(lambda ms: any(b.text == "🔄 Progress" for row in ms[-1].buttons for b in row), 30)
    finished = (
        f"📣 Broadcast #{broadcast_id}: 2 recipients — sent 2, pending 0, failed 0, skipped 0.\n"
        "👥 everyone reachable\n✅ Finished."
    )

    async def progress_shows_it_finished() -> bool:
        # The job's own edits of this message are paced at one a second for the chat and
        # may land after a press's screen: press until the finished counts stay.
        await admin.press("🔄 Progress")
        await asyncio.sleep(1.0)
        return text(await admin.last()) == finished

    await eventually(progress_shows_it_finished, 30)
    assert all(text(m) != "Big <news> & more" for m in await users[2].messages())
    assert all(text(m) != "Big <news> & more" for m in await users[3].messages())


async def test_admin_manages_promo_codes_and_instances(
    bot: object, janitor: object, make_user: MakeUser, db: asyncpg.Pool
) -> None:
    admin = make_user(ADMIN_ID, first_name="Admin")
    await open_panel(admin)
    await admin.press("🎟 Promo codes")
    assert text(await admin.last()) == "🎟 Promo codes (usable)\nNo usable promo codes."
    await admin.press("➕ New code")
    for bad, answer in (
        ("SPRING", "❌ expected: CODE balance|days VALUE [MAX_USES]"),
        ("SPRING gold 5", "❌ the kind must be one of balance, days, got 'gold'"),
        ("SPRING days -3", "❌ days must be a positive whole number, got '-3'"),
        ("SPRING balance 5 0", "❌ max uses must be a positive whole number, got '0'"),
        ("SPRING days 99999", "❌ Not created: the value must be positive and at most 3650 for a days code"),
        (
            "<b> balance 5",
            "❌ Not created: bad code '<b>': 3-32 characters of A-Z, 0-9, '_' and '-',"
            " not starting with '_' or '-'",
        ),
    ):
        assert text(await admin.send(bad)) == answer, bad
    assert await db.fetchval("SELECT count(*) FROM promocodes") == 0
    created = await admin.send("spring balance 99.50 100")
    assert text(created).startswith("✅ Promo code SPRING created.\n\n🎟 Promo codes (usable)\n")
    assert "• SPRING — 99.50 ₽ · used 0/100" in text(created)
    row = await db.fetchrow("SELECT kind, value, max_uses, created_by, is_active FROM promocodes")
    assert tuple(row) == ("balance", 9_950, 100, ADMIN_ID, True)
    answer = await admin.press("⏸ SPRING")
    assert answer.text == "⏸ Promo code SPRING disabled."
    assert await db.fetchval("SELECT is_active FROM promocodes WHERE code = 'SPRING'") is False
    assert "No usable promo codes." in text(await admin.last())

    await admin.press("« Admin panel")
    await admin.press("🖥 Instances")
    shown = text(await admin.last())
    assert "p1 (Panel 1) — active · priority 30 · configs: 0" in shown
    answer = await admin.press("⏸ Disable p3")
    assert answer.text == "⏸ Instance p3 disabled: no new configs go to it; its 0 configs stay."
    assert await db.fetchval("SELECT is_active FROM marzban_instances WHERE id = 'p3'") is False
    assert "p3 (Panel 3) — disabled" in text(await admin.last())
    await admin.press("▶️ Enable p3")
    assert await db.fetchval("SELECT is_active FROM marzban_instances WHERE id = 'p3'") is True

    # Draining asks first, then moves the (here: no) configs and leaves the instance disabled.
    await admin.press("🚚 Drain p2")
    assert text(await admin.last()).startswith("🚚 Move all 0 configs of p2 to other instances?")
    assert await db.fetchval("SELECT is_active FROM marzban_instances WHERE id = 'p2'") is True
    await admin.press("🚚 Drain p2")
    # The job's report replaces "queued" within seconds: either may be shown first.
    shown = await admin.wait_until(lambda ms: text(ms[-1]).startswith("🚚 Drain of p2:"), timeout=60)
    assert text(shown[-1]) == "🚚 Drain of p2: 0 moved, 0 deleted, 0 already elsewhere, 0 failed."
    assert await db.fetchval("SELECT is_active FROM marzban_instances WHERE id = 'p2'") is False
    # Each change is one audit row naming the admin; the audit screen lists them, latest first.
    trail = await db.fetch("SELECT actor, action, target, before, after FROM admin_audit ORDER BY id")
    assert [(r["actor"], r["action"], r["target"]) for r in trail] == [
        (str(ADMIN_ID), "promo.create", "promo:SPRING"),
        (str(ADMIN_ID), "promo.disable", "promo:SPRING"),
        (str(ADMIN_ID), "instance.disable", "instance:p3"),
        (str(ADMIN_ID), "instance.enable", "instance:p3"),
        (str(ADMIN_ID), "instance.drain", "instance:p2"),  # the drain job queued (its row names the job)
    ]
    assert trail[0]["after"]["value"] == 9_950 and set(trail[4]["after"]) == {"job"}
    await admin.press("🖥 Instances")
    await admin.press("« Admin panel")
    await admin.press("📜 Audit log")
    lines = text(await admin.last()).splitlines()
    assert lines[0] == "📜 Admin actions (latest 5)"
    assert f"· {ADMIN_ID} · instance.drain instance:p2: — → " in lines[1]
    assert "promo.create promo:SPRING" in lines[5]


async def test_a_drain_from_the_bot_moves_a_users_configs_and_reports_them(
    bot: object, janitor: object, make_user: MakeUser, db: asyncpg.Pool, panels: list[Panel]
) -> None:
    """The drain job with configs to move: they leave p2's panel for another, each keeps its
    row and gets a new link, the user is told, and the admin's report counts them."""
    ann = make_user(7301, first_name="Ann")
    await subscribed(db, ann)
    # With p1 (the top priority) disabled, placement falls to p2.
    await db.execute("UPDATE marzban_instances SET is_active = false WHERE id = 'p1'")
    await ann.press("🔑 My configs")
    await create(ann)
    await ann.press("« My configs")
    await create(ann)
    await db.execute("UPDATE marzban_instances SET is_active = true WHERE id = 'p1'")
    made = await configs(db, 7301)
    assert [c["instance_id"] for c in made] == ["p2", "p2"]
    by_id = {p.id: p for p in panels}
    assert sorted(by_id["p2"].emulator.usernames) == sorted(str(c["panel_username"]) for c in made)
    told_before = len(await ann.messages())

    admin = make_user(ADMIN_ID, first_name="Admin")
    await open_panel(admin)
    await admin.press("🖥 Instances")
    await admin.press("🚚 Drain p2")
    assert text(await admin.last()).startswith("🚚 Move all 2 configs of p2 to other instances?")
    await admin.press("🚚 Drain p2")
    shown = await admin.wait_until(lambda ms: text(ms[-1]).startswith("🚚 Drain of p2:"), timeout=60)
    assert text(shown[-1]) == "🚚 Drain of p2: 2 moved, 0 deleted, 0 already elsewhere, 0 failed."

    moved = await configs(db, 7301)
    assert [c["id"] for c in moved] == [c["id"] for c in made]  # the same rows, moved
    assert all(c["instance_id"] in ("p1", "p3") and c["status"] == "active" for c in moved)
    assert by_id["p2"].emulator.usernames == []
    for c in moved:
        holder = by_id[str(c["instance_id"])]
        assert str(c["panel_username"]) in holder.emulator.usernames
        assert str(c["subscription_url"]).startswith(holder.url)
    assert await db.fetchval("SELECT is_active FROM marzban_instances WHERE id = 'p2'") is False
    # Each moved config's new link reaches its user (through the outbox), once.
    links = {str(c["subscription_url"]) for c in moved}
    told = await ann.wait_until(
        lambda ms: links <= {url for m in ms[told_before:] for url in links if url in text(m)}, timeout=60
    )
    assert sum(1 for m in told[told_before:] for url in links if url in text(m)) == 2
