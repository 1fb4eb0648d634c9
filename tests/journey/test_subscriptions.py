"""Subscriptions: end dates, purchases, trial, limits, and the panels following them.

Real Postgres and Redis, Marzban emulators over real HTTP.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg
import pytest
from redis.asyncio import Redis

from orbit import ledger
from orbit.configs.service import create_config
from orbit.marzban.provisioning import PanelDeps
from orbit.plans import Plans, load_plans
from orbit.sandbox.marzban import MarzbanEmulator
from orbit.settings import Settings
from orbit.subscriptions import (
    active_plan_limits,
    buy,
    extend_subscription,
    grant_trial,
    purchase_plan,
    set_auto_renew,
    start_trial,
    subscription,
    sync_config_expiry,
)

DAY = timedelta(days=1)


@pytest.fixture
def plans(settings: Settings) -> Plans:
    return load_plans(settings)


@pytest.fixture
async def panel(db: asyncpg.Pool) -> AsyncIterator[MarzbanEmulator]:
    emulator = MarzbanEmulator()
    url = await emulator.start()
    await db.execute(
        "INSERT INTO marzban_instances (id, name, base_url, username, password)"
        " VALUES ('p1', 'Panel 1', $1, 'admin', 'admin')",
        url,
    )
    yield emulator
    await emulator.stop()


@pytest.fixture
async def deps(db: asyncpg.Pool, redis: Redis, settings: Settings) -> AsyncIterator[PanelDeps]:
    async with aiohttp.ClientSession() as http:
        yield PanelDeps(pool=db, redis=redis, http=http, settings=settings)


async def _user(db: asyncpg.Pool, user_id: int = 1, *, balance_kop: int = 0,
                until: datetime | None = None) -> None:
    await db.execute("INSERT INTO users (id, subscription_until) VALUES ($1, $2)", user_id, until)
    if balance_kop:
        async with db.acquire() as conn, conn.transaction():
            await ledger.credit(conn, user_id, balance_kop, "topup", f"test-topup:{user_id}")


async def _until(db: asyncpg.Pool, user_id: int = 1) -> datetime:
    return await db.fetchval("SELECT subscription_until FROM users WHERE id = $1", user_id)


async def test_extend_starts_from_now_for_none_or_expired_and_adds_to_a_running_one(
    db: asyncpg.Pool,
) -> None:
    now = datetime.now(UTC)
    await _user(db, 1)
    await _user(db, 2, until=now - 10 * DAY)
    await _user(db, 3, until=now + 10 * DAY)
    async with db.acquire() as conn, conn.transaction():
        first = await extend_subscription(conn, 1, 30)
        second = await extend_subscription(conn, 2, 30)
        third = await extend_subscription(conn, 3, 30)
    assert abs(first - (now + 30 * DAY)) < timedelta(seconds=30)
    assert abs(second - (now + 30 * DAY)) < timedelta(seconds=30)
    assert abs(third - (now + 40 * DAY)) < timedelta(seconds=1)


async def test_extend_refuses_outside_a_transaction_and_bad_input(db: asyncpg.Pool) -> None:
    await _user(db, 1)
    async with db.acquire() as conn:
        with pytest.raises(RuntimeError):
            await extend_subscription(conn, 1, 30)
        async with conn.transaction():
            with pytest.raises(ValueError):
                await extend_subscription(conn, 1, 0)
            with pytest.raises(ledger.UnknownUser):
                await extend_subscription(conn, 404, 5)
    assert await _until(db) is None


async def test_buy_debits_extends_and_records_the_purchase(db: asyncpg.Pool, plans: Plans) -> None:
    plan = plans.get("3m")
    assert plan is not None
    await _user(db, 1, balance_kop=50_000, until=datetime.now(UTC) + 5 * DAY)
    before = await _until(db)
    async with db.acquire() as conn, conn.transaction():
        purchase = await buy(conn, 1, plan, "purchase:1:t1")
    assert not purchase.replayed and purchase.price_kop == 40_000
    assert purchase.starts_at == before and purchase.ends_at == before + 90 * DAY
    assert await _until(db) == before + 90 * DAY
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 1") == 10_000
    entry = await db.fetchrow("SELECT amount_kop, kind, purchase_id FROM ledger WHERE idempotency_key = $1",
                              "purchase:1:t1")
    assert (entry["amount_kop"], entry["kind"], entry["purchase_id"]) == (-40_000, "purchase", purchase.id)
    row = await db.fetchrow(
        "SELECT plan_id, days, price_kop, source FROM purchases WHERE id = $1", purchase.id
    )
    assert tuple(row) == ("3m", 90, 40_000, "balance")


async def test_buy_with_too_little_money_changes_nothing(db: asyncpg.Pool, plans: Plans) -> None:
    plan = plans.get("1m")
    assert plan is not None
    await _user(db, 1, balance_kop=10_000)
    with pytest.raises(ledger.InsufficientFunds) as info:
        async with db.acquire() as conn, conn.transaction():
            await buy(conn, 1, plan, "purchase:1:t1")
    assert info.value.missing_kop == 5_000
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 1") == 10_000
    assert await _until(db) is None
    assert await db.fetchval("SELECT count(*) FROM purchases") == 0
    assert await db.fetchval("SELECT count(*) FROM ledger WHERE kind = 'purchase'") == 0


async def test_the_same_token_buys_once_even_when_pressed_concurrently(
    db: asyncpg.Pool, plans: Plans, deps: PanelDeps
) -> None:
    plan = plans.get("1m")
    assert plan is not None
    await _user(db, 1, balance_kop=100_000)
    results = await asyncio.gather(*(purchase_plan(deps, 1, plan, "tok") for _ in range(6)))
    assert sum(not r.replayed for r in results) == 1
    assert len({r.id for r in results}) == 1
    assert await db.fetchval("SELECT count(*) FROM purchases") == 1
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 1") == 85_000
    # Pressed again later: still the first purchase.
    again = await purchase_plan(deps, 1, plan, "tok")
    assert again.replayed and again.id == results[0].id
    # The token is the user's own: another user with the same token buys their own.
    await _user(db, 2, balance_kop=15_000)
    other = await purchase_plan(deps, 2, plan, "tok")
    assert not other.replayed and other.id != again.id


async def test_racing_purchases_never_overdraw(db: asyncpg.Pool, plans: Plans, deps: PanelDeps) -> None:
    plan = plans.get("1m")
    assert plan is not None
    await _user(db, 1, balance_kop=20_000)  # enough for one 150 ₽ plan

    async def attempt(n: int) -> bool:
        try:
            await purchase_plan(deps, 1, plan, f"tok{n}")
        except ledger.InsufficientFunds:
            return False
        return True

    outcomes = await asyncio.gather(*(attempt(n) for n in range(5)))
    assert sum(outcomes) == 1
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 1") == 5_000
    assert await db.fetchval("SELECT count(*) FROM purchases") == 1


async def test_trial_once_per_account_forever(db: asyncpg.Pool, deps: PanelDeps) -> None:
    await _user(db, 1)
    results = await asyncio.gather(*(start_trial(deps, 1, 7) for _ in range(4)))
    granted = [r for r in results if r is not None]
    assert len(granted) == 1
    used_at = await db.fetchval("SELECT trial_used_at FROM users WHERE id = 1")
    assert used_at is not None
    # Expired and back months later: no second trial.
    await db.execute("UPDATE users SET subscription_until = now() - interval '90 days' WHERE id = 1")
    async with db.acquire() as conn, conn.transaction():
        assert await grant_trial(conn, 1, 7) is None
    assert await _until(db) < datetime.now(UTC)
    # FREE_TRIAL_DAYS=0 means no trial at all.
    await _user(db, 2)
    assert await start_trial(deps, 2, 0) is None
    assert await db.fetchval("SELECT trial_used_at FROM users WHERE id = 2") is None


async def test_the_trial_is_for_users_who_never_had_a_subscription(
    db: asyncpg.Pool, deps: PanelDeps, plans: Plans
) -> None:
    month = plans.get("1m")
    assert month is not None
    await _user(db, 1, balance_kop=month.price)
    async with db.acquire() as conn, conn.transaction():
        await buy(conn, 1, month, "purchase:1:first")
    paid_until = await _until(db)
    # A paying subscriber, running or lapsed, is offered no trial and cannot take one.
    for until in (paid_until, datetime.now(UTC) - 40 * DAY):
        await db.execute("UPDATE users SET subscription_until = $1 WHERE id = 1", until)
        sub = await subscription(db, 1, 7)
        assert sub is not None and not sub.trial_available
        assert await start_trial(deps, 1, 7) is None
        assert await _until(db) == until
    assert await db.fetchval("SELECT trial_used_at FROM users WHERE id = 1") is None
    # Days from a promo code are a subscription too.
    await _user(db, 2)
    async with db.acquire() as conn, conn.transaction():
        await extend_subscription(conn, 2, 30)
    assert await start_trial(deps, 2, 7) is None
    # Nobody else loses it.
    await _user(db, 3)
    assert (await subscription(db, 3, 7)).trial_available  # type: ignore[union-attr]
    assert await start_trial(deps, 3, 7) is not None


async def test_limits_and_status_follow_the_latest_purchase(db: asyncpg.Pool, plans: Plans) -> None:
    await _user(db, 1, balance_kop=200_000)
    limits = await active_plan_limits(db, 1, plans)
    assert (limits.active, limits.plan_id, limits.max_configs) == (False, None, 2)
    async with db.acquire() as conn, conn.transaction():
        await grant_trial(conn, 1, 7)
    limits = await active_plan_limits(db, 1, plans)
    assert (limits.active, limits.plan_id, limits.max_configs) == (True, None, 2)  # trial: 1M's limit
    sub = await subscription(db, 1, 7)
    assert sub is not None and sub.is_trial and not sub.trial_available
    plan = plans.get("6m")
    assert plan is not None
    async with db.acquire() as conn, conn.transaction():
        await buy(conn, 1, plan, "purchase:1:x")
    limits = await active_plan_limits(db, 1, plans)
    assert (limits.active, limits.plan_id, limits.max_configs) == (True, "6m", 4)
    sub = await subscription(db, 1, 7)
    assert sub is not None and sub.active and not sub.is_trial and sub.plan_id == "6m"
    await db.execute("UPDATE users SET subscription_until = now() - interval '1 day' WHERE id = 1")
    assert not (await active_plan_limits(db, 1, plans)).active
    assert (await active_plan_limits(db, 404, plans)).max_configs == 0


async def test_auto_renew_is_set_not_toggled(db: asyncpg.Pool) -> None:
    await _user(db, 1)
    assert (await set_auto_renew(db, 1, False, 7)).auto_renew is False
    assert (await set_auto_renew(db, 1, False, 7)).auto_renew is False
    assert (await set_auto_renew(db, 1, True, 7)).auto_renew is True
    with pytest.raises(ledger.UnknownUser):
        await set_auto_renew(db, 404, True, 7)


async def test_purchase_extends_every_config_on_its_panel(
    db: asyncpg.Pool, plans: Plans, deps: PanelDeps, panel: MarzbanEmulator
) -> None:
    await _user(db, 1, balance_kop=100_000)
    await start_trial(deps, 1, 7)
    first = await create_config(deps, plans, 1)
    second = await create_config(deps, plans, 1)
    plan = plans.get("1m")
    assert plan is not None
    purchase = await purchase_plan(deps, 1, plan, "tok")
    for view in (first, second):
        user = panel.user(view.config.panel_username)
        assert user is not None and user["expire"] == int(purchase.ends_at.timestamp())
    flags = await db.fetch("SELECT needs_sync FROM configs WHERE user_id = 1")
    assert [f["needs_sync"] for f in flags] == [False, False]


async def test_a_panel_down_during_the_purchase_loses_nothing(
    db: asyncpg.Pool, plans: Plans, deps: PanelDeps, panel: MarzbanEmulator
) -> None:
    await _user(db, 1, balance_kop=100_000)
    await start_trial(deps, 1, 7)
    view = await create_config(deps, plans, 1)
    trial_end = panel.user(view.config.panel_username)["expire"]
    plan = plans.get("1m")
    assert plan is not None
    await panel.down()
    try:
        purchase = await purchase_plan(deps, 1, plan, "tok")
    finally:
        await panel.up()
    # The purchase stands; the config is queued for the janitor's repair.
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 1") == 85_000
    assert await _until(db) == purchase.ends_at
    row = await db.fetchrow("SELECT needs_sync, last_error FROM configs WHERE id = $1", view.config.id)
    assert row["needs_sync"] and row["last_error"]
    assert panel.user(view.config.panel_username)["expire"] == trial_end
    # Once the panel is back, the next sync (the janitor's repair) brings it in line.
    await sync_config_expiry(deps, 1)
    assert panel.user(view.config.panel_username)["expire"] == int(purchase.ends_at.timestamp())
    assert not await db.fetchval("SELECT needs_sync FROM configs WHERE id = $1", view.config.id)
