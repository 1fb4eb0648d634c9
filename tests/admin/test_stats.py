"""`collect_stats` on known rows, with the moment pinned so the windows are exact."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import asyncpg
from redis.asyncio import Redis

from orbit import keys
from orbit.admin.stats import collect_stats

NOW = datetime(2026, 5, 20, 15, 0, tzinfo=UTC)  # "today" began at 2026-05-20 00:00 UTC


async def user(db: asyncpg.Pool, user_id: int, created: datetime, **columns: object) -> None:
    await db.execute("INSERT INTO users (id, created_at) VALUES ($1, $2)", user_id, created)
    for name, value in columns.items():
        await db.execute(f"UPDATE users SET {name} = $2 WHERE id = $1", user_id, value)


async def payment(
    db: asyncpg.Pool, user_id: int, method: str, status: str, kop: int, confirmed: datetime | None
) -> None:
    await db.execute(
        "INSERT INTO payments (user_id, method, status, amount_kop, currency, currency_amount,"
        " credited_kop, expires_at, confirmed_at)"
        " VALUES ($1, $2, $3, $4, 'RUB', $4, $5, $6, $7)",
        user_id, method, status, kop, kop if confirmed else None, NOW + timedelta(minutes=10), confirmed,
    )  # fmt: skip


async def purchase(db: asyncpg.Pool, user_id: int, kop: int, at: datetime) -> None:
    await db.execute(
        "INSERT INTO purchases (user_id, plan_id, days, price_kop, starts_at, ends_at, created_at)"
        " VALUES ($1, '1m', 30, $2, $3::timestamptz, $3::timestamptz + interval '30 days', $3)",
        user_id, kop, at,
    )  # fmt: skip


async def test_numbers_on_known_rows(db: asyncpg.Pool) -> None:
    hour = timedelta(hours=1)
    day = timedelta(days=1)
    await user(db, 1, NOW - 2 * hour, subscription_until=NOW + 10 * day)  # new today, active
    await user(db, 2, NOW - 15 * hour - timedelta(minutes=1))  # yesterday 23:59: not new today
    await user(db, 3, NOW - 3 * day, blocked_at=NOW - day, subscription_until=NOW - hour)  # expired
    await user(db, 4, NOW - 40 * day, is_banned=True, subscription_until=NOW + hour)  # active
    await user(db, 5, NOW + hour)  # after the moment asked about: not counted

    await payment(db, 1, "ton", "confirmed", 10_000, NOW - hour)  # today
    await payment(db, 1, "ton", "confirmed", 20_000, NOW - 5 * day)  # 7 days
    await payment(db, 2, "stars", "confirmed", 30_000, NOW - 20 * day)  # 30 days
    await payment(db, 2, "cryptobot", "confirmed", 40_000, NOW - 100 * day)  # all time
    await payment(db, 3, "cryptobot", "refunded", 50_000, NOW - hour)  # not revenue
    await payment(db, 3, "ton", "pending", 7_000, None)
    await payment(db, 4, "stars", "pending", 3_000, None)
    await payment(db, 4, "ton", "expired", 9_000, None)
    await purchase(db, 1, 29_900, NOW - hour)
    await purchase(db, 2, 79_900, NOW - 10 * day)
    await purchase(db, 3, 0, NOW - 2 * day)  # an admin's free plan: counted, worth nothing
    for n, status in enumerate(("unmatched", "unmatched", "matched", "ignored")):
        await db.execute(
            "INSERT INTO ton_transactions (hash, lt, amount_nanoton, status, utime)"
            " VALUES ($1, $2, 1, $3, now())",
            f"h{n}", n, status,
        )  # fmt: skip

    stats = await collect_stats(db, now=NOW)

    u = stats.users
    assert (u.total, u.new_today, u.active, u.blocked, u.banned) == (4, 1, 2, 1, 1)
    p = stats.purchases
    assert (p.today, p.week, p.month, p.total, p.count) == (29_900, 29_900, 109_800, 109_800, 3)
    by_method = {r.source: (r.today, r.week, r.month, r.total, r.count) for r in stats.topups}
    assert by_method == {
        "ton": (10_000, 30_000, 30_000, 30_000, 2),
        "stars": (0, 0, 30_000, 30_000, 1),
        "cryptobot": (0, 0, 0, 40_000, 1),
    }
    assert [r.source for r in stats.topups] == ["ton", "stars", "cryptobot"]
    t = stats.topups_total
    assert (t.today, t.week, t.month, t.total, t.count) == (10_000, 30_000, 60_000, 100_000, 4)
    assert (stats.pending_payments, stats.pending_kop) == (2, 10_000)
    assert stats.unmatched_ton == 2


async def test_empty_database(db: asyncpg.Pool) -> None:
    stats = await collect_stats(db)
    assert stats.users.total == 0
    assert stats.purchases.total == 0 and stats.purchases.count == 0
    assert [(r.source, r.total) for r in stats.topups] == [("ton", 0), ("stars", 0), ("cryptobot", 0)]
    assert (stats.pending_payments, stats.unmatched_ton) == (0, 0)


async def test_growth_trials_churn_plans_and_instance_load(db: asyncpg.Pool, redis: Redis) -> None:
    hour = timedelta(hours=1)
    day = timedelta(days=1)
    await user(db, 1, NOW - 2 * hour, trial_used_at=NOW - hour, subscription_until=NOW + 6 * day)
    await user(db, 2, NOW - 3 * day, trial_used_at=NOW - 3 * day, subscription_until=NOW + 20 * day)
    await purchase(db, 2, 29_900, NOW - 2 * day)  # the trial converted: 1m, running
    await user(db, 3, NOW - 20 * day, trial_used_at=NOW - 20 * day, subscription_until=NOW - 5 * day)
    await user(db, 4, NOW - 60 * day, subscription_until=NOW - 20 * day)  # churned 20 days ago
    await user(db, 5, NOW - 50 * day, subscription_until=NOW + 80 * day)
    for user_id in (4, 5):
        await db.execute(
            "INSERT INTO purchases (user_id, plan_id, days, price_kop, starts_at, ends_at, created_at)"
            " SELECT $1, '3m', 90, 1, subscription_until - interval '90 days', subscription_until,"
            " subscription_until - interval '90 days' FROM users WHERE id = $1",
            user_id,
        )
    await db.execute(
        "INSERT INTO marzban_instances (id, name, base_url, username, password, is_active)"
        " VALUES ('p1', 'P1', 'http://127.0.0.1:9', 'a', 'a', true),"
        " ('p2', 'P2', 'http://127.0.0.1:8', 'a', 'a', false)"
    )
    await db.execute(
        "INSERT INTO configs (user_id, instance_id, panel_username, name, status)"
        " VALUES (1, 'p1', 'u1', 'c', 'active'), (2, 'p1', 'u2', 'c', 'active')"
    )
    await redis.zadd(keys.BALANCER_SCORES, {"p1:core": 1.5, "p1:node-a": 0.75})
    health = {"status": "up", "checked_at": str(time.time()), "users_active": "7", "nodes_usable": "2"}
    await redis.hset(keys.balancer_instance("p1"), mapping={**health, "nodes_total": "3"})

    stats = await collect_stats(db, redis, now=NOW)
    g = stats.growth
    assert (g.new_1d, g.new_7d, g.new_30d) == (1, 2, 3)
    assert (g.trials_1d, g.trials_7d, g.trials_30d, g.trials_total) == (1, 2, 3, 3)
    assert g.trials_converted == 1 and g.conversion == 1 / 3
    assert (g.churned_7d, g.churned_30d) == (1, 2)  # user 3 five days ago, user 4 twenty
    assert [(p.plan, p.count) for p in stats.active_by_plan] == [("1m", 1), ("3m", 1), ("trial", 1)]
    p1, p2 = stats.instances
    assert (p1.id, p1.configs, p1.status, p1.fresh, p1.users_active, p1.nodes_usable) == (
        "p1",
        2,
        "up",
        True,
        7,
        2,
    )
    assert [(s.node, s.score) for s in p1.scores] == [("node-a", 0.75), ("core", 1.5)]
    assert (p2.id, p2.is_active, p2.configs, p2.status, p2.scores) == ("p2", False, 0, None, [])
