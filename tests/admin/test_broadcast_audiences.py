"""Broadcast audiences, the optional button and the cancel, against the real schema."""

from __future__ import annotations

import asyncpg
import pytest
from redis.asyncio import Redis

from orbit.admin import errors
from orbit.admin.broadcasts import (
    audience_count,
    broadcast_progress,
    cancel_broadcast,
    check_audience,
    create_broadcast,
    parse_button,
)
from orbit.outbox import queries as outbox_q
from orbit.ui.callbacks import screen_buttons

RATE = 25.0


async def world(db: asyncpg.Pool) -> None:
    """1 active (paid), 2 expired (paid), 3 trial running, 4 trial expired, 5 never did
    anything (ru), 6 trial then bought, 7 blocked, 8 banned, 9 admin-granted days after a trial."""
    await db.execute(
        "INSERT INTO users (id, language) SELECT g, CASE WHEN g = 5 THEN 'ru' ELSE 'en' END"
        " FROM generate_series(1, 9) g"
    )
    await db.execute(
        "UPDATE users SET subscription_until = orbit_now() + interval '10 days' WHERE id IN (1, 3, 6, 9)"
    )
    await db.execute(
        "UPDATE users SET subscription_until = orbit_now() - interval '1 day' WHERE id IN (2, 4)"
    )
    await db.execute(
        "UPDATE users SET trial_used_at = orbit_now() - interval '20 days' WHERE id IN (3, 4, 6, 9)"
    )
    await db.execute("UPDATE users SET blocked_at = now() WHERE id = 7")
    await db.execute("UPDATE users SET is_banned = true WHERE id = 8")
    for user_id, status in (
        (1, "confirmed"),
        (2, "refunded"),
        (6, "confirmed"),
        (5, "pending"),
        (4, "expired"),
    ):
        await db.execute(
            "INSERT INTO payments (user_id, method, status, amount_kop, currency, currency_amount,"
            " expires_at) VALUES ($1, 'stars', $2, 10000, 'XTR', 70, now())",
            user_id, status,
        )  # fmt: skip
    for user_id, source in ((1, "balance"), (6, "balance"), (9, "admin")):
        await db.execute(
            "INSERT INTO purchases (user_id, plan_id, days, price_kop, source, starts_at, ends_at)"
            " VALUES ($1, '1m', 30, 0, $2, now(), now() + interval '30 days')",
            user_id, source,
        )  # fmt: skip


async def recipients(db: asyncpg.Pool, broadcast_id: int) -> list[int]:
    rows = await db.fetch("SELECT chat_id FROM outbox WHERE broadcast_id = $1 ORDER BY chat_id", broadcast_id)
    return [r["chat_id"] for r in rows]


@pytest.mark.parametrize(
    ("name", "language", "expected"),
    [
        ("all", None, [1, 2, 3, 4, 5, 6, 9]),
        ("active", None, [1, 3, 6, 9]),
        ("expired", None, [2, 4]),
        ("trial", None, [3, 4, 9]),
        ("never_paid", None, [3, 4, 5, 9]),
        ("never-paid", "ru", [5]),
        ("all", "en", [1, 2, 3, 4, 6, 9]),
    ],
)
async def test_each_audience_reaches_exactly_its_users(
    db: asyncpg.Pool, redis: Redis, name: str, language: str | None, expected: list[int]
) -> None:
    await world(db)
    audience = check_audience(name, language)
    assert await audience_count(db, audience) == len(expected)
    done = await create_broadcast(
        db, redis, "Hi", created_by=42, action_key="k", rate_per_second=RATE, audience=audience
    )
    assert await recipients(db, done.broadcast_id) == expected
    row = await db.fetchrow(
        "SELECT audience, language, total FROM broadcasts WHERE id = $1", done.broadcast_id
    )
    assert tuple(row) == (audience.name, language, len(expected))


