"""Broadcasts: one `broadcasts` row, then one outbox row per recipient.

The audience is chosen among the users who have not blocked the bot, are not
banned and joined before the broadcast was made: everyone, active subscribers,
expired ones, trial only, never paid; optionally one language. A broadcast may
carry one button: a URL, or one of the bot's screens (its callback data). A
cancel marks the broadcast and turns every row still waiting into `cancelled`
in one transaction; the sender's claim also passes over rows of a cancelled
broadcast, so nothing of it goes out after the cancel but the few sends
already in flight (one per sender lane). The outbox rows are written in
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
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import msgspec
from redis.asyncio import Redis

from orbit import audit, outbox
from orbit.admin import queries
from orbit.admin.errors import (
    BroadcastNotFound,
    EmptyText,
    InvalidAudience,
    InvalidButton,
    TextTooLong,
)
from orbit.admin.queries import Progress
from orbit.text import clean_text

log = logging.getLogger(__name__)

MAX_TEXT_LENGTH = 4096  # Telegram's limit for one message
BATCH_SIZE = 1000
# Broadcast rows are scheduled at this share of the sender's rate; the rest is
# left for the notifications that arrive while a broadcast goes out.
RATE_SHARE = 0.8


AUDIENCES = ("all", "active", "expired", "trial", "never_paid")
LANGUAGES = ("en", "ru")  # users.language's CHECK
BUTTON_TEXT_MAX = 64
URL_MAX = 2048
URL_SCHEMES = ("https", "http", "tg")


class Audience(msgspec.Struct, frozen=True, kw_only=True):
    name: str = "all"  # one of AUDIENCES
    language: str | None = None  # only users with this language, or everyone


def check_audience(name: str, language: str | None = None) -> Audience:
    name = name.strip().lower().replace("-", "_")
    if name not in AUDIENCES:
        raise InvalidAudience(name, AUDIENCES)
    if language is not None:
        language = language.strip().lower()
        if language not in LANGUAGES:
            raise InvalidAudience(f"language {language}", LANGUAGES)
    return Audience(name=name, language=language or None)


def parse_button(spec: str, screens: Mapping[str, str]) -> dict[str, Any]:
    """`TEXT=URL` or `TEXT=screen` as an inline keyboard of one button (reply_markup).

    `screens` maps the bot's screen names to their callback data (the bot owns its
    buttons' format: orbit/ui/callbacks.py)."""
    label, sep, target = spec.partition("=")
    label = clean_text(label, BUTTON_TEXT_MAX + 1).strip()
    target = target.strip()
    if not sep or not label or not target:
        raise InvalidButton("expected TEXT=URL or TEXT=screen")
    if len(label) > BUTTON_TEXT_MAX:
        raise InvalidButton(f"the button text is longer than {BUTTON_TEXT_MAX} characters")
    if target.lower() in screens:
        return {"inline_keyboard": [[{"text": label, "callback_data": screens[target.lower()]}]]}
    parts = urlsplit(target)
    if parts.scheme not in URL_SCHEMES or not (parts.netloc or parts.scheme == "tg") or len(target) > URL_MAX:
        raise InvalidButton(
            f"{target[:80]!r} is neither a URL (https://...) nor a screen ({', '.join(sorted(screens))})"
        )
    if not target.isprintable() or " " in target:
        raise InvalidButton("the URL contains spaces or control characters")
    return {"inline_keyboard": [[{"text": label, "url": target}]]}


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


async def audience_count(pool: asyncpg.Pool | asyncpg.Connection, audience: Audience | None = None) -> int:
    """How many users a broadcast made now would reach."""
    audience = audience or Audience()
    return await queries.audience_count(pool, audience.name, audience.language)


