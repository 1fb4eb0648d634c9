"""Admin SQL: statistics, user lookup, bans, broadcasts. Functions take a connection
first and never commit; the business functions own the transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from orbit.payments.queries import PAYMENT_COLUMNS, PaymentRow

# --- statistics ---------------------------------------------------------------------
# `$1` is the moment the numbers are "as of" (tests pin it); "today" starts at
# midnight UTC of that moment, the other windows are rolling. Sums are cast back
# to bigint (Postgres sums bigints as numeric).

_WINDOWS = """
    coalesce(sum({amount}) FILTER (
        WHERE {at} >= date_trunc('day', $1::timestamptz, 'UTC')), 0)::bigint AS today,
    coalesce(sum({amount}) FILTER (WHERE {at} >= $1::timestamptz - interval '7 days'), 0)::bigint AS week,
    coalesce(sum({amount}) FILTER (WHERE {at} >= $1::timestamptz - interval '30 days'), 0)::bigint AS month,
    coalesce(sum({amount}), 0)::bigint AS total,
    count(*) AS count
"""

USER_COUNTS = """
SELECT count(*) AS total,
       count(*) FILTER (WHERE created_at >= date_trunc('day', $1::timestamptz, 'UTC')) AS new_today,
       count(*) FILTER (WHERE subscription_until > $1::timestamptz) AS active,
       count(*) FILTER (WHERE blocked_at IS NOT NULL) AS blocked,
       count(*) FILTER (WHERE is_banned) AS banned
FROM users
WHERE created_at <= $1::timestamptz
"""

# Confirmed top-ups by method; refunded ones gave the money back and are not revenue.
TOPUP_REVENUE = f"""
SELECT method AS source, {_WINDOWS.format(amount="credited_kop", at="confirmed_at")}
FROM payments
WHERE status = 'confirmed' AND confirmed_at <= $1::timestamptz
GROUP BY method
"""

PURCHASE_REVENUE = f"""
SELECT 'purchases' AS source, {_WINDOWS.format(amount="price_kop", at="created_at")}
FROM purchases
WHERE created_at <= $1::timestamptz
"""

# New users and trials started in rolling windows; trial-to-paid: of the users who
# took the trial, those who bought a plan after it (an admin's grant is no sale).
GROWTH = """
SELECT count(*) FILTER (WHERE created_at > $1::timestamptz - interval '1 day') AS new_1d,
       count(*) FILTER (WHERE created_at > $1::timestamptz - interval '7 days') AS new_7d,
       count(*) FILTER (WHERE created_at > $1::timestamptz - interval '30 days') AS new_30d,
       count(*) FILTER (WHERE trial_used_at > $1::timestamptz - interval '1 day') AS trials_1d,
       count(*) FILTER (WHERE trial_used_at > $1::timestamptz - interval '7 days') AS trials_7d,
       count(*) FILTER (WHERE trial_used_at > $1::timestamptz - interval '30 days') AS trials_30d,
       count(*) FILTER (WHERE trial_used_at IS NOT NULL) AS trials_total,
       count(*) FILTER (WHERE trial_used_at IS NOT NULL AND EXISTS (
           SELECT 1 FROM purchases p
           WHERE p.user_id = users.id AND p.source <> 'admin' AND p.created_at >= users.trial_used_at
       )) AS trials_converted,
       -- Churn: a subscription ended in the window and was not renewed (it would end later).
       count(*) FILTER (WHERE subscription_until <= $1::timestamptz
                        AND subscription_until > $1::timestamptz - interval '7 days') AS churned_7d,
       count(*) FILTER (WHERE subscription_until <= $1::timestamptz
                        AND subscription_until > $1::timestamptz - interval '30 days') AS churned_30d