async def test_the_clock_decides_who_is_active(db: asyncpg.Pool, redis: Redis) -> None:
    from orbit import clock

    await world(db)
    await clock.advance(db, 11 * 86400)  # every running subscription has ended
    assert await audience_count(db, check_audience("active")) == 0
    assert await audience_count(db, check_audience("expired")) == 6


def test_bad_audiences_and_buttons_are_refused() -> None:
    for name, language in (("everyone", None), ("all", "de"), ("", None)):
        with pytest.raises(errors.InvalidAudience):
            check_audience(name, language)
    screens = screen_buttons()
    for spec in (
        "no separator",
        "=https://x.org",
        "Open=",
        "Open=ftp://x.org",
        "Open=javascript:alert(1)",
        "Open=nowhere",
        "Open=https://x.org/a b",
        "x" * 65 + "=buy",
    ):
        with pytest.raises(errors.InvalidButton):
            parse_button(spec, screens)
    assert parse_button(" Buy now = BUY ", screens) == {
        "inline_keyboard": [[{"text": "Buy now", "callback_data": "m:buy"}]]
    }
    assert parse_button("Site=https://example.org/?a=b", screens) == {
        "inline_keyboard": [[{"text": "Site", "url": "https://example.org/?a=b"}]]
    }


async def test_button_goes_on_every_row(db: asyncpg.Pool, redis: Redis) -> None:
    await world(db)
    markup = parse_button("Plans=buy", screen_buttons())
    done = await create_broadcast(
        db, redis, "Hi", created_by=42, action_key="k", rate_per_second=RATE, reply_markup=markup
    )
    rows = await db.fetch("SELECT reply_markup FROM outbox WHERE broadcast_id = $1", done.broadcast_id)
    assert len(rows) == 7 and all(r["reply_markup"] == markup for r in rows)


async def test_cancel_stops_every_waiting_row_and_the_claim(db: asyncpg.Pool, redis: Redis) -> None:
    await world(db)
    done = await create_broadcast(db, redis, "Hi", created_by=42, action_key="k", rate_per_second=1000)
    await db.execute("UPDATE outbox SET next_attempt_at = now() - interval '1 s'")
    first = await outbox_q.claim(db)  # one row is mid-send when the cancel comes
    assert first is not None
    await db.execute(
        "UPDATE outbox SET status = 'sent' WHERE broadcast_id = $1 AND chat_id = 2", done.broadcast_id
    )
    assert await cancel_broadcast(db, done.broadcast_id, actor="42") == (False, 5)
    # A row written by a fan-out racing the cancel is never claimed.
    await db.execute(
        "INSERT INTO outbox (chat_id, kind, text, broadcast_id, dedup_key)"
        " VALUES (3, 'broadcast', 'Hi', $1, 'late')",
        done.broadcast_id,
    )
    assert await outbox_q.claim(db) is None
    p = await broadcast_progress(db, done.broadcast_id)
    assert (p.sent, p.pending, p.cancelled) == (1, 2, 5)  # the one mid-send, the late one
    assert p.cancelled_at is not None and not p.finished
    assert await cancel_broadcast(db, done.broadcast_id, actor="42") == (True, 1)
    await outbox_q.mark_sent(db, first.id)
    p = await broadcast_progress(db, done.broadcast_id)
    assert (p.sent, p.pending, p.cancelled, p.finished) == (2, 0, 6, True)
    with pytest.raises(errors.BroadcastNotFound):
        await cancel_broadcast(db, done.broadcast_id + 1, actor="42")
    # One audit row for the send, one for the (first) cancel, in their transactions.
    trail = await db.fetch("SELECT actor, action, target, before, after FROM admin_audit ORDER BY id")
    assert [(r["actor"], r["action"], r["target"]) for r in trail] == [
        ("42", "broadcast.send", f"broadcast:{done.broadcast_id}"),
        ("42", "broadcast.cancel", f"broadcast:{done.broadcast_id}"),
    ]
    assert trail[0]["after"]["recipients"] == 7 and trail[0]["after"]["audience"] == "all"
    assert trail[1]["after"] == {"cancelled": True, "not_sent": 5}
