"""Broadcast fan-out into the outbox, its idempotency, resumption and progress."""

from __future__ import annotations

import asyncpg
import pytest
from redis.asyncio import Redis

from orbit import keys
from orbit.admin import errors
from orbit.admin.broadcasts import (
    audience_count,
    broadcast_progress,
    check_text,
    create_broadcast,
    resume_broadcast,
)

RATE = 25.0


async def users(db: asyncpg.Pool, count: int, *, start: int = 1) -> None:
    await db.execute(
        "INSERT INTO users (id) SELECT g FROM generate_series($1::bigint, $2::bigint) g",
        start,
        start + count - 1,
    )


async def recipients(db: asyncpg.Pool, broadcast_id: int) -> list[int]:
    rows = await db.fetch("SELECT chat_id FROM outbox WHERE broadcast_id = $1 ORDER BY chat_id", broadcast_id)
    return [r["chat_id"] for r in rows]


async def test_fan_out_skips_blocked_and_banned_in_batches(db: asyncpg.Pool, redis: Redis) -> None:
    await users(db, 25)
    await db.execute("UPDATE users SET blocked_at = now() WHERE id IN (3, 4)")
    await db.execute("UPDATE users SET is_banned = true WHERE id IN (5, 24)")
    assert await audience_count(db) == 21
    wakeups = redis.pubsub()
    await wakeups.subscribe(keys.channel(redis, keys.OUTBOX_CHANNEL))
    assert (await wakeups.get_message(timeout=5))["type"] == "subscribe"

    done = await create_broadcast(
        db, redis, "Hello &amp; welcome", created_by=42, action_key="k1", rate_per_second=RATE, batch_size=4
    )

    expected = [n for n in range(1, 26) if n not in (3, 4, 5, 24)]
    assert (done.queued, done.replayed) == (21, False)
    assert await recipients(db, done.broadcast_id) == expected
    rows = await db.fetch(
        "SELECT kind, text, status, dedup_key, next_attempt_at FROM outbox"
        " WHERE broadcast_id = $1 ORDER BY chat_id",
        done.broadcast_id,
    )
    assert {(r["kind"], r["text"], r["status"]) for r in rows} == {
        ("broadcast", "Hello &amp; welcome", "pending")
    }
    assert rows[0]["dedup_key"] == f"broadcast:{done.broadcast_id}:1"
    # Spread over time at a share of the sender's rate, in recipient order.
    times = [r["next_attempt_at"] for r in rows]
    assert times == sorted(times)
    spread = (times[-1] - times[0]).total_seconds()
    assert 20 / RATE <= spread <= 20 / (RATE * 0.5)
    broadcast = await db.fetchrow("SELECT * FROM broadcasts WHERE id = $1", done.broadcast_id)
    assert (broadcast["created_by"], broadcast["total"], broadcast["idempotency_key"]) == (42, 21, "k1")
    assert broadcast["queued_at"] is not None
    # The sender was woken once per batch that queued something.
    woken = 0
    while await wakeups.get_message(timeout=0.5) is not None:
        woken += 1
    assert woken == 6
    await wakeups.aclose()


async def test_second_press_makes_no_second_broadcast(db: asyncpg.Pool, redis: Redis) -> None:
    await users(db, 3)
    first = await create_broadcast(db, redis, "Hi", created_by=42, action_key="k1", rate_per_second=RATE)
    await users(db, 2, start=10)
    again = await create_broadcast(db, redis, "Hi", created_by=42, action_key="k1", rate_per_second=RATE)
    assert (again.broadcast_id, again.queued, again.replayed) == (first.broadcast_id, 3, True)
    assert await db.fetchval("SELECT count(*) FROM broadcasts") == 1
    assert await db.fetchval("SELECT count(*) FROM outbox") == 3
    # A new action is a new broadcast, now reaching the users who joined since.
    other = await create_broadcast(db, redis, "Hi", created_by=42, action_key="k2", rate_per_second=RATE)
    assert other.queued == 5


async def test_interrupted_fan_out_resumes_without_duplicates(db: asyncpg.Pool, redis: Redis) -> None:
    await users(db, 10)
    # A fan-out cut short after the users up to 4 were queued: the broadcast row
    # exists, it is not marked queued.
    broadcast_id = await db.fetchval(
        "INSERT INTO broadcasts (text, created_by, idempotency_key) VALUES ('Hi', 42, 'k1') RETURNING id"
    )
    for chat_id in range(1, 5):
        await db.execute(
            "INSERT INTO outbox (chat_id, kind, text, broadcast_id, dedup_key)"
            " VALUES ($1, 'broadcast', 'Hi', $2, $3)",
            chat_id, broadcast_id, f"broadcast:{broadcast_id}:{chat_id}",
        )  # fmt: skip
    await users(db, 1, start=11)  # joined after the broadcast was made: not its audience
    progress = await broadcast_progress(db, broadcast_id)
    assert progress.queued_at is None and progress.pending == 4

    done = await resume_broadcast(db, redis, broadcast_id, rate_per_second=RATE, batch_size=3)
    assert (done.queued, done.replayed) == (10, False)
    assert await recipients(db, broadcast_id) == list(range(1, 11))
    again = await resume_broadcast(db, redis, broadcast_id, rate_per_second=RATE)
    assert (again.queued, again.replayed) == (10, True)
    assert await recipients(db, broadcast_id) == list(range(1, 11))
    with pytest.raises(errors.BroadcastNotFound):
        await resume_broadcast(db, redis, broadcast_id + 1, rate_per_second=RATE)


async def test_progress_counts(db: asyncpg.Pool, redis: Redis) -> None:
    await users(db, 6)
    done = await create_broadcast(db, redis, "Hi", created_by=42, action_key="k1", rate_per_second=RATE)
    for chat_id, status in ((1, "sent"), (2, "sent"), (3, "failed"), (4, "skipped"), (5, "sending")):
        await db.execute(
            "UPDATE outbox SET status = $3 WHERE broadcast_id = $1 AND chat_id = $2",
            done.broadcast_id, chat_id, status,
        )  # fmt: skip
    await db.execute("INSERT INTO outbox (chat_id, kind, text) VALUES (1, 'payment', 'not part of it')")
    p = await broadcast_progress(db, done.broadcast_id)
    assert (p.total, p.sent, p.pending, p.failed, p.skipped) == (6, 2, 2, 1, 1)
    assert (p.text, p.created_by) == ("Hi", 42)
    with pytest.raises(errors.BroadcastNotFound):
        await broadcast_progress(db, 999)


async def test_bad_texts_make_nothing(db: asyncpg.Pool, redis: Redis) -> None:
    await users(db, 2)
    for text, error in ((" \n ", errors.EmptyText), ("x" * 4097, errors.TextTooLong)):
        with pytest.raises(error):
            await create_broadcast(db, redis, text, created_by=42, action_key="k", rate_per_second=RATE)
    assert await db.fetchval("SELECT count(*) FROM broadcasts") == 0
    assert await db.fetchval("SELECT count(*) FROM outbox") == 0
    assert check_text("x" * 4096) == "x" * 4096