FROM users
WHERE created_at <= $1::timestamptz
"""

# Running subscriptions by the plan of their latest purchase ('trial': none bought).
ACTIVE_BY_PLAN = """
SELECT coalesce(last.plan_id, 'trial') AS plan, count(*) AS count
FROM users u
LEFT JOIN LATERAL (
    SELECT plan_id FROM purchases p WHERE p.user_id = u.id ORDER BY p.ends_at DESC, p.id DESC LIMIT 1
) last ON true
WHERE u.subscription_until > $1::timestamptz
GROUP BY 1
ORDER BY 1
"""

PENDING_PAYMENTS = """
SELECT count(*) AS count, coalesce(sum(amount_kop), 0)::bigint AS amount_kop
FROM payments WHERE status = 'pending'
"""

UNMATCHED_TON = "SELECT count(*) FROM ton_transactions WHERE status = 'unmatched'"

# --- users ---------------------------------------------------------------------------

FIND_BY_USERNAME = """
SELECT id FROM users WHERE lower(username) = lower($1) ORDER BY last_seen_at DESC LIMIT 1
"""
USER_EXISTS = "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)"

PROFILE = """
SELECT id, username, first_name, language, balance_kop, subscription_until, trial_used_at,
       auto_renew, blocked_at, is_banned, created_at, last_seen_at
FROM users WHERE id = $1
"""

RECENT_PAYMENTS = f"""
SELECT {PAYMENT_COLUMNS} FROM payments WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2
"""

# The admin view of the ledger carries the note (who adjusted it and why).
LEDGER_TAIL = """
SELECT id, amount_kop, balance_after_kop, kind, note, created_at
FROM ledger WHERE user_id = $1 ORDER BY id DESC LIMIT $2
"""

SET_BANNED = """
UPDATE users u SET is_banned = $2
FROM (SELECT id, is_banned AS was FROM users WHERE id = $1 FOR UPDATE) old
WHERE u.id = old.id
RETURNING old.was
"""

# A ban (or unban) changes what every live config's panel user must be: flagged in the
# ban's transaction, so a panel that cannot be told at once is repaired by the janitor.
FLAG_USER_CONFIGS = """
UPDATE configs SET needs_sync = true, updated_at = now()
WHERE user_id = $1 AND deleted_at IS NULL AND status IN ('active', 'disabled')
"""

# --- broadcasts ------------------------------------------------------------------------

# Who a broadcast goes to: never who blocked the bot or is banned; then the audience
# (a fixed word, checked in orbit/admin/broadcasts.py) and an optional language.
# One static statement per use (prepared once), the audience chosen by CASE:
# `{audience}` and `{language}` name the SQL values holding them.
# - trial: took the free trial and never bought a plan (an admin's grant is no sale);
# - never_paid: no payment ever confirmed (a refunded one was paid, too).
_AUDIENCE_MATCH = """
u.blocked_at IS NULL AND NOT u.is_banned
AND ({language}::text IS NULL OR u.language = {language}::text)
AND CASE {audience}::text
    WHEN 'all' THEN true
    WHEN 'active' THEN coalesce(u.subscription_until > orbit_now(), false)
    WHEN 'expired' THEN coalesce(u.subscription_until <= orbit_now(), false)
    WHEN 'trial' THEN u.trial_used_at IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM purchases p WHERE p.user_id = u.id AND p.source <> 'admin')
    WHEN 'never_paid' THEN NOT EXISTS (
        SELECT 1 FROM payments p WHERE p.user_id = u.id AND p.status IN ('confirmed', 'refunded'))
    ELSE false
END
"""

AUDIENCE_COUNT = "SELECT count(*) FROM users u WHERE " + _AUDIENCE_MATCH.format(audience="$1", language="$2")

INSERT_BROADCAST = (
    """
INSERT INTO broadcasts (text, created_by, idempotency_key, audience, language, reply_markup, total)
VALUES ($1, $2, $3, $4, $5, $6::jsonb, (SELECT count(*) FROM users u WHERE """
    + _AUDIENCE_MATCH.format(audience="$4", language="$5")
    + """))
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING id
"""
)
BROADCAST_BY_KEY = "SELECT id FROM broadcasts WHERE idempotency_key = $1"
BROADCAST_TOTAL = "SELECT total FROM broadcasts WHERE id = $1"

# One batch of the fan-out: the next `$3` recipients after user id `$2`, in id
# order, so the highest chat id queued so far is where an interrupted fan-out
# resumes. Users who joined after the broadcast was made are not its audience; a
# cancelled broadcast queues nothing more.
# Rows are scheduled at `$4` per second from the broadcast's creation (`$5` rows
# were queued before this batch), leaving the sender room for the notifications
# that arrive meanwhile (a payment confirmation must not wait behind 10,000 rows).
FAN_OUT_BATCH = (
    """
