"""User SQL. Callers own the transaction."""

from __future__ import annotations

from datetime import datetime

import asyncpg
import msgspec

from orbit.connections import fetch_pristine, fetchrow_pristine


class UserRow(msgspec.Struct, frozen=True):
    id: int
    language: str
    balance_kop: int
    subscription_until: datetime | None
    trial_used_at: datetime | None
    auto_renew: bool
    blocked_at: datetime | None
    is_banned: bool
    ban_notice_sent: bool = False  # a banned user was told once: silence since


USER_COLUMNS = (
    "id, language, balance_kop, subscription_until, trial_used_at, auto_renew, blocked_at, is_banned,"
    " ban_notice_sent"
)

GET_USER = f"SELECT {USER_COLUMNS} FROM users WHERE id = $1"

GET_USERS = f"SELECT {USER_COLUMNS} FROM users WHERE id = ANY($1::bigint[])"

# The user wrote again after blocking the bot: notifications may reach them.
UNBLOCK = "UPDATE users SET blocked_at = NULL WHERE id = $1 AND blocked_at IS NOT NULL"

MARK_BLOCKED = "UPDATE users SET blocked_at = now() WHERE id = $1 AND blocked_at IS NULL"

SET_LANGUAGE = "UPDATE users SET language = $2 WHERE id = $1"

# The one notice a banned user gets: whoever flips the flag sends it.
CLAIM_BAN_NOTICE = """
UPDATE users SET ban_notice_sent = true
WHERE id = $1 AND is_banned AND NOT ban_notice_sent
RETURNING id
"""


def _row(record: asyncpg.Record | None) -> UserRow | None:
    return None if record is None else UserRow(**dict(record))


async def get_user(conn: asyncpg.Connection | asyncpg.Pool, user_id: int) -> UserRow | None:
    if isinstance(conn, asyncpg.Pool):  # every update: one round trip, no pool reset
        return _row(await fetchrow_pristine(conn, GET_USER, user_id))
    return _row(await conn.fetchrow(GET_USER, user_id))


async def get_users(pool: asyncpg.Pool, user_ids: list[int]) -> dict[int, UserRow]:
    """The rows of those ids that exist, in one round trip (no pool reset)."""
    records = await fetch_pristine(pool, GET_USERS, user_ids)
    return {r["id"]: UserRow(**dict(r)) for r in records}


async def unblock(conn: asyncpg.Connection | asyncpg.Pool, user_id: int) -> None:
    await conn.execute(UNBLOCK, user_id)


async def mark_blocked(conn: asyncpg.Connection | asyncpg.Pool, user_id: int) -> None:
    await conn.execute(MARK_BLOCKED, user_id)


async def claim_ban_notice(conn: asyncpg.Connection | asyncpg.Pool, user_id: int) -> bool:
    """True for the one caller that should tell this banned user about the ban."""
    return await conn.fetchval(CLAIM_BAN_NOTICE, user_id) is not None


async def set_language(conn: asyncpg.Connection | asyncpg.Pool, user_id: int, language: str) -> None:
    await conn.execute(SET_LANGUAGE, user_id, language)


# One statement, so concurrent /starts of one user can never make two rows; the
# language comes from Telegram only for a new row (a stored choice is kept).
# `xmax = 0` is true only for a row version this statement inserted.
UPSERT = f"""
INSERT INTO users AS u (id, username, first_name, language)
VALUES ($1, $2, $3, $4)
ON CONFLICT (id) DO UPDATE
SET username = EXCLUDED.username, first_name = EXCLUDED.first_name, last_seen_at = now()
RETURNING {", ".join("u." + c.strip() for c in USER_COLUMNS.split(","))}, (u.xmax = 0) AS inserted
"""

# Only an existing user other than the invitee can be a referrer.
INSERT_REFERRAL = """
INSERT INTO referrals (referee_id, referrer_id)
SELECT $1::bigint, $2::bigint
WHERE $1::bigint <> $2::bigint AND EXISTS (SELECT 1 FROM users WHERE id = $2::bigint)
ON CONFLICT (referee_id) DO NOTHING
RETURNING referrer_id
"""

REFERRAL_STATS = """
SELECT
    (SELECT count(*) FROM referrals WHERE referrer_id = $1) AS invited,
    (SELECT count(*) FROM referrals WHERE referrer_id = $1 AND bonus_paid_at IS NOT NULL) AS paid,
    (SELECT coalesce(sum(amount_kop), 0) FROM ledger
     WHERE user_id = $1 AND kind = 'referral_bonus') AS earned_kop
"""


async def upsert(
    conn: asyncpg.Connection,
    user_id: int,
    username: str | None,
    first_name: str | None,
    language: str,
) -> tuple[UserRow, bool]:
    """The user's row and whether this call created it."""
    record = await conn.fetchrow(UPSERT, user_id, username, first_name, language)
    assert record is not None
    fields = dict(record)
    inserted = bool(fields.pop("inserted"))
    return UserRow(**fields), inserted


async def insert_referral(conn: asyncpg.Connection, referee_id: int, referrer_id: int) -> int | None:
    return await conn.fetchval(INSERT_REFERRAL, referee_id, referrer_id)


async def referral_stats(conn: asyncpg.Connection | asyncpg.Pool, user_id: int) -> asyncpg.Record:
    record = await conn.fetchrow(REFERRAL_STATS, user_id)
    assert record is not None
    return record
