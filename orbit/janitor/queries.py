"""The janitor's SQL: finding work. Each chore's writes go through its area's functions."""

from __future__ import annotations

from datetime import datetime

import asyncpg
import msgspec

# Configs whose panel may not match the row: flagged, or still pending after a
# failed create. Recently touched rows are left to the request that touched them.
DRIFTED_CONFIGS = """
SELECT id FROM configs
WHERE (needs_sync OR status = 'pending') AND deleted_at IS NULL
  AND updated_at < now() - make_interval(secs => $2)
ORDER BY updated_at
LIMIT $1
"""

# One reminder per user, end date and window; the outbox's dedup_key makes a
# second janitor (or the next tick) a no-op.
REMINDERS_DUE = """
SELECT u.id, u.language, u.subscription_until, w.name AS window,
       'reminder:' || u.id || ':' || extract(epoch FROM u.subscription_until)::bigint
           || ':' || w.name AS dedup_key
FROM users u
CROSS JOIN LATERAL (
    SELECT CASE
        WHEN u.subscription_until <= orbit_now() THEN 'expired'
        WHEN u.subscription_until <= orbit_now() + interval '1 day' THEN '1d'
        ELSE '3d'
    END AS name
) w
WHERE u.subscription_until > orbit_now() - interval '1 day'
  AND u.subscription_until <= orbit_now() + interval '3 days'
  AND u.blocked_at IS NULL AND NOT u.is_banned
  AND NOT EXISTS (
      SELECT 1 FROM outbox o
      WHERE o.dedup_key = 'reminder:' || u.id || ':'
          || extract(epoch FROM u.subscription_until)::bigint || ':' || w.name
  )
ORDER BY u.subscription_until
LIMIT $1
"""

# Users whose subscription ends within a day with auto-renewal on and enough balance
# for the plan they bought last. Only before the end: once it has passed, nothing is
# bought without the user's press (a lapsed user who tops up is not charged for the
# old plan behind their back).
RENEWALS_DUE = """
SELECT u.id, u.language, u.subscription_until, last.plan_id
FROM users u
JOIN LATERAL (
    SELECT plan_id FROM purchases p WHERE p.user_id = u.id ORDER BY p.created_at DESC LIMIT 1
) last ON true
JOIN unnest($2::text[], $3::bigint[]) AS price(plan_id, price_kop) ON price.plan_id = last.plan_id
WHERE u.auto_renew AND NOT u.is_banned
  AND u.subscription_until <= orbit_now() + interval '1 day'
  AND u.subscription_until > orbit_now()
  AND u.balance_kop >= price.price_kop
ORDER BY u.subscription_until
LIMIT $1
"""


# A fan-out cut short by a restart: the admin's process died between batches.
UNFINISHED_BROADCASTS = """
SELECT id FROM broadcasts
WHERE queued_at IS NULL AND created_at < now() - make_interval(secs => $1)
ORDER BY id
"""


class Reminder(msgspec.Struct, frozen=True):
    id: int
    language: str
    subscription_until: datetime
    window: str
    dedup_key: str


class Renewal(msgspec.Struct, frozen=True):
    id: int
    language: str
    subscription_until: datetime
    plan_id: str


async def drifted_configs(
    conn: asyncpg.Connection | asyncpg.Pool, limit: int, settle_seconds: float
) -> list[int]:
    return [r["id"] for r in await conn.fetch(DRIFTED_CONFIGS, limit, settle_seconds)]


async def unfinished_broadcasts(
    conn: asyncpg.Connection | asyncpg.Pool, settle_seconds: float
) -> list[int]:
    return [r["id"] for r in await conn.fetch(UNFINISHED_BROADCASTS, settle_seconds)]


async def reminders_due(conn: asyncpg.Connection | asyncpg.Pool, limit: int) -> list[Reminder]:
    return [Reminder(**dict(r)) for r in await conn.fetch(REMINDERS_DUE, limit)]


async def renewals_due(
    conn: asyncpg.Connection | asyncpg.Pool, limit: int, prices: dict[str, int]
) -> list[Renewal]:
    rows = await conn.fetch(RENEWALS_DUE, limit, list(prices), list(prices.values()))
    return [Renewal(**dict(r)) for r in rows]
