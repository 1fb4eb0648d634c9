"""👤 The user card's new screens through the bot's real dispatcher and the Telegram
emulator (tests/support/bot_harness.py): referrals, days granted and removed, a
Stars refund, the configs with their panel and usage, the admin actions (per
user and the panel's); each change one audit row naming the admin."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import msgspec
import pytest
from redis.asyncio import Redis

from orbit import ledger
from orbit.configs import queries as configs_q
from orbit.i18n import create_translator
from orbit.marzban import instances, provisioning
from orbit.marzban.instances import Instance
from orbit.marzban.provisioning import PanelDeps, new_panel_username
from orbit.payments import stars
from orbit.sandbox.marzban import MarzbanEmulator
from orbit.settings import Settings
from orbit.ui.admin_card_views import AdminCardCb, AdminDaysCb
from orbit.ui.admin_views import AdminCb, AdminUserCb
from tests.support.bot_harness import BotHarness, running_bot

ADMIN = 900_000_001
ANN, RITA, TOM = 8201, 8200, 8202


@pytest.fixture
async def panel(db: asyncpg.Pool) -> AsyncIterator[MarzbanEmulator]:
    emulator = MarzbanEmulator()
    url = await emulator.start()
    instance = Instance(id="p1", name="Panel 1", base_url=url, username="admin", password="admin")
    assert await instances.insert_instance(db, instance)
    yield emulator
    await emulator.stop()


@pytest.fixture
async def harness(
    db: asyncpg.Pool, redis: Redis, settings: Settings, panel: MarzbanEmulator
) -> AsyncIterator[BotHarness]:
    settings = msgspec.structs.replace(settings, admin_ids=(ADMIN,), rate_limit_scale=0.001)
    async with aiohttp.ClientSession() as http, running_bot(settings, db, redis, http) as bot:
        yield bot


async def shown(harness: BotHarness, user_id: int) -> str:
    return (await harness.control.messages(user_id))[-1].text or ""


async def buttons(harness: BotHarness, user_id: int) -> dict[str, str]:
    last = (await harness.control.messages(user_id))[-1]
    return {b.text: b.callback_data or "" for row in last.buttons for b in row}


async def test_the_user_card_grants_days_refunds_and_shows_configs_referrals_and_actions(
    harness: BotHarness, db: asyncpg.Pool, redis: Redis, settings: Settings, panel: MarzbanEmulator
) -> None:
    await harness.send(RITA, "/start", first_name="Rita")
    await harness.send(ANN, f"/start ref_{RITA}", first_name="Ann")  # Rita invited Ann
    await harness.send(TOM, f"/start ref_{ANN}", first_name="Tom")  # Ann invited Tom
    async with db.acquire() as conn, conn.transaction():
        await ledger.credit(conn, ANN, 5_000, "referral_bonus", f"referral:{TOM}", note="test bonus")
        await conn.execute("UPDATE referrals SET bonus_paid_at = now() WHERE referee_id = $1", TOM)
    # Ann paid 300 ₽ in Stars (a charge the emulator holds), runs a subscription, has a config.
    invoice = await stars.create_stars_payment(db, settings, ANN, 30_000)
    charge = await harness.control.charge(ANN, invoice.stars, invoice.payload)
    await stars.confirm_stars(
        db, redis, create_translator(), settings, ANN, "XTR", invoice.stars, invoice.payload,
        charge.telegram_payment_charge_id,
    )  # fmt: skip
    payment_id = invoice.payment.id
    await db.execute(
        "UPDATE users SET subscription_until = orbit_now() + interval '5 days' WHERE id = $1", ANN
    )
    async with aiohttp.ClientSession() as http:
        deps = PanelDeps(db, redis, http, settings)
        pending = await configs_q.insert_pending(db, ANN, "p1", new_panel_username(ANN), "phone", 0)
        config = await provisioning.provision_config(deps, pending.id)
    panel.set_user(config.panel_username, used_traffic=3 * 2**30, online_at="now")

    await harness.send(ADMIN, "/start", first_name="Admin")
    await harness.press(ADMIN, AdminCb(screen="user").pack())
    await harness.send(ADMIN, str(ANN))
    card = await shown(harness, ADMIN)
    # Rita's bonus was paid when Ann's top-up reached the minimum; Ann earned one for Tom.
    lines = card.splitlines()
    assert any(
        x.startswith(f"🤝 Invited by: {RITA} @user{RITA} joined ") and x.endswith(", bonus paid")
        for x in lines
    )
    assert "👥 Invited 1 users · bonuses earned: 50 ₽" in lines
    assert any(x.startswith(f"• {TOM} @user{TOM} joined ") and x.endswith(", bonus paid") for x in lines)
    on_card = await buttons(harness, ADMIN)
    assert {"📅 Grant days", "🔑 Configs", "📜 Admin actions", f"↩️ Refund #{payment_id}"} <= set(on_card)

    # Days: bad input is asked again and changes nothing; the confirmation grants once.
    await harness.press(ADMIN, on_card["📅 Grant days"])
    assert (await shown(harness, ADMIN)).startswith(f"📅 How many days to add to the subscription of {ANN}?")
    until = await db.fetchval("SELECT subscription_until FROM users WHERE id = $1", ANN)
    for bad in ("0", "lots", "9999"):
        await harness.send(ADMIN, bad)
        assert (await shown(harness, ADMIN)).startswith("❌ Send a whole number of days like 30 or -7")
    await harness.send(ADMIN, "10")
    assert await shown(harness, ADMIN) == "Why? (kept in the audit trail)"
    await harness.send(ADMIN, "outage <b>")
    assert await shown(harness, ADMIN) == f"Add 10 days to the subscription of {ANN}?\nReason: outage <b>"
    confirm = (await buttons(harness, ADMIN))["✅ Confirm"]
    assert await db.fetchval("SELECT count(*) FROM admin_audit") == 0
    await harness.press(ADMIN, confirm)
    assert (await shown(harness, ADMIN)).startswith(f"✅ 10 days added to {ANN}. Subscription until ")
    again = await harness.press(ADMIN, confirm)  # a double tap: out of date, nothing changes
    assert (again.text, again.show_alert) == ("This confirmation is out of date. Start again.", True)
    now_until = await db.fetchval("SELECT subscription_until FROM users WHERE id = $1", ANN)
    assert (now_until - until).days == 10
    assert panel.user(config.panel_username)["expire"] == int(now_until.timestamp())  # the panel follows

    # The configs with their panel and last use, as the panel says.
    await harness.press(ADMIN, AdminCardCb(action="configs", user_id=ANN).pack())
    assert (await shown(harness, ADMIN)).startswith(
        f"🔑 Configs of user {ANN}: 1\n• phone — p1, active · 3.00 GiB used, last online "
    )

    # A Stars refund from the card: asked first, then the credit reversed and the Stars returned.
    await harness.press(ADMIN, on_card[f"↩️ Refund #{payment_id}"])
    assert await shown(harness, ADMIN) == (
        f"↩️ Refund payment #{payment_id} of user {ANN}: 300 ₽ taken from the balance, 223 ⭐ returned?"
    )
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = $1", ANN) == 35_000  # + 50 ₽ bonus
    await harness.press(ADMIN, (await buttons(harness, ADMIN))["↩️ Refund"])
    assert await shown(harness, ADMIN) == (
        f"↩️ Payment {payment_id} refunded: −300 ₽ from user {ANN}, the Stars returned."
    )
    assert await db.fetchval("SELECT status FROM payments WHERE id = $1", payment_id) == "refunded"
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = $1", ANN) == 5_000
    assert [c.refunded for c in await harness.control.charges()] == [True]
    # Telegram reports the refund to the bot too (refunded_payment): it changes nothing more.
    await harness._feed_next()
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = $1", ANN) == 5_000

    # The trail: two rows naming the admin, on the card and on its own screens.
    trail = await db.fetch("SELECT actor, action, target_user_id, target FROM admin_audit ORDER BY id")
    assert [tuple(r) for r in trail] == [
        (str(ADMIN), "subscription.grant_days", ANN, None),
        (str(ADMIN), "payment.refund", ANN, f"payment:{payment_id}"),
    ]
    await harness.press(ADMIN, AdminUserCb(action="show", user_id=ANN).pack())
    card = await shown(harness, ADMIN)
    assert "📜 Admin actions:" in card and "payment.refund" in card and "subscription.grant_days" in card
    assert f"↩️ Refund #{payment_id}" not in await buttons(harness, ADMIN)  # refunded: no button
    await harness.press(ADMIN, AdminCardCb(action="audit", user_id=ANN).pack())
    lines = (await shown(harness, ADMIN)).splitlines()
    assert lines[0] == f"📜 Admin actions on user {ANN}"
    assert f"· {ADMIN} · payment.refund user {ANN} payment:{payment_id}: " in lines[1]
    assert f"· {ADMIN} · subscription.grant_days user {ANN}: " in lines[2] and "outage <b>" in lines[2]
    await harness.press(ADMIN, AdminCb(screen="audit").pack())
    assert (await shown(harness, ADMIN)).splitlines()[0] == "📜 Admin actions (latest 2)"

    # Taking days away that are not there: refused, nothing written.
    await db.execute(
        "UPDATE users SET subscription_until = orbit_now() - interval '1 day' WHERE id = $1", TOM
    )
    await harness.press(ADMIN, AdminCardCb(action="days", user_id=TOM).pack())
    await harness.send(ADMIN, "-3")
    await harness.send(ADMIN, "mistake")
    await harness.press(ADMIN, (await buttons(harness, ADMIN))["✅ Confirm"])
    assert (
        await shown(harness, ADMIN)
        == f"❌ User {TOM} has no running subscription: there are no days to take away."
    )
    assert await db.fetchval("SELECT count(*) FROM admin_audit") == 2
    assert harness.handler_errors() == []


async def test_a_non_admin_pressing_the_cards_buttons_gets_nothing(
    harness: BotHarness, db: asyncpg.Pool
) -> None:
    await harness.send(ANN, "/start", first_name="Ann")
    await harness.send(TOM, "/start", first_name="Tom")
    await db.execute("UPDATE users SET subscription_until = orbit_now() + interval '5 days'")
    before = await db.fetch("SELECT id, subscription_until, balance_kop FROM users ORDER BY id")
    for data in (
        AdminCb(screen="audit"),
        AdminCardCb(action="days", user_id=TOM),
        AdminCardCb(action="configs", user_id=TOM),
        AdminCardCb(action="audit", user_id=TOM),
        AdminCardCb(action="refund", user_id=TOM, payment_id=1),
        AdminCardCb(action="refund_yes", user_id=TOM, payment_id=1),
        AdminDaysCb(token="guess"),
    ):
        answer = await harness.press(ANN, data.pack())
        assert answer.show_alert and answer.text == "This button is out of date. Open the menu again: /menu"
    for typed in ("30", "-7", "/refund 1"):
        await harness.send(ANN, typed)
        assert "Admin" not in await shown(harness, ANN)
    assert await db.fetch("SELECT id, subscription_until, balance_kop FROM users ORDER BY id") == before
    assert await db.fetchval("SELECT count(*) FROM admin_audit") == 0
    assert harness.handler_errors() == []


BANNED = (
    "Sorry, your access to this bot has been restricted."
    " If you think this is a mistake, write to @orbit_support."
)


async def test_a_banned_user_is_told_once_then_silence(harness: BotHarness, db: asyncpg.Pool) -> None:
    await harness.send(ANN, "/start", first_name="Ann")
    await harness.send(ADMIN, "/start", first_name="Admin")
    await harness.press(ADMIN, AdminUserCb(action="ban", user_id=ANN).pack())
    before = len(await harness.control.messages(ANN))
    await harness.send(ANN, "/menu")
    assert await shown(harness, ANN) == BANNED
    # Her flood is not answered message by message: nothing more is sent, presses are
    # answered (the spinner stops) without a word.
    for typed in ("/menu", "hello", "/start", "/balance"):
        await harness.send(ANN, typed)
    pressed = await harness.press(ANN, "m:main")
    assert pressed.answered and (pressed.text, pressed.show_alert) == (None, False)
    assert len(await harness.control.messages(ANN)) == before + 1
    # Unbanned and banned again: told once more, this time by the press's alert.
    await harness.press(ADMIN, AdminUserCb(action="unban", user_id=ANN).pack())
    await harness.press(ADMIN, AdminUserCb(action="ban", user_id=ANN).pack())
    pressed = await harness.press(ANN, "m:main")
    assert (pressed.text, pressed.show_alert) == (BANNED, True)
    await harness.send(ANN, "/menu")
    assert len(await harness.control.messages(ANN)) == before + 1
    trail = await db.fetch("SELECT actor, action, target_user_id FROM admin_audit ORDER BY id")
    assert [tuple(r) for r in trail] == [
        (str(ADMIN), "user.ban", ANN),
        (str(ADMIN), "user.unban", ANN),
        (str(ADMIN), "user.ban", ANN),
    ]
    assert harness.handler_errors() == []
