"""`/start`: register a Telegram user once, and record who invited them."""

from __future__ import annotations

import logging
import re

import asyncpg
import msgspec

from orbit.i18n import language_for
from orbit.text import clean_text
from orbit.users import queries
from orbit.users.queries import UserRow

log = logging.getLogger(__name__)

REFERRAL_PREFIX = "ref_"
# Telegram's own limits; a longer value is not Telegram's (or is a client's bug).
FIRST_NAME_MAX = 64
USERNAME_MAX = 32
_REFERRAL_RE = re.compile(r"^ref_(\d{1,19})$")


class Registration(msgspec.Struct, frozen=True):
    user: UserRow
    is_new: bool
    referrer_id: int | None  # recorded now (only ever for a new user)


class ReferralStats(msgspec.Struct, frozen=True):
    invited: int
    paid: int  # invitees whose first top-up paid the bonus
    earned_kop: int


def parse_referrer(payload: str | None) -> int | None:
    """`ref_<telegram id>` from a /start deep link; anything else is ignored."""
    match = _REFERRAL_RE.match(payload.strip()) if payload else None
    if match is None:
        return None
    referrer = int(match.group(1))
    return referrer if 0 < referrer < 2**63 else None


def referral_payload(user_id: int) -> str:
    return f"{REFERRAL_PREFIX}{user_id}"


async def register(
    pool: asyncpg.Pool,
    user_id: int,
    *,
    username: str | None,
    first_name: str | None,
    language_code: str | None,
    referrer_id: int | None = None,
) -> Registration:
    """Create the user on their first /start (refresh the profile on later ones).

    The referrer is recorded only for a new user, never the user themselves and
    never an id we do not know; the bonus is paid on the invitee's first top-up.
    Names are outside text: stored cleaned (`orbit.text.clean_text`).
    """
    first_name = None if first_name is None else clean_text(first_name, FIRST_NAME_MAX)
    username = clean_text(username, USERNAME_MAX).strip() or None
    async with pool.acquire() as conn, conn.transaction():
        user, is_new = await queries.upsert(
            conn, user_id, username, first_name, language_for(language_code)
        )
        recorded = None
        if is_new and referrer_id is not None:
            recorded = await queries.insert_referral(conn, user_id, referrer_id)
    if is_new:
        log.info("user %d registered (referrer %s)", user_id, recorded)
    return Registration(user=user, is_new=is_new, referrer_id=recorded)


async def referral_stats(conn: asyncpg.Connection | asyncpg.Pool, user_id: int) -> ReferralStats:
    row = await queries.referral_stats(conn, user_id)
    return ReferralStats(invited=row["invited"], paid=row["paid"], earned_kop=row["earned_kop"])
