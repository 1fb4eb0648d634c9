"""SQL of the admin's user card beyond the profile: referrals, granted days, refundable
payments. Functions take a connection first and never commit."""

from __future__ import annotations

from datetime import datetime

import asyncpg
import msgspec

# Who invited the user, and whom they invited (newest first, capped).
REFERRER = """
SELECT r.referrer_id AS id, u.username, r.bonus_paid_at, r.created_at
FROM referrals r JOIN users u ON u.id = r.referrer_id
WHERE r.referee_id = $1
"""
REFEREES = """
SELECT r.referee_id AS id, u.username, r.bonus_paid_at, r.created_at
FROM referrals r JOIN users u ON u.id = r.referee_id
WHERE r.referrer_id = $1
ORDER BY r.created_at DESC, r.referee_id DESC
LIMIT $2
"""
REFERRAL_TOTALS = """
SELECT (SELECT count(*) FROM referrals WHERE referrer_id = $1) AS invited,
       (SELECT coalesce(sum(amount_kop), 0) FROM ledger
        WHERE user_id = $1 AND kind = 'referral_bonus')::bigint AS bonus_kop
"""

# The end date under the user's row lock, and the one clock's now.
LOCK_SUBSCRIPTION = """
SELECT subscription_until, orbit_now() AS now FROM users WHERE id = $1 FOR UPDATE
"""
SET_SUBSCRIPTION_UNTIL = "UPDATE users SET subscription_until = $2 WHERE id = $1"


class ReferralLink(msgspec.Struct, frozen=True):
    id: int  # the other user
    username: str | None
    bonus_paid_at: datetime | None
    created_at: datetime


class Referrals(msgspec.Struct, frozen=True, kw_only=True):
    invited_by: ReferralLink | None
    invited: list[ReferralLink]  # newest first, at most the card's share
    invited_total: int
    bonus_kop: int  # referral bonuses this user earned


async def referrals(conn: asyncpg.Connection | asyncpg.Pool, user_id: int, limit: int) -> Referrals:
    by = await conn.fetchrow(REFERRER, user_id)
    totals = await conn.fetchrow(REFERRAL_TOTALS, user_id)
    assert totals is not None
    return Referrals(
        invited_by=None if by is None else ReferralLink(**dict(by)),
        invited=[ReferralLink(**dict(r)) for r in await conn.fetch(REFEREES, user_id, limit)],
        invited_total=int(totals["invited"]),
        bonus_kop=int(totals["bonus_kop"]),
    )


async def lock_subscription(conn: asyncpg.Connection, user_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(LOCK_SUBSCRIPTION, user_id)


async def set_subscription_until(conn: asyncpg.Connection, user_id: int, until: datetime) -> None:
    await conn.execute(SET_SUBSCRIPTION_UNTIL, user_id, until)
