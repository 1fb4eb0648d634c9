"""Subscription SQL: end dates, purchases, trial, auto-renewal. Callers own the transaction."""

from __future__ import annotations

from datetime import datetime

import asyncpg
import msgspec


class Due(msgspec.Struct, frozen=True):
    id: int
    instance_id: str


class Retired(msgspec.Struct, frozen=True):
    id: int
    instance_id: str
    name: str
    data_limit_bytes: int
    data_limit_reset_strategy: str

# The end date extends from the later of now and the current end, so days bought
# while a subscription is running are added to it and an expired one restarts today.
EXTEND = """
UPDATE users
SET subscription_until = greatest(coalesce(subscription_until, orbit_now()), orbit_now())
    + make_interval(days => $2)
WHERE id = $1
RETURNING subscription_until
"""

# What a purchase of `days` would end at, without changing anything.
QUOTE_END = """
SELECT greatest(coalesce(subscription_until, orbit_now()), orbit_now()) + make_interval(days => $2)
FROM users WHERE id = $1
"""

# Serializes purchases of one user, so a replayed token sees the first purchase.
LOCK_USER = """
SELECT balance_kop, subscription_until, subscription_until > orbit_now() AS running
FROM users WHERE id = $1 FOR UPDATE
"""

# The trial is granted once per account forever (`trial_used_at` is never reset), and
# only to a user who never had a subscription: every purchase, promo or admin grant
# sets `subscription_until`, and nothing sets it back to NULL.
GRANT_TRIAL = """
UPDATE users
SET trial_used_at = orbit_now(), subscription_until = orbit_now() + make_interval(days => $2)
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
SELECT u.subscription_until, u.subscription_until > orbit_now() AS active, u.trial_used_at, u.auto_renew,
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
# still leaves the janitor a record of the drift to repair. A config stopped at the
# end (`expired_at`) is live again: the sync moves its panel user's expiry forward.
FLAG_CONFIGS_FOR_SYNC = """
UPDATE configs SET needs_sync = true, usage_reset_due = usage_reset_due OR $2,
    expired_at = NULL, updated_at = now()
WHERE user_id = $1 AND deleted_at IS NULL AND status IN ('active', 'disabled')
"""

# A purchase's plan sets its traffic limit on the user's configs (the sync pushes it).
APPLY_PLAN_LIMITS = """
UPDATE configs SET data_limit_bytes = $2, data_limit_reset_strategy = $3, updated_at = now()
WHERE user_id = $1 AND deleted_at IS NULL
  AND (data_limit_bytes <> $2 OR data_limit_reset_strategy <> $3)
"""

# --- expiry and grace (orbit/subscriptions/expiry.py) -----------------------------------

# Live configs whose owner's subscription has ended (in the last 30 days: a round
# looks no further back, so it stays bounded as lapsed users pile up; a config still
# unstopped after that had a panel down for a month, and Marzban stops it at its
# `expire` anyway) and whose panel user is not stopped yet. Pending ones have no panel
# user. Driven by the users' end dates: the lateral (kept apart by OFFSET 0) probes
# each lapsed owner's configs through ix_configs_unexpired.
EXPIRY_DUE = """
SELECT c.id, c.instance_id
FROM users u
CROSS JOIN LATERAL (
    SELECT c.id, c.instance_id FROM configs c
    WHERE c.user_id = u.id AND c.deleted_at IS NULL AND c.expired_at IS NULL
      AND c.status IN ('active', 'disabled')
    OFFSET 0
) c
WHERE u.subscription_until <= orbit_now()
  AND u.subscription_until > orbit_now() - interval '30 days'
ORDER BY c.instance_id, c.id
LIMIT $1
"""
# Expired configs whose owner's grace of $2 days has passed.
RETIREMENT_DUE = """
SELECT c.id, c.instance_id
FROM users u JOIN configs c ON c.user_id = u.id
WHERE u.subscription_until <= orbit_now() - make_interval(days => $2)
  AND c.deleted_at IS NULL AND c.expired_at IS NOT NULL
