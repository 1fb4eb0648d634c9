"""👤 The user card's new screens through the real bot process and the Telegram
emulator: referrals, days granted and removed, a Stars refund, the configs with
their panel and usage, the admin actions (per user and the panel's); each change
one audit row naming the admin."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp
import asyncpg
from redis.asyncio import Redis

from orbit import ledger
from orbit.configs import queries as configs_q
from orbit.marzban import provisioning
from orbit.marzban.provisioning import PanelDeps, new_panel_username
from orbit.settings import Settings
from tests.e2e.conftest import ADMIN_ID, Panel, Telegram
from tests.e2e.test_admin import open_panel, text
from tests.e2e.test_payments_stars import RECEIVED, _stars_invoice
from tests.support.journey import eventually
from tests.support.telegram_user import TelegramUser

MakeUser = Callable[..., TelegramUser]
ANN, RITA, TOM = 8201, 8200, 8202


async def test_the_user_card_grants_days_refunds_and_shows_configs_referrals_and_actions(
    start_bot: Callable[..., object],
    panels: list[Panel],
    make_user: MakeUser,
    db: asyncpg.Pool,
    redis: Redis,
    telegram: Telegram,
    http_session: aiohttp.ClientSession,
    settings: Settings,
) -> None:
    await start_bot()
    rita = make_user(RITA, first_name="Rita", username="rita_ref")
    ann = make_user(ANN, first_name="Ann")
    tom = make_user(TOM, first_name="Tom")
    await rita.send("/start")
    await ann.send(f"/start ref_{RITA}")  # Rita invited Ann; Ann invites Tom
    await tom.send(f"/start ref_{ANN}")
    async with db.acquire() as conn, conn.transaction():
        await ledger.credit(conn, ANN, 5_000, "referral_bonus", f"referral:{TOM}", note="test bonus")
        await conn.execute("UPDATE referrals SET bonus_paid_at = now() WHERE referee_id = $1", TOM)
    # Ann pays 300 ₽ in Stars, has a running subscription and one config on p1.
    invoice_id = await _stars_invoice(ann)
    assert (await telegram.control.pay(ann.id, invoice_id)).status == "paid"
    await ann.wait_until(lambda shown: any(m.text == RECEIVED for m in shown))
    payment_id = await db.fetchval("SELECT id FROM payments WHERE status = 'confirmed'")
    await db.execute(
        "UPDATE users SET subscription_until = orbit_now() + interval '5 days' WHERE id = $1", ANN
    )
    deps = PanelDeps(db, redis, http_session, settings)
    pending = await configs_q.insert_pending(db, ANN, "p1", new_panel_username(ANN), "phone", 0)
    config = await provisioning.provision_config(deps, pending.id)
    panels[0].emulator.set_user(config.panel_username, used_traffic=3 * 2**30, online_at="now")

    admin = make_user(ADMIN_ID, first_name="Admin")
    await open_panel(admin)
    await admin.press("👤 Find a user")
    card = text(await admin.send(str(ANN)))
    assert f"🤝 Invited by: {RITA} @rita_ref joined " in card and ", no bonus yet" in card
    assert "👥 Invited 1 users · bonuses earned: 50 ₽" in card
    assert f"• {TOM}  joined " in card and ", bonus paid" in card

    # Days: bad input is asked again and changes nothing; the confirmation grants once.
    await admin.press("📅 Days ±")
    assert text(await admin.last()).startswith(f"📅 How many days to add to the subscription of {ANN}?")
    until = await db.fetchval("SELECT subscription_until FROM users WHERE id = $1", ANN)
    for bad in ("0", "lots", "9999"):
        assert text(await admin.send(bad)).startswith("❌ Send a whole number of days like 30 or -7")
    assert text(await admin.send("10")) == "Why? (kept in the audit trail)"
    confirm = await admin.send("outage <b>")
    assert text(confirm) == f"Add 10 days to the subscription of {ANN}?\nReason: outage <b>"
    data = confirm.buttons[0][0].callback_data
    assert data is not None and await db.fetchval("SELECT count(*) FROM admin_audit") == 0
    await admin.press("✅ Confirm")
    assert text(await admin.last()).startswith(f"✅ 10 days added to {ANN}. Subscription until ")
    again = await admin.press(data=data, forge=True)  # a double tap: out of date, nothing changes
    assert (again.text, again.show_alert) == ("This confirmation is out of date. Start again.", True)
    now_until = await db.fetchval("SELECT subscription_until FROM users WHERE id = $1", ANN)
    assert (now_until - until).days == 10
    # The panel follows: the config's panel user expires with the new end.
    assert panels[0].emulator.user(config.panel_username)["expire"] == int(now_until.timestamp())

    # The configs with their panel and last use, as the panel says.
    await admin.press(f"👤 Open user {ANN}")
    await admin.press("🔑 Configs")
    shown = text(await admin.last())
    assert shown.startswith(
        f"🔑 Configs of user {ANN}: 1\n• phone — p1, active · 3.00 GiB used, last online "
    )

    # A Stars refund from the card: asked first, then the credit reversed and the Stars returned.
    await admin.press(f"👤 Open user {ANN}")
    await admin.press(f"↩️ Refund #{payment_id}")
    assert text(await admin.last()) == (
        f"↩️ Refund payment #{payment_id} of user {ANN}: 300 ₽ taken from the balance, 223 ⭐ returned?"
    )
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = $1", ANN) == 30_000
    await admin.press("↩️ Refund")
    done = await admin.wait_until(lambda ms: text(ms[-1]).startswith("↩️ Payment"))
    assert text(done[-1]) == f"↩️ Payment {payment_id} refunded: −300 ₽ from user {ANN}, the Stars returned."
    await eventually(
        lambda: db.fetchval("SELECT status = 'refunded' FROM payments WHERE id = $1", payment_id)
    )
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = $1", ANN) == 0

    # The trail: two rows naming the admin, on the card and on its own screens.
    trail = await db.fetch("SELECT actor, action, target_user_id, target FROM admin_audit ORDER BY id")
    assert [tuple(r) for r in trail] == [
        (str(ADMIN_ID), "subscription.grant_days", ANN, None),
        (str(ADMIN_ID), "payment.refund", ANN, f"payment:{payment_id}"),
    ]
    await admin.press(f"👤 Open user {ANN}")
    card = text(await admin.last())
    assert "📜 Admin actions:" in card and "payment.refund" in card and "subscription.grant_days" in card
    assert f"↩️ Refund #{payment_id}" not in [t for m in [await admin.last()] for t in m.button_texts]
    await admin.press("📜 Admin actions")
    lines = text(await admin.last()).splitlines()
    assert lines[0] == f"📜 Admin actions on user {ANN}"
    assert f"· {ADMIN_ID} · payment.refund user {ANN} payment:{payment_id}: " in lines[1]
    assert f"· {ADMIN_ID} · subscription.grant_days user {ANN}: " in lines[2] and "outage <b>" in lines[2]
    await admin.press("« Admin panel")
    await admin.press("📜 Audit log")
    assert text(await admin.last()).splitlines()[0] == "📜 Admin actions (latest 2)"

    # Taking days away that are not there: refused, nothing written.
    await db.execute(
        "UPDATE users SET subscription_until = orbit_now() - interval '1 day' WHERE id = $1", TOM
    )
    await admin.press("« Admin panel")
    await admin.press("👤 Find a user")
    await admin.send(str(TOM))
    await admin.press("📅 Days ±")
    await admin.send("-3")
    await admin.send("mistake")
    await admin.press("✅ Confirm")
    assert (
        text(await admin.last())
        == f"❌ User {TOM} has no running subscription: there are no days to take away."
    )
    assert await db.fetchval("SELECT count(*) FROM admin_audit") == 2
