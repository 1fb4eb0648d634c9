"""The notification outbox: a message to a user that is not a direct reply is a
row written in the same transaction as the fact it reports; the bot's sender
delivers it. Publishing on `orbit:outbox` only wakes the sender early."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError

from orbit import keys

log = logging.getLogger(__name__)

ENQUEUE = """
INSERT INTO outbox (chat_id, kind, text, reply_markup, dedup_key, broadcast_id)
VALUES ($1, $2, $3, $4::jsonb, $5, $6)
ON CONFLICT (dedup_key) DO NOTHING
RETURNING id
"""


async def enqueue(
    conn: asyncpg.Connection,
    chat_id: int,
    kind: str,
    text: str,
    *,
    reply_markup: dict[str, Any] | None = None,
    dedup_key: str | None = None,
    broadcast_id: int | None = None,
) -> int | None:
    """Queue a message; returns its id, or None when `dedup_key` was already queued."""
    # jsonb parameters take Python objects (the pool's codec encodes them).
    return await conn.fetchval(ENQUEUE, chat_id, kind, text, reply_markup, dedup_key, broadcast_id)


async def wake_sender(redis: Redis) -> None:
    """Call after the transaction that queued messages has committed."""
    try:
        await redis.publish(keys.channel(redis, keys.OUTBOX_CHANNEL), "1")
    except (RedisError, OSError) as exc:  # the sender's timer delivers anyway
        log.warning("outbox wake-up not published: %s", exc)
