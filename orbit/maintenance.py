"""Maintenance mode: a switch (a Redis key) under which users get one polite message
per maintenance period and nothing else, while payments complete and admins use
everything (the bot's middleware: orbit/bot/middlewares/maintenance.py).

The state is `maintenance:state` (JSON: the message, since when, who switched it
on). A period is named by its start, so "told once" keys (`SET NX` with a TTL)
of the previous period never silence the next one. A Redis key, not a row: the
switch is read on every update and the bot already makes one Redis round trip
per update; a lost key (Redis flushed) ends maintenance, which fails open.
"""

from __future__ import annotations

import time

import asyncpg
import msgspec
from redis.asyncio import Redis

from orbit import audit, keys
from orbit.text import clean_text

MESSAGE_MAX = 1000
TOLD_TTL_SECONDS = 14 * 86400  # longer than any maintenance; the key then goes by itself


class Maintenance(msgspec.Struct, frozen=True, kw_only=True):
    message: str  # shown to users as is (Telegram HTML); empty: the catalog's default
    since: float  # unix time it was switched on: names the period
    by: str  # "admin <id>" or "cli:<os user>"


async def read(redis: Redis) -> Maintenance | None:
    raw = await redis.get(keys.MAINTENANCE)
    if raw is None:
        return None
    try:
        return msgspec.json.decode(raw, type=Maintenance)
    except msgspec.DecodeError:
        return None  # a value we did not write: not in maintenance


# The audit row is written in a transaction that commits only after Redis took the
# switch: a switch Redis refused leaves no row (the key is the fact, not a row).


async def switch_on(
    pool: asyncpg.Pool, redis: Redis, message: str, *, actor: str
) -> tuple[Maintenance, bool]:
    """(the state, whether it was on already: then the message is replaced, the period kept).

    `actor` is the audit trail's (orbit.audit.bot_actor / cli_actor)."""
    current = await read(redis)
    state = Maintenance(
        message=clean_text(message, MESSAGE_MAX, keep_newlines=True).strip(),
        since=current.since if current is not None else time.time(),
        by=f"admin {actor}" if actor.isdigit() else actor,
    )
    async with pool.acquire() as conn, conn.transaction():
        await audit.record(conn, actor, "maintenance.on", before=current, after=state)
        await redis.set(keys.MAINTENANCE, msgspec.json.encode(state))
    return state, current is not None


async def switch_off(pool: asyncpg.Pool, redis: Redis, *, actor: str) -> Maintenance | None:
    """The state that ended (None: it was off, and nothing is recorded)."""
    current = await read(redis)
    if current is None:
        return None
    async with pool.acquire() as conn, conn.transaction():
        await audit.record(conn, actor, "maintenance.off", before=current, after=None)
        await redis.delete(keys.MAINTENANCE)
    return current


async def first_time(redis: Redis, state: Maintenance, user_id: int) -> bool:
    """True once per user per maintenance period: they get the message then, silence after."""
    told = await redis.set(
        keys.maintenance_told(int(state.since), user_id), "1", nx=True, ex=TOLD_TTL_SECONDS
    )
    return bool(told)