WITH b AS (
    SELECT id, text, created_at, audience, language, reply_markup
    FROM broadcasts WHERE id = $1 AND cancelled_at IS NULL
), batch AS (
    SELECT u.id, row_number() OVER (ORDER BY u.id) AS n
    FROM users u, b
    WHERE u.id > $2 AND u.created_at <= b.created_at AND """
    + _AUDIENCE_MATCH.format(audience="b.audience", language="b.language")
    + """
    ORDER BY u.id
    LIMIT $3
), queued AS (
    INSERT INTO outbox (chat_id, kind, text, reply_markup, broadcast_id, dedup_key, next_attempt_at)
    SELECT batch.id, 'broadcast', b.text, b.reply_markup, b.id, 'broadcast:' || b.id || ':' || batch.id,
           greatest(now(), b.created_at + make_interval(secs => ($5 + batch.n) / $4::float8))
    FROM batch, b
    ON CONFLICT (dedup_key) DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM batch) AS scanned,
       (SELECT max(id) FROM batch) AS last_id,
       (SELECT count(*) FROM queued) AS queued
"""
)

# Where an interrupted fan-out resumes, and how many rows it wrote so far.
FAN_OUT_POSITION = """
SELECT coalesce(max(chat_id), 0) AS last_id, count(*) AS queued FROM outbox WHERE broadcast_id = $1
"""

FINISH_BROADCAST = """
UPDATE broadcasts SET total = (SELECT count(*) FROM outbox WHERE broadcast_id = $1),
    queued_at = coalesce(queued_at, now())
WHERE id = $1
RETURNING total
"""

# A cancel: the broadcast is marked (the fan-out stops, the sender's claim passes its
# rows over) and every row still waiting becomes `cancelled`, in one transaction.
CANCEL_BROADCAST = """
UPDATE broadcasts b SET cancelled_at = coalesce(b.cancelled_at, now())
FROM (SELECT id, cancelled_at AS was FROM broadcasts WHERE id = $1 FOR UPDATE) old
WHERE b.id = old.id
RETURNING old.was IS NOT NULL AS already
"""
CANCEL_ROWS = """
UPDATE outbox SET status = 'cancelled', last_error = 'broadcast cancelled'
WHERE broadcast_id = $1 AND status = 'pending'
"""
# After a fan-out: rows a batch wrote while the cancel committed are cancelled too
# (the sender's claim would pass them over, but they would stay due forever).
CANCEL_LATE_ROWS = """
UPDATE outbox SET status = 'cancelled', last_error = 'broadcast cancelled'
WHERE broadcast_id = $1 AND status = 'pending'
  AND EXISTS (SELECT 1 FROM broadcasts WHERE id = $1 AND cancelled_at IS NOT NULL)
"""

_PROGRESS_COLUMNS = """
       b.id, b.text, b.created_by, b.created_at, b.queued_at, b.cancelled_at, b.audience, b.language,
       b.total,
       count(o.id) FILTER (WHERE o.status = 'sent') AS sent,
       count(o.id) FILTER (WHERE o.status IN ('pending', 'sending')) AS pending,
       count(o.id) FILTER (WHERE o.status = 'failed') AS failed,
       count(o.id) FILTER (WHERE o.status = 'skipped') AS skipped,
       count(o.id) FILTER (WHERE o.status = 'cancelled') AS cancelled
"""

PROGRESS = f"""
SELECT {_PROGRESS_COLUMNS}
FROM broadcasts b LEFT JOIN outbox o ON o.broadcast_id = b.id
WHERE b.id = $1
GROUP BY b.id
"""

RECENT_BROADCASTS = f"""
SELECT {_PROGRESS_COLUMNS}
FROM (SELECT * FROM broadcasts ORDER BY id DESC LIMIT $1) b LEFT JOIN outbox o ON o.broadcast_id = b.id
GROUP BY b.id, b.text, b.created_by, b.created_at, b.queued_at, b.cancelled_at, b.audience,
         b.language, b.total
