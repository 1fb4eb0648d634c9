"""What each janitor chore did last (`orbit/janitor/schedule.py` writes it after every
run, into one Redis hash), read by `orbit status` and the admin health screen."""

from __future__ import annotations

import contextlib

import msgspec
from redis.asyncio import Redis

from orbit import keys


class ChoreStats(msgspec.Struct, kw_only=True):
    name: str
    interval: float
    last_run_at: float  # unix time the last run started
    duration: float  # seconds the last run took
    count: int  # what the last successful run did
    ok: bool  # the last run succeeded
    error: str | None = None  # why the last run failed
    host: str = ""


async def read_stats(redis: Redis) -> dict[str, ChoreStats]:
    raw = await redis.hgetall(keys.JANITOR_CHORES)
    stats = {}
    for name, value in raw.items():
        with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
            stats[_text(name)] = msgspec.json.decode(value, type=ChoreStats)
    return stats


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
