"""The janitor's chores against the real database and emulated panels."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from orbit import ledger
from orbit.i18n import create_translator
from orbit.janitor import chores
from orbit.marzban import provisioning
from orbit.marzban.errors import PanelUnavailable
from orbit.marzban.provisioning import PanelDeps
from orbit.plans import load_plans
from orbit.subscriptions import service as subscriptions
from tests.marzban.conftest import Panels, add_user, pending_config
from tests.support.journey import eventually


async def test_drift_repair_pushes_the_new_end_date(
    db: asyncpg.Pool, deps: PanelDeps, registered: Panels
) -> None:
    await add_user(db, 1, days=5)
    config = await pending_config(db, 1, "a")
    await provisioning.provision_config(deps, config.id)
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(days=40)
    # A purchase committed while the panel was unreachable: the row is flagged.
    await db.execute("UPDATE users SET subscription_until = $1 WHERE id = 1", later)
    await db.execute(
        "UPDATE configs SET needs_sync = true, updated_at = now() - interval '1 minute' WHERE id = $1",
        config.id,
    )
    assert await chores.repair_drift(deps) == 1
    panel_user = registered.a.user(config.panel_username)
    assert panel_user is not None and panel_user["expire"] == int(later.timestamp())
    assert await db.fetchval("SELECT needs_sync FROM configs WHERE id = $1", config.id) is False
    assert await chores.repair_drift(deps) == 0


async def test_a_pending_config_is_provisioned_once_panels_return(
    db: asyncpg.Pool, deps: PanelDeps, registered: Panels
) -> None:
    await add_user(db, 2)
    config = await pending_config(db, 2, "a")
    for _, panel in registered:
        await panel.down()
    try:
        await provisioning.provision_config(deps, config.id)
    except PanelUnavailable:
        pass
    else:
        raise AssertionError("provisioning succeeded with every panel down")
    await db.execute("UPDATE configs SET updated_at = now() - interval '1 minute' WHERE id = $1", config.id)
    assert await chores.repair_drift(deps) == 0  # still down: stays pending
    for _, panel in registered:
        await panel.up()
    await db.execute("UPDATE configs SET updated_at = now() - interval '1 minute' WHERE id = $1", config.id)
    assert await chores.repair_drift(deps) == 1
    row = await db.fetchrow("SELECT status, instance_id FROM configs WHERE id = $1", config.id)
    assert row["status"] == "active"
    assert registered.holders(config.panel_username) == [row["instance_id"]]


async def test_reminders_once_per_window(db: asyncpg.Pool, deps: PanelDeps) -> None:
    now = datetime.now(UTC)
    users = {10: timedelta(days=2), 11: timedelta(hours=12), 12: -timedelta(hours=1),
             13: timedelta(days=10), 14: timedelta(days=2)}
    for user_id, delta in users.items():
        await db.execute(
            "INSERT INTO users (id, language, subscription_until) VALUES ($1, $2, $3)",
            user_id, "ru" if user_id == 11 else "en", now + delta,
        )
    await db.execute("UPDATE users SET blocked_at = now() WHERE id = 14")
    translator = create_translator()
    assert await chores.send_reminders(deps, translator) == 3
    rows = await db.fetch("SELECT chat_id, text, dedup_key FROM outbox ORDER BY chat_id")
    assert [r["chat_id"] for r in rows] == [10, 11, 12]
    assert [r["dedup_key"].rsplit(":", 1)[1] for r in rows] == ["3d", "1d", "expired"]
    assert "завтра" in rows[1]["text"]
    assert await chores.send_reminders(deps, translator) == 0


async def test_auto_renewal_buys_the_last_plan_once(
    db: asyncpg.Pool, deps: PanelDeps, registered: Panels
) -> None:
    plans = load_plans(deps.settings)
    month = plans.get("1m")
    assert month is not None
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=6)
    for user_id, auto, balance in ((20, True, month.price * 2), (21, False, month.price),
                                   (22, True, month.price - 1)):
        await db.execute(
            "INSERT INTO users (id, subscription_until, auto_renew) VALUES ($1, $2, $3)",
            user_id, until, auto,
        )
        async with db.acquire() as conn, conn.transaction():
            await ledger.credit(conn, user_id, balance, "topup", f"seed:{user_id}")
        await db.execute(
            "INSERT INTO purchases (user_id, plan_id, days, price_kop, starts_at, ends_at)"
            " VALUES ($1, '1m', 30, $2, now() - interval '30 days', $3)",
            user_id, month.price, until,
        )
    translator = create_translator()
    assert await chores.renew_subscriptions(deps, translator, plans) == 1
    assert await chores.renew_subscriptions(deps, translator, plans) == 0
    renewed = await db.fetchrow("SELECT balance_kop, subscription_until FROM users WHERE id = 20")
    assert renewed["balance_kop"] == month.price
    assert renewed["subscription_until"] == until + timedelta(days=30)
    assert await db.fetchval("SELECT count(*) FROM purchases WHERE source = 'auto_renew'") == 1
    assert await db.fetchval("SELECT count(*) FROM outbox WHERE kind = 'renewal' AND chat_id = 20") == 1
    for untouched in (21, 22):
        row = await db.fetchrow("SELECT subscription_until FROM users WHERE id = $1", untouched)
        assert row["subscription_until"] == until


async def _renewal_candidate(db: asyncpg.Pool, user_id: int, until: datetime, balance: int) -> None:
    await db.execute(
        "INSERT INTO users (id, subscription_until, auto_renew) VALUES ($1, $2, true)", user_id, until
    )
    async with db.acquire() as conn, conn.transaction():
        await ledger.credit(conn, user_id, balance, "topup", f"seed:{user_id}")
    await db.execute(
        "INSERT INTO purchases (user_id, plan_id, days, price_kop, starts_at, ends_at)"
        " VALUES ($1, '1m', 30, 10000, now() - interval '30 days', $2)",
        user_id, until,
    )


async def test_auto_renewal_does_not_charge_again_when_the_user_just_bought(
    db: asyncpg.Pool, deps: PanelDeps, registered: Panels
) -> None:
    plans = load_plans(deps.settings)
    month = plans.get("1m")
    assert month is not None
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=6)
    await _renewal_candidate(db, 40, until, 2 * month.price)
    # The user's own purchase holds the row while the janitor finds the renewal due.
    async with db.acquire() as conn:
        bought = conn.transaction()
        await bought.start()
        await subscriptions.buy(conn, 40, month, "purchase:40:own")
        renewal = asyncio.create_task(chores.renew_subscriptions(deps, create_translator(), plans))
        await eventually(lambda: db.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE wait_event_type = 'Lock' AND datname = current_database()"
        ))
        await bought.commit()
    assert await renewal == 0
    row = await db.fetchrow("SELECT balance_kop, subscription_until FROM users WHERE id = 40")
    assert (row["balance_kop"], row["subscription_until"]) == (month.price, until + timedelta(days=30))
    assert await db.fetchval("SELECT count(*) FROM purchases WHERE source = 'auto_renew'") == 0
    assert await db.fetchval("SELECT count(*) FROM outbox WHERE kind = 'renewal'") == 0


async def test_auto_renewal_never_buys_after_the_end(
    db: asyncpg.Pool, deps: PanelDeps, registered: Panels
) -> None:
    # A lapsed user who tops up is not charged for the old plan without a press.
    plans = load_plans(deps.settings)
    for user_id, ago in ((41, timedelta(minutes=5)), (42, timedelta(days=2))):
        await _renewal_candidate(db, user_id, datetime.now(UTC) - ago, 100_000)
    assert await chores.renew_subscriptions(deps, create_translator(), plans) == 0
    assert await db.fetchval("SELECT count(*) FROM purchases WHERE source = 'auto_renew'") == 0
    assert await db.fetchval("SELECT sum(balance_kop) FROM users") == 200_000


async def test_a_renewal_key_for_a_past_end_buys_nothing(
    db: asyncpg.Pool, deps: PanelDeps, registered: Panels
) -> None:
    # The purchase itself re-checks, under the row lock, the end it was asked to renew.
    plans = load_plans(deps.settings)
    month = plans.get("1m")
    assert month is not None
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
    await _renewal_candidate(db, 43, until, 100_000)
    async with db.acquire() as conn, conn.transaction():
        with pytest.raises(subscriptions.RenewalNotDue):
            await subscriptions.buy(conn, 43, month, "autorenew:43:x", source="auto_renew",
                                    renews_until=until - timedelta(days=30))
    await db.execute("UPDATE users SET subscription_until = now() - interval '1 minute' WHERE id = 43")
    lapsed = await db.fetchval("SELECT subscription_until FROM users WHERE id = 43")
    async with db.acquire() as conn, conn.transaction():
        with pytest.raises(subscriptions.RenewalNotDue):
            await subscriptions.buy(conn, 43, month, "autorenew:43:y", source="auto_renew",
                                    renews_until=lapsed)
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 43") == 100_000


async def test_an_interrupted_broadcast_is_finished(db: asyncpg.Pool, deps: PanelDeps) -> None:
    for user_id in (30, 31, 32):
        await db.execute("INSERT INTO users (id, created_at) VALUES ($1, now() - interval '1 day')", user_id)
    broadcast_id = await db.fetchval(
        "INSERT INTO broadcasts (text, created_by, idempotency_key, created_at)"
        " VALUES ('News', 1, 'cut-short', now() - interval '10 minutes') RETURNING id"
    )
    assert await chores.finish_broadcasts(deps) == 1
    rows = await db.fetch("SELECT chat_id FROM outbox WHERE broadcast_id = $1 ORDER BY chat_id", broadcast_id)
    assert [r["chat_id"] for r in rows] == [30, 31, 32]
    assert await chores.finish_broadcasts(deps) == 0