ORDER BY b.id DESC
"""


class UserCounts(msgspec.Struct, frozen=True):
    total: int
    new_today: int
    active: int  # subscription running now
    blocked: int  # blocked the bot
    banned: int


class Growth(msgspec.Struct, frozen=True, kw_only=True):
    new_1d: int
    new_7d: int
    new_30d: int
    trials_1d: int
    trials_7d: int
    trials_30d: int
    trials_total: int
    trials_converted: int  # took the trial, then bought a plan
    churned_7d: int  # a subscription ended in the window and was not renewed
    churned_30d: int

    @property
    def conversion(self) -> float | None:
        """Trial-to-paid share, 0..1 (None before any trial)."""
        return self.trials_converted / self.trials_total if self.trials_total else None


class PlanCount(msgspec.Struct, frozen=True):
    plan: str
    count: int


class Revenue(msgspec.Struct, frozen=True):
    """Kopecks in each window: today (UTC), 7 days, 30 days, all time."""

    source: str  # purchases, or a top-up method: ton, stars, cryptobot
    today: int
    week: int
    month: int
    total: int
    count: int  # rows over all time


class Profile(msgspec.Struct, frozen=True):
    id: int
    username: str | None
    first_name: str | None
    language: str
    balance_kop: int
    subscription_until: datetime | None
    trial_used_at: datetime | None
    auto_renew: bool
    blocked_at: datetime | None
    is_banned: bool
    created_at: datetime
    last_seen_at: datetime


class LedgerLine(msgspec.Struct, frozen=True):
    id: int
    amount_kop: int
    balance_after_kop: int
    kind: str
    note: str | None
    created_at: datetime


class FanOutBatch(msgspec.Struct, frozen=True):
    scanned: int
    last_id: int | None
    queued: int


class Progress(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    text: str
    created_by: int
    created_at: datetime
    queued_at: datetime | None  # None: the fan-out has not finished (or was cut short)
    cancelled_at: datetime | None
    audience: str
    language: str | None
    total: int  # recipients: the audience when made, the rows written once queued
    sent: int
    pending: int  # left: queued, not sent yet
    failed: int
    skipped: int  # the user blocked the bot
    cancelled: int  # not sent: the broadcast was cancelled

    @property
    def finished(self) -> bool:
        """Nothing left to send: every row written and answered, or the broadcast cancelled."""
        return self.pending == 0 and (self.queued_at is not None or self.cancelled_at is not None)


async def user_counts(conn: asyncpg.Connection | asyncpg.Pool, now: datetime) -> UserCounts:
    record = await conn.fetchrow(USER_COUNTS, now)
    assert record is not None
    return UserCounts(**dict(record))


async def growth(conn: asyncpg.Connection | asyncpg.Pool, now: datetime) -> Growth:
    record = await conn.fetchrow(GROWTH, now)
    assert record is not None
    return Growth(**dict(record))


async def active_by_plan(conn: asyncpg.Connection | asyncpg.Pool, now: datetime) -> list[PlanCount]:
    return [PlanCount(r["plan"], r["count"]) for r in await conn.fetch(ACTIVE_BY_PLAN, now)]


async def revenue(conn: asyncpg.Connection | asyncpg.Pool, now: datetime) -> list[Revenue]:
    purchases = await conn.fetch(PURCHASE_REVENUE, now)
    topups = await conn.fetch(TOPUP_REVENUE, now)
    return [Revenue(**dict(r)) for r in [*purchases, *topups]]


async def pending_payments(conn: asyncpg.Connection | asyncpg.Pool) -> tuple[int, int]:
    """(count, kopecks asked) of payments still pending."""
    record = await conn.fetchrow(PENDING_PAYMENTS)
    assert record is not None
    return int(record["count"]), int(record["amount_kop"])


async def unmatched_ton(conn: asyncpg.Connection | asyncpg.Pool) -> int:
    return int(await conn.fetchval(UNMATCHED_TON))


async def find_by_username(conn: asyncpg.Connection | asyncpg.Pool, username: str) -> int | None:
    return await conn.fetchval(FIND_BY_USERNAME, username)


async def user_exists(conn: asyncpg.Connection | asyncpg.Pool, user_id: int) -> bool:
    return bool(await conn.fetchval(USER_EXISTS, user_id))


async def profile(conn: asyncpg.Connection | asyncpg.Pool, user_id: int) -> Profile | None:
    record = await conn.fetchrow(PROFILE, user_id)
    return None if record is None else Profile(**dict(record))


async def recent_payments(
    conn: asyncpg.Connection | asyncpg.Pool, user_id: int, limit: int
) -> list[PaymentRow]:
    return [PaymentRow(**dict(r)) for r in await conn.fetch(RECENT_PAYMENTS, user_id, limit)]


async def ledger_tail(conn: asyncpg.Connection | asyncpg.Pool, user_id: int, limit: int) -> list[LedgerLine]:
    return [LedgerLine(**dict(r)) for r in await conn.fetch(LEDGER_TAIL, user_id, limit)]


async def flag_user_configs(conn: asyncpg.Connection, user_id: int) -> None:
    await conn.execute(FLAG_USER_CONFIGS, user_id)


async def set_banned(conn: asyncpg.Connection, user_id: int, banned: bool) -> bool | None:
    """The previous value (None for an unknown user)."""
    return await conn.fetchval(SET_BANNED, user_id, banned)


async def audience_count(conn: asyncpg.Connection | asyncpg.Pool, audience: str, language: str | None) -> int:
    return int(await conn.fetchval(AUDIENCE_COUNT, audience, language))


async def insert_broadcast(
    conn: asyncpg.Connection,
    text: str,
    created_by: int,
    key: str,
    audience: str,
    language: str | None,
    reply_markup: dict[str, Any] | None,
) -> int | None:
    """The new broadcast's id, or None when `key` made one already."""
    return await conn.fetchval(INSERT_BROADCAST, text, created_by, key, audience, language, reply_markup)