async def make_broadcast(
    conn: asyncpg.Connection,
    text: str,
    *,
    audience: Audience,
    reply_markup: dict[str, Any] | None,
    created_by: int,
    action_key: str,
) -> tuple[int, bool]:
    """(id, replayed): the broadcast row, inside the caller's transaction (its fan-out job
    is queued after the admin was shown it). A repeated `action_key` finds the first."""
    text = check_text(text)
    broadcast_id = await queries.insert_broadcast(
        conn, text, created_by, action_key, audience.name, audience.language, reply_markup
    )
    if broadcast_id is not None:
        log.info("broadcast %d made by %d for %s", broadcast_id, created_by, audience)
        await audit.record(
            conn,
            audit.bot_actor(created_by) if created_by else audit.cli_actor(),
            "broadcast.send",
            target=f"broadcast:{broadcast_id}",
            after={
                "audience": audience.name,
                "language": audience.language,
                "text": text,
                "reply_markup": reply_markup,
                "recipients": await queries.broadcast_total(conn, broadcast_id),
            },
        )
        return broadcast_id, False
    existing = await queries.broadcast_by_key(conn, action_key)
    assert existing is not None
    return existing, True


async def create_broadcast(
    pool: asyncpg.Pool,
    redis: Redis,
    text: str,
    *,
    created_by: int,
    action_key: str,
    rate_per_second: float,
    audience: Audience | None = None,
    reply_markup: dict[str, Any] | None = None,
    batch_size: int = BATCH_SIZE,
) -> Queued:
    """Make a broadcast of `text` (Telegram HTML, sent as is) and queue it for its audience.

    `created_by` is the admin's Telegram id (0 for the CLI). A repeated
    `action_key` returns the broadcast it made, queueing nothing new.
    """
    async with pool.acquire() as conn, conn.transaction():
        broadcast_id, replayed = await make_broadcast(
            conn,
            text,
            audience=audience or Audience(),
            reply_markup=reply_markup,
            created_by=created_by,
            action_key=action_key,
        )
    if replayed:
        _, queued = await queries.fan_out_position(pool, broadcast_id)
        return Queued(broadcast_id=broadcast_id, queued=queued, replayed=True)
    queued = await fan_out(pool, redis, broadcast_id, rate_per_second=rate_per_second, batch_size=batch_size)
    return Queued(broadcast_id=broadcast_id, queued=queued, replayed=False)


async def cancel_broadcast(pool: asyncpg.Pool, broadcast_id: int, *, actor: str) -> tuple[bool, int]:
    """(already cancelled, rows cancelled now). Rows mid-send (one per sender lane) go out.

    `actor` is the audit trail's (orbit.audit.bot_actor / cli_actor)."""
    async with pool.acquire() as conn, conn.transaction():
        done = await queries.cancel_broadcast(conn, broadcast_id)
        if done is None:
            raise BroadcastNotFound(broadcast_id)
        if not done[0]:  # a second cancel changes nothing worth a row
            await audit.record(
                conn,
                actor,
                "broadcast.cancel",
                target=f"broadcast:{broadcast_id}",
                before={"cancelled": False},
                after={"cancelled": True, "not_sent": done[1]},
            )
    log.info("broadcast %d cancelled: %d rows not sent", broadcast_id, done[1])
    return done


async def list_broadcasts(pool: asyncpg.Pool | asyncpg.Connection, limit: int = 20) -> list[Progress]:
    return await queries.recent_broadcasts(pool, limit)


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
    queued = await fan_out(pool, redis, broadcast_id, rate_per_second=rate_per_second, batch_size=batch_size)
    return Queued(broadcast_id=broadcast_id, queued=queued, replayed=False)


async def fan_out(
    pool: asyncpg.Pool,
    redis: Redis,
    broadcast_id: int,
    *,
    rate_per_second: float,
    batch_size: int = BATCH_SIZE,
) -> int:
    """Write the outbox rows (resuming after the last one written); the rows written."""
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
    await queries.cancel_late_rows(pool, broadcast_id)
    total = await queries.finish_broadcast(pool, broadcast_id)
    log.info("broadcast %d: %s outbox rows queued in %.2fs", broadcast_id, total, time.monotonic() - started)
    return int(total or 0)


async def broadcast_progress(pool: asyncpg.Pool | asyncpg.Connection, broadcast_id: int) -> Progress:
    """Sent / pending / failed / skipped counts of a broadcast's outbox rows."""
    found = await queries.progress(pool, broadcast_id)
    if found is None:
        raise BroadcastNotFound(broadcast_id)
    return found
