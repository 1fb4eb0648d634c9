"""/start registration and referrals against the real database."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from orbit.users.registration import parse_referrer, referral_stats, register


async def test_first_start_creates_the_user_with_telegrams_language(db: asyncpg.Pool) -> None:
    reg = await register(db, 10, username="ann", first_name="Ann", language_code="ru-RU")
    assert reg.is_new and reg.user.id == 10 and reg.user.language == "ru"
    assert reg.user.trial_used_at is None and reg.user.auto_renew and reg.user.balance_kop == 0
    row = await db.fetchrow("SELECT username, first_name, language FROM users WHERE id = 10")
    assert dict(row) == {"username": "ann", "first_name": "Ann", "language": "ru"}


async def test_later_starts_keep_the_stored_language_and_refresh_the_profile(db: asyncpg.Pool) -> None:
    await register(db, 10, username="ann", first_name="Ann", language_code="ru")
    await db.execute("UPDATE users SET language = 'en' WHERE id = 10")  # chosen in settings
    again = await register(db, 10, username="ann2", first_name="Anna", language_code="ru")
    assert not again.is_new and again.user.language == "en"
    assert await db.fetchval("SELECT username FROM users WHERE id = 10") == "ann2"


async def test_concurrent_starts_make_one_row_and_one_new_user(db: asyncpg.Pool) -> None:
    await register(db, 1, username=None, first_name="Ref", language_code="en")
    results = await asyncio.gather(
        *(register(db, 20, username=None, first_name="B", language_code="en", referrer_id=1)
          for _ in range(12))
    )
    assert sum(r.is_new for r in results) == 1
    assert await db.fetchval("SELECT count(*) FROM users WHERE id = 20") == 1
    assert await db.fetchval("SELECT count(*) FROM referrals WHERE referee_id = 20") == 1


async def test_referrer_recorded_for_a_new_user_only(db: asyncpg.Pool) -> None:
    await register(db, 1, username=None, first_name="Ref", language_code="en")
    invited = await register(db, 2, username=None, first_name="New", language_code="en", referrer_id=1)
    assert invited.referrer_id == 1
    # An existing user following someone's link is not "invited".
    await register(db, 3, username=None, first_name="Old", language_code="en")
    later = await register(db, 3, username=None, first_name="Old", language_code="en", referrer_id=1)
    assert later.referrer_id is None
    # A second link for an invited user does not move them to another referrer.
    await register(db, 4, username=None, first_name="Other", language_code="en")
    await register(db, 2, username=None, first_name="New", language_code="en", referrer_id=4)
    rows = await db.fetch("SELECT referee_id, referrer_id FROM referrals ORDER BY referee_id")
    assert [tuple(r) for r in rows] == [(2, 1)]
    stats = await referral_stats(db, 1)
    assert (stats.invited, stats.paid, stats.earned_kop) == (1, 0, 0)


async def test_self_and_unknown_referrers_are_ignored(db: asyncpg.Pool) -> None:
    me = await register(db, 5, username=None, first_name="Me", language_code="en", referrer_id=5)
    ghost = await register(db, 6, username=None, first_name="G", language_code="en", referrer_id=999)
    assert me.is_new and me.referrer_id is None
    assert ghost.is_new and ghost.referrer_id is None
    assert await db.fetchval("SELECT count(*) FROM referrals") == 0


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ("ref_123", 123),
        (" ref_42 ", 42),
        (None, None),
        ("", None),
        ("ref_", None),
        ("ref_-5", None),
        ("ref_0", None),
        ("ref_12a", None),
        ("promo_1", None),
        ("ref_" + "9" * 30, None),
        ("ref_99999999999999999999", None),
    ],
)
def test_parse_referrer(payload: str | None, expected: int | None) -> None:
    assert parse_referrer(payload) == expected


async def test_any_name_telegram_sends_is_stored_cleaned(db: asyncpg.Pool) -> None:
    # Outside text: NUL (Postgres refuses it), controls, direction overrides, any length.
    reg = await register(
        db, 11, username="a\x00nn\u202e", first_name="A\x00nn\x1b[31m" + "x" * 500, language_code="en"
    )
    row = await db.fetchrow("SELECT username, first_name FROM users WHERE id = 11")
    assert row["username"] == "ann" and reg.user.id == 11
    assert row["first_name"].startswith("Ann [31m") and len(row["first_name"]) == 64
    await register(db, 12, username="\x00", first_name="\x00", language_code=None)
    assert tuple(await db.fetchrow("SELECT username, first_name FROM users WHERE id = 12")) == (None, "")
