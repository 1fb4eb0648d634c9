"""Subscription SQL: end dates, purchases, trial, auto-renewal. Callers own the transaction."""

from __future__ import annotations

from datetime import datetime

import asyncpg

# The end date extends from the later of now and the current end, so days bought
# while a subscription is running are added to it and an expired one restarts today.
EXTEND = """
UPDATE users
SET subscription_until = greatest(coalesce(subscription_until, now()), now()) + make_interval(days => $2)
WHERE id = $1
RETURNING subscription_until
"""

# What a purchase of `days` would end at, without changing anything.
QUOTE_END = """
SELECT greatest(coalesce(subscription_until, now()), now()) + make_interval(days => $2)
FROM users WHERE id = $1
"""

# Serializes purchases of one user, so a replayed token sees the first purchase.
LOCK_USER = """
SELECT balance_kop, subscription_until, subscription_until > now() AS running
FROM users WHERE id = $1 FOR UPDATE
"""

# The trial is granted once per account forever (`trial_used_at` is never reset), and
# only to a user who never had a subscription: every purchase, promo or admin grant
# sets `subscription_until`, and nothing sets it back to NULL.
GRANT_TRIAL = """
UPDATE users
SET trial_used_at = now(), subscription_until = now() + make_interval(days => $2)
WHERE id = $1 AND trial_used_at IS NULL AND subscription_until IS NULL
RETURNING subscription_until
"""

INSERT_PURCHASE = """
INSERT INTO purchases (user_id, plan_id, days, price_kop, source, starts_at, ends_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING id
"""

# The purchase a ledger idempotency key already paid for (a double press, a retry).
PURCHASE_BY_KEY = """
SELECT p.id, p.plan_id, p.days, p.price_kop, p.starts_at, p.ends_at, l.balance_after_kop
FROM ledger l JOIN purchases p ON p.id = l.purchase_id
WHERE l.idempotency_key = $1
"""

LATEST_PLAN = """
SELECT plan_id FROM purchases WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1
"""

SUBSCRIPTION = """
SELECT u.subscription_until, u.subscription_until > now() AS active, u.trial_used_at, u.auto_renew,
       (SELECT plan_id FROM purchases p WHERE p.user_id = u.id
        ORDER BY p.created_at DESC, p.id DESC LIMIT 1) AS plan_id
FROM users u WHERE u.id = $1
"""

SET_AUTO_RENEW = "UPDATE users SET auto_renew = $2 WHERE id = $1 RETURNING auto_renew"

# Configs whose panel expiry must follow the subscription. Pending ones are not on a
# panel yet (provisioning gives them the end date it reads when it creates them).
CONFIGS_TO_SYNC = """
SELECT id FROM configs
WHERE user_id = $1 AND deleted_at IS NULL AND status IN ('active', 'disabled')
ORDER BY id
"""

# Flagged in the purchase's transaction, so a crash before the panels are told
# still leaves the janitor a record of the drift to repair.
FLAG_CONFIGS_FOR_SYNC = """
UPDATE configs SET needs_sync = true, usage_reset_due = usage_reset_due OR $2,
    updated_at = now()
WHERE user_id = $1 AND deleted_at IS NULL AND status IN ('active', 'disabled')
"""

async def extend(conn: asyncpg.Connection, user_id: int, days: int) -> datetime | None:
    return await conn.fetchval(EXTEND, user_id, days)


async def quote_end(conn: asyncpg.Connection | asyncpg.Pool, user_id: int, days: int) -> datetime | None:
    return await conn.fetchval(QUOTE_END, user_id, days)


async def lock_user(conn: asyncpg.Connection, user_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(LOCK_USER, user_id)


async def grant_trial(conn: asyncpg.Connection, user_id: int, days: int) -> datetime | None:
    return await conn.fetchval(GRANT_TRIAL, user_id, days)


async def insert_purchase(
    conn: asyncpg.Connection,
    user_id: int,
    plan_id: str,
    days: int,
    price_kop: int,
    source: str,
    starts_at: datetime,
    ends_at: datetime,
) -> int:
    return await conn.fetchval(
        INSERT_PURCHASE, user_id, plan_id, days, price_kop, source, starts_at, ends_at
    )


async def purchase_by_key(conn: asyncpg.Connection, key: str) -> asyncpg.Record | None:
    return await conn.fetchrow(PURCHASE_BY_KEY, key)


async def latest_plan(conn: asyncpg.Connection | asyncpg.Pool, user_id: int) -> str | None:
    return await conn.fetchval(LATEST_PLAN, user_id)


async def subscription(conn: asyncpg.Connection | asyncpg.Pool, user_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(SUBSCRIPTION, user_id)


async def set_auto_renew(conn: asyncpg.Connection | asyncpg.Pool, user_id: int, on: bool) -> bool | None:
    return await conn.fetchval(SET_AUTO_RENEW, user_id, on)


async def configs_to_sync(conn: asyncpg.Connection | asyncpg.Pool, user_id: int) -> list[int]:
    return [r["id"] for r in await conn.fetch(CONFIGS_TO_SYNC, user_id)]


async def flag_configs_for_sync(
    conn: asyncpg.Connection, user_id: int, *, reset_usage: bool = False
) -> None:
    """`reset_usage`: the sync also zeroes each config's used traffic on its panel."""
    await conn.execute(FLAG_CONFIGS_FOR_SYNC, user_id, reset_usage)