ORDER BY c.instance_id, c.id
LIMIT $1
"""
_LAPSED = """
EXISTS (
    SELECT 1 FROM users u WHERE u.id = c.user_id
      AND u.subscription_until <= orbit_now() - make_interval(days => $2)
)
"""
STILL_LAPSED = f"""
SELECT {_LAPSED} FROM configs c WHERE c.id = $1 AND c.deleted_at IS NULL
"""
# Only while the owner is still lapsed: a renewal that committed meanwhile wins.
MARK_EXPIRED = f"""
UPDATE configs c SET expired_at = orbit_now(), updated_at = now()
WHERE c.id = $1 AND c.deleted_at IS NULL AND c.expired_at IS NULL AND {_LAPSED.replace("$2", "0")}
"""
MARK_RETIRED = f"""
UPDATE configs c SET status = 'deleted', deleted_at = orbit_now(), retired_at = orbit_now(),
    needs_sync = false, last_error = NULL, updated_at = now()
WHERE c.id = $1 AND c.deleted_at IS NULL AND {_LAPSED}
"""
# The configs retired after the subscription ended at $2 (those the user had then)
# that no renewal has replaced yet.
RETIRED_UNREVIVED = """
SELECT c.id, c.instance_id, c.name, c.data_limit_bytes, c.data_limit_reset_strategy
FROM configs c
WHERE c.user_id = $1 AND c.retired_at >= $2
  AND NOT EXISTS (SELECT 1 FROM configs n WHERE n.revived_from = c.id)
ORDER BY c.id
"""
COUNT_LIVE = "SELECT count(*) FROM configs WHERE user_id = $1 AND deleted_at IS NULL"
# Made in place of a retired one: pending, flagged for the repair should we die
# before provisioning it; a second revival of the same row conflicts and makes nothing.
INSERT_REVIVED = """
INSERT INTO configs (
    user_id, instance_id, panel_username, name, data_limit_bytes, data_limit_reset_strategy,
    revived_from, needs_sync, last_error
)
VALUES ($1, $2, $3, $4, $5, $6, $7, true, 'made for a renewal, not provisioned yet')
ON CONFLICT (revived_from) DO NOTHING
RETURNING id
"""
PENDING_OF_USER = """
SELECT id FROM configs WHERE user_id = $1 AND deleted_at IS NULL AND status = 'pending'
ORDER BY id
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


async def apply_plan_limits(
    conn: asyncpg.Connection, user_id: int, data_limit_bytes: int, reset_strategy: str
) -> None:
    await conn.execute(APPLY_PLAN_LIMITS, user_id, data_limit_bytes, reset_strategy)


async def expiry_due(conn: asyncpg.Connection | asyncpg.Pool, limit: int) -> list[Due]:
    return [Due(r["id"], r["instance_id"]) for r in await conn.fetch(EXPIRY_DUE, limit)]


async def retirement_due(
    conn: asyncpg.Connection | asyncpg.Pool, limit: int, grace_days: int
) -> list[Due]:
    rows = await conn.fetch(RETIREMENT_DUE, limit, grace_days)
    return [Due(r["id"], r["instance_id"]) for r in rows]


async def still_lapsed(conn: asyncpg.Connection, config_id: int, grace_days: int) -> bool:
    """The live config's owner's subscription ended more than `grace_days` ago."""
    return bool(await conn.fetchval(STILL_LAPSED, config_id, grace_days))


async def mark_expired(conn: asyncpg.Connection, config_id: int) -> bool:
    return (await conn.execute(MARK_EXPIRED, config_id)) == "UPDATE 1"


async def mark_retired(conn: asyncpg.Connection, config_id: int, grace_days: int) -> bool:
    return (await conn.execute(MARK_RETIRED, config_id, grace_days)) == "UPDATE 1"


async def retired_unrevived(
    conn: asyncpg.Connection, user_id: int, lapsed_until: datetime
) -> list[Retired]:
    rows = await conn.fetch(RETIRED_UNREVIVED, user_id, lapsed_until)
    return [Retired(**dict(r)) for r in rows]


async def count_live(conn: asyncpg.Connection, user_id: int) -> int:
    return int(await conn.fetchval(COUNT_LIVE, user_id))


async def insert_revived(
    conn: asyncpg.Connection,
    user_id: int,
    old: Retired,
    panel_username: str,
    data_limit_bytes: int,
    reset_strategy: str,
) -> int | None:
    return await conn.fetchval(
        INSERT_REVIVED, user_id, old.instance_id, panel_username, old.name,
        data_limit_bytes, reset_strategy, old.id,
    )  # fmt: skip


async def pending_of_user(conn: asyncpg.Connection | asyncpg.Pool, user_id: int) -> list[int]:
    return [r["id"] for r in await conn.fetch(PENDING_OF_USER, user_id)]
