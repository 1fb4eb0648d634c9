"""Outbox SQL for the sender. Each is one statement; callers own any transaction.

A row's life: `pending` → (claim) `sending` → `sent`, back to `pending` for a
retry or a deferral, or `failed`/`skipped`. While a row is `sending`,
`next_attempt_at` holds the moment it was claimed.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

from orbit.connections import fetchrow_pristine


class OutboxRow(msgspec.Struct, frozen=True):
    id: int
    chat_id: int
    kind: str
    text: str
    reply_markup: dict[str, Any] | None
    attempts: int  # including this one


# One statement: the row is claimed (and its attempt counted) in the same
# transaction that found it, so two senders never hold the same row. Rows of
# users who blocked the bot are left for SKIP_BLOCKED, rows of a cancelled broadcast
# (one written by a fan-out racing the cancel) are never sent. Notifications before
# broadcasts ($1: whether a broadcast row may be taken at all).
CLAIM = """
UPDATE outbox SET status = 'sending', attempts = attempts + 1, next_attempt_at = now()
WHERE id = (
    SELECT o.id FROM outbox o
    WHERE o.status = 'pending' AND o.next_attempt_at <= now()
      AND ($1 OR o.broadcast_id IS NULL)
      AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = o.chat_id AND u.blocked_at IS NOT NULL)
      AND (o.broadcast_id IS NULL OR NOT EXISTS (
          SELECT 1 FROM broadcasts b WHERE b.id = o.broadcast_id AND b.cancelled_at IS NOT NULL))
    ORDER BY o.broadcast_id IS NOT NULL, o.next_attempt_at, o.id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
RETURNING id, chat_id, kind, text, reply_markup, attempts
"""

MARK_SENT = """
UPDATE outbox SET status = 'sent', sent_at = now(), last_error = NULL
WHERE id = $1 AND status = 'sending'
"""

# Back to the queue after a failed attempt (the attempt stays counted).
RETRY = """
UPDATE outbox SET status = 'pending', next_attempt_at = now() + make_interval(secs => $2), last_error = $3
WHERE id = $1 AND status = 'sending'
"""

# Back to the queue without having tried (the chat was busy, a 429 pause): not an attempt.
DEFER = """
UPDATE outbox SET status = 'pending', attempts = greatest(attempts - 1, 0),
    next_attempt_at = now() + make_interval(secs => $2), last_error = coalesce($3, last_error)
WHERE id = $1 AND status = 'sending'
"""

FAIL = """
UPDATE outbox SET status = 'failed', last_error = $2
WHERE id = $1 AND status = 'sending'
"""

# The user blocked the bot: this row and everything still queued for the chat.
SKIP_CHAT = """
UPDATE outbox SET status = 'skipped', last_error = $2
WHERE chat_id = $1 AND (status = 'pending' OR (status = 'sending' AND id = $3))
"""

SKIP_BLOCKED = """
UPDATE outbox o SET status = 'skipped', last_error = 'user blocked the bot'
FROM users u
WHERE o.status = 'pending' AND u.id = o.chat_id AND u.blocked_at IS NOT NULL
"""

# A row still `sending` long after its claim belonged to a sender that died
# between claiming and marking: Telegram may or may not have delivered it.
# It is failed, never resent (at most once; see orbit/outbox/sender.py).
FAIL_STALE = """
UPDATE outbox SET status = 'failed', last_error = 'sender stopped mid-send: delivery unknown, not resent'
WHERE status = 'sending' AND next_attempt_at < now() - make_interval(secs => $1)
RETURNING id
"""

# Seconds until the next pending row is due (negative: already due), NULL when none.
NEXT_DUE = """
SELECT extract(epoch FROM min(next_attempt_at) - now())::float8 FROM outbox WHERE status = 'pending'
"""

NOTIFICATION_DUE = """
SELECT EXISTS (
    SELECT 1 FROM outbox WHERE status = 'pending' AND next_attempt_at <= now() AND broadcast_id IS NULL
)
"""


async def claim(pool: asyncpg.Pool, *, broadcasts: bool = True) -> OutboxRow | None:
    # Without the pool's reset on release: the claim has committed once its row is back,
    # and a reset failing then (Postgres shutting down) would raise and lose the row,
    # leaving it `sending` (failed as "delivery unknown" later) though it was never sent.
    record = await fetchrow_pristine(pool, CLAIM, broadcasts)
    return None if record is None else OutboxRow(**dict(record))


async def mark_sent(conn: asyncpg.Connection | asyncpg.Pool, row_id: int) -> None:
    await conn.execute(MARK_SENT, row_id)


async def retry(conn: asyncpg.Connection | asyncpg.Pool, row_id: int, delay: float, error: str) -> None:
    await conn.execute(RETRY, row_id, delay, error)


async def defer(
    conn: asyncpg.Connection | asyncpg.Pool, row_id: int, delay: float, error: str | None = None
) -> None:
    await conn.execute(DEFER, row_id, delay, error)


async def fail(conn: asyncpg.Connection | asyncpg.Pool, row_id: int, error: str) -> None:
    await conn.execute(FAIL, row_id, error)


async def skip_chat(conn: asyncpg.Connection | asyncpg.Pool, chat_id: int, row_id: int, reason: str) -> int:
    return int((await conn.execute(SKIP_CHAT, chat_id, reason, row_id)).rsplit(" ", 1)[-1])


async def skip_blocked(conn: asyncpg.Connection | asyncpg.Pool) -> int:
    return int((await conn.execute(SKIP_BLOCKED)).rsplit(" ", 1)[-1])


async def fail_stale(conn: asyncpg.Connection | asyncpg.Pool, older_than: float) -> list[int]:
    return [r["id"] for r in await conn.fetch(FAIL_STALE, older_than)]


async def next_due(conn: asyncpg.Connection | asyncpg.Pool) -> float | None:
    return await conn.fetchval(NEXT_DUE)


async def notification_due(conn: asyncpg.Connection | asyncpg.Pool) -> bool:
    """A row that is not a broadcast is due: it asks the budget at notification priority."""
    return bool(await conn.fetchval(NOTIFICATION_DUE))


# For the scrape-time gauges (orbit_outbox_depth, orbit_outbox_oldest_due_age_seconds):
# one pass over the partial index of pending rows. The host's clock, like the sender's
# pacing (next_attempt_at is set with now()).
DEPTH = """
SELECT count(*) AS pending,
       count(*) FILTER (WHERE next_attempt_at <= now()) AS due,
       coalesce(extract(epoch FROM now() - min(next_attempt_at) FILTER (WHERE next_attempt_at <= now())),
                0)::float8 AS oldest_due_age
FROM outbox WHERE status = 'pending'
"""


class Depth(msgspec.Struct, frozen=True):
    pending: int
    due: int
    oldest_due_age: float  # seconds; 0 when nothing is due


async def depth(conn: asyncpg.Connection | asyncpg.Pool) -> Depth:
    record = await conn.fetchrow(DEPTH)
    assert record is not None
    return Depth(**dict(record))
