"""Every hot query is served by an index over a shop-sized database.

The tables hold a shop's worth of rows (bench/fill.py, 200,000 users: about as many
payments and ledger entries, 40,000 configs); each query on a path a user or a worker
runs all the time is planned as Postgres plans a prepared statement it has run
before (the generic plan, the one asyncpg's statement cache ends up with), and a
sequential scan of a table that grows with the users fails the test. A scan of
`marzban_instances`, `cursors` or `clock` (a handful of rows) is fine.
"""

from __future__ import annotations

import asyncpg
import pytest

from bench.fill import fill
from orbit.configs import queries as configs
from orbit.janitor import queries as janitor
from orbit.ledger import queries as ledger
from orbit.outbox import queries as outbox
from orbit.payments import queries as payments
from orbit.promos import queries as promos
from orbit.subscriptions import queries as subscriptions
from orbit.subscriptions import traffic
from orbit.users import queries as users

USERS = 200_000
# broadcasts: one row per broadcast an admin sends, not per user.
SMALL_TABLES = {"marzban_instances", "cursors", "clock", "promocodes", "broadcasts"}

# (what it serves, the SQL)
HOT = [
    ("load the user (every update)", users.GET_USER),
    ("register on /start", users.UPSERT),
    ("referral on /start", users.INSERT_REFERRAL),
    ("subscription screen", subscriptions.SUBSCRIPTION),
    ("purchase: lock the user", subscriptions.LOCK_USER),
    ("purchase: extend", subscriptions.EXTEND),
    ("purchase: insert", subscriptions.INSERT_PURCHASE),
    ("purchase: replay by key", subscriptions.PURCHASE_BY_KEY),
    ("purchase: the plan bought last", subscriptions.LATEST_PLAN),
    ("purchase: configs to extend", subscriptions.CONFIGS_TO_SYNC),
    ("ledger: apply", ledger.APPLY),
    ("config create: lock the owner", configs.LOCK_OWNER),
    ("config create: count", configs.COUNT_OF_USER),
    ("config create: made today", configs.MADE_IN_LAST_DAY),
    ("config create: insert", configs.INSERT_PENDING),
    ("config create: placed", configs.MARK_PLACED),
    ("config list", configs.LIST_OF_USER),
    ("config of its owner", configs.SELECT_OWNED),
    ("TON page: lock payments by comment", payments.LOCK_TON_BY_COMMENTS),
    ("TON page: store transfers", payments.INSERT_TON_TRANSACTIONS),
    ("payment: open ones of a user", payments.OPEN_OF_USER),
    ("payment: by external id", payments.GET_BY_EXTERNAL_ID),
    ("payment: confirm", payments.MARK_CONFIRMED),
    ("reminders", janitor.REMINDERS_DUE),
    ("renewals", janitor.RENEWALS_DUE),
    ("drift repair", janitor.DRIFTED_CONFIGS),
    ("outbox: claim", outbox.CLAIM),
    ("outbox: next due", outbox.NEXT_DUE),
    ("promo code for a user", promos.FOR_USER),
    ("expiry round", subscriptions.EXPIRY_DUE),
    ("grace round", subscriptions.RETIREMENT_DUE),
    ("expiry: still lapsed", subscriptions.STILL_LAPSED),
    ("purchase: the plan's limits", subscriptions.APPLY_PLAN_LIMITS),
    ("purchase: retired configs to revive", subscriptions.RETIRED_UNREVIVED),
    ("usage page: its configs", traffic.PAGE_CONFIGS),
    ("usage: store", configs.STORE_USAGE),
]


async def generic_plan(conn: asyncpg.Connection, sql: str) -> str:
    """EXPLAIN of the plan Postgres keeps for `sql` as a prepared statement."""
    await conn.execute("SET plan_cache_mode = force_generic_plan")
    await conn.execute(f"PREPARE hot AS {sql}")
    try:
        count = await conn.fetchval(
            "SELECT cardinality(parameter_types) FROM pg_prepared_statements WHERE name = 'hot'"
        )
        args = f"({', '.join(['NULL'] * count)})" if count else ""
        rows = await conn.fetch(f"EXPLAIN EXECUTE hot{args}")
        return "\n".join(row[0] for row in rows)
    finally:
        await conn.execute("DEALLOCATE hot")
        await conn.execute("RESET plan_cache_mode")


def sequential_scans(plan: str) -> list[str]:
    scans = []
    for line in plan.splitlines():
        if "Seq Scan on " in line:
            table = line.split("Seq Scan on ", 1)[1].split()[0]
            if table not in SMALL_TABLES:
                scans.append(table)
    return scans


@pytest.fixture
async def shop(db: asyncpg.Pool) -> asyncpg.Pool:
    async with db.acquire() as conn:
        await fill(conn, USERS)
    return db


async def test_no_hot_query_scans_a_growing_table(shop: asyncpg.Pool) -> None:
    failures = []
    async with shop.acquire() as conn:
        for name, sql in HOT:
            plan = await generic_plan(conn, sql)
            if scans := sequential_scans(plan):
                failures.append(f"{name}: sequential scan of {', '.join(scans)}\n{plan}")
    assert not failures, "\n\n".join(failures)


async def test_the_check_sees_a_sequential_scan(shop: asyncpg.Pool) -> None:
    # The test above would pass on anything if plans were never read right.
    async with shop.acquire() as conn:
        plan = await generic_plan(conn, "SELECT id FROM users WHERE first_name = $1")
    assert sequential_scans(plan) == ["users"]
