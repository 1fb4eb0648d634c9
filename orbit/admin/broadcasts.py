"""Broadcasts: one `broadcasts` row, then one outbox row per recipient.

The audience is every user who has not blocked the bot and is not banned, and
who joined before the broadcast was made. The outbox rows are written in
batches, each its own transaction, in user-id order: the sender starts
delivering while the rest is written, and a fan-out cut short (a restart)
resumes after the highest user id queued (`resume_broadcast`); each row's
`dedup_key` (`broadcast:<id>:<user>`) makes writing it twice impossible. The
outbox sender delivers at its global rate; the rows are spread over time at a
fraction of it so notifications queued meanwhile (a payment confirmation) go
out between them instead of after the whole broadcast.

The admin action's key (the bot's confirmation token) is unique per broadcast,
so a second press of "send" finds the first broadcast instead of making another.
"""

from __future__ import annotations

import logging
import time

import asyncpg
import msgspec
from redis.asyncio import Redis

from orbit import outbox
from orbit.admin import queries
from orbit.admin.errors import BroadcastNotFound, EmptyText, TextTooLong
from orbit.admin.queries import Progress
from orbit.text import clean_text

log = logging.getLogger(__name__)

MAX_TEXT_LENGTH = 4096  # Telegram's limit for one message
BATCH_SIZE = 1000
# Broadcast rows are scheduled at this share of the sender's rate; the rest is
# left for the notifications that arrive while a broadcast goes out.
RATE_SHARE = 0.8


class Queued(msgspec.Struct, frozen=True, kw_only=True):
    broadcast_id: int
    queued: int  # outbox rows of the broadcast (all of them, after a replay or a resume)
    replayed: bool  # the action's key made this broadcast before: nothing new was queued


def check_text(text: str) -> str:
    """The text to store and send: cleaned (outside text, orbit.text), then bounded."""
    # One character over the limit is kept so that a too long text is refused, not cut.
    text = clean_text(text, MAX_TEXT_LENGTH + 1, keep_newlines=True)
    if not text.strip():
        raise EmptyText()
    if len(text) > MAX_TEXT_LENGTH:
        raise TextTooLong(len(text), MAX_TEXT_LENGTH)
    return text


async def audience_count(pool: asyncpg.Pool | asyncpg.Connection) -> int:
    """How many users a broadcast made now would reach."""
    return await queries.audience_count(pool)


async def create_broadcast(
    pool: asyncpg.Pool,
    redis: Redis,
    text: str,
    *,
    created_by: int,
    action_key: str,
    rate_per_second: float,
    batch_size: int = BATCH_SIZE,
) -> Queued:
    """Make a broadcast of `text` (Telegram HTML, sent as is) and queue it for everyone.

    `created_by` is the admin's Telegram id (0 for the CLI). A repeated
    `action_key` returns the broadcast it made, queueing nothing new.
    """
    text = check_text(text)
    async with pool.acquire() as conn, conn.transaction():
        broadcast_id = await queries.insert_broadcast(conn, text, created_by, action_key)
    if broadcast_id is None:
        existing = await queries.broadcast_by_key(pool, action_key)
        assert existing is not None
        _, queued = await queries.fan_out_position(pool, existing)
        return Queued(broadcast_id=existing, queued=queued, replayed=True)
    log.info("broadcast %d made by %d", broadcast_id, created_by)
    queued = await _fan_out(pool, redis, broadcast_id, rate_per_second, batch_size)
    return Queued(broadcast_id=broadcast_id, queued=queued, replayed=False)


async def resume_broadcast(
    pool: asyncpg.Pool,
    redis: Redis,
    broadcast_id: int,
    *,
    rate_per_second: float,
    batch_size: int = BATCH_SIZE,
) -> Queued:
    """Finish a fan-out that was cut short (a no-op for a finished one)."""
    found = await queries.progress(pool, broadcast_id)
    if found is None:
        raise BroadcastNotFound(broadcast_id)
    if found.queued_at is not None:
        _, queued = await queries.fan_out_position(pool, broadcast_id)
        return Queued(broadcast_id=broadcast_id, queued=queued, replayed=True)
    queued = await _fan_out(pool, redis, broadcast_id, rate_per_second, batch_size)
    return Queued(broadcast_id=broadcast_id, queued=queued, replayed=False)


async def _fan_out(
    pool: asyncpg.Pool, redis: Redis, broadcast_id: int, rate_per_second: float, batch_size: int
) -> int:
    started = time.monotonic()
    rate = max(rate_per_second * RATE_SHARE, 0.1)
    after_id, queued = await queries.fan_out_position(pool, broadcast_id)
    while True:
        async with pool.acquire() as conn, conn.transaction():
            batch = await queries.fan_out_batch(conn, broadcast_id, after_id, batch_size, rate, queued)
        queued += batch.queued
        if batch.queued:
            await outbox.wake_sender(redis)
        if batch.last_id is None or batch.scanned < batch_size:
            break
        after_id = batch.last_id
    total = await queries.finish_broadcast(pool, broadcast_id)
    log.info("broadcast %d: %s outbox rows queued in %.2fs", broadcast_id, total, time.monotonic() - started)
    return int(total or 0)


async def broadcast_progress(pool: asyncpg.Pool | asyncpg.Connection, broadcast_id: int) -> Progress:
    """Sent / pending / failed / skipped counts of a broadcast's outbox rows."""
    found = await queries.progress(pool, broadcast_id)
    if found is None:
        raise BroadcastNotFound(broadcast_id)
    return found