async def cancel_broadcast(conn: asyncpg.Connection, broadcast_id: int) -> tuple[bool, int] | None:
    """(was already cancelled, rows cancelled now); None for an unknown broadcast."""
    already = await conn.fetchval(CANCEL_BROADCAST, broadcast_id)
    if already is None:
        return None
    done = await conn.execute(CANCEL_ROWS, broadcast_id)
    return bool(already), int(done.rsplit(" ", 1)[-1])


async def cancel_late_rows(conn: asyncpg.Connection | asyncpg.Pool, broadcast_id: int) -> None:
    await conn.execute(CANCEL_LATE_ROWS, broadcast_id)


async def recent_broadcasts(conn: asyncpg.Connection | asyncpg.Pool, limit: int) -> list[Progress]:
    return [Progress(**dict(r)) for r in await conn.fetch(RECENT_BROADCASTS, limit)]


async def broadcast_total(conn: asyncpg.Connection | asyncpg.Pool, broadcast_id: int) -> int:
    return int(await conn.fetchval(BROADCAST_TOTAL, broadcast_id) or 0)


async def broadcast_by_key(conn: asyncpg.Connection | asyncpg.Pool, key: str) -> int | None:
    return await conn.fetchval(BROADCAST_BY_KEY, key)


async def fan_out_batch(
    conn: asyncpg.Connection,
    broadcast_id: int,
    after_id: int,
    limit: int,
    rate_per_second: float,
    queued_before: int,
) -> FanOutBatch:
    record = await conn.fetchrow(FAN_OUT_BATCH, broadcast_id, after_id, limit, rate_per_second, queued_before)
    assert record is not None
    return FanOutBatch(**dict(record))


async def fan_out_position(conn: asyncpg.Connection | asyncpg.Pool, broadcast_id: int) -> tuple[int, int]:
    """(highest chat id queued, rows queued) of a broadcast."""
    record = await conn.fetchrow(FAN_OUT_POSITION, broadcast_id)
    assert record is not None
    return int(record["last_id"]), int(record["queued"])


async def finish_broadcast(conn: asyncpg.Connection | asyncpg.Pool, broadcast_id: int) -> int | None:
    return await conn.fetchval(FINISH_BROADCAST, broadcast_id)


async def progress(conn: asyncpg.Connection | asyncpg.Pool, broadcast_id: int) -> Progress | None:
    record = await conn.fetchrow(PROGRESS, broadcast_id)
    return None if record is None else Progress(**dict(record))
