"""Each janitor chore on its own interval, in its own task.

A chore runs once per interval across every janitor: the one that takes its claim
(`SET janitor:chore:{name}:claim NX PX interval`) runs it. A chore that fails
gives its claim back and is retried with a backoff (never later than its
interval); a chore that fails or hangs holds only its own task, so the others
keep their intervals. After each run the chore's last run, duration, count (what
it returned) and error go to the `janitor:chores` hash, which `orbit status` shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from orbit import keys
from orbit.outages import dependency_down

log = logging.getLogger(__name__)

ERROR_LIMIT = 300

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


class ChoreFailed(Exception):
    """A failure the chore explains in one line (no traceback): pg_dump refused, say."""


@dataclass(frozen=True)
class Chore:
    name: str
    run: Callable[[], Awaitable[int]]  # returns how many things it did
    interval: float  # seconds between runs, across every janitor


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


def backoff(failures: int, interval: float) -> float:
    return min(interval, 2.0**failures)


async def _sleep_or(stopping: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), timeout=seconds)


class Scheduler:
    def __init__(self, redis: Redis, chores: Sequence[Chore], stopping: asyncio.Event) -> None:
        self.redis = redis
        self.chores = tuple(chores)
        self.stopping = stopping
        self.host = socket.gethostname()
        self.owner = f"{self.host}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    async def serve(self) -> None:
        """Every chore's loop until `stopping` is set (a running chore is finished)."""
        await asyncio.gather(*(self._loop(chore) for chore in self.chores))

    async def _claim(self, chore: Chore) -> bool:
        key = keys.janitor_chore_claim(chore.name)
        return bool(await self.redis.set(key, self.owner, nx=True, px=max(1, int(chore.interval * 1000))))

    async def _release(self, chore: Chore) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self.redis.eval(_RELEASE, 1, keys.janitor_chore_claim(chore.name), self.owner)

    async def _record(self, stats: ChoreStats) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self.redis.hset(keys.JANITOR_CHORES, stats.name, msgspec.json.encode(stats))

    async def run_once(self, chore: Chore) -> bool | None:
        """Run `chore` if its claim is ours: True done, False failed, None not due here."""
        started_at, started = time.time(), time.monotonic()
        try:
            if not await self._claim(chore):
                return None
            count = await chore.run()
        except Exception as exc:
            duration = time.monotonic() - started
            down = dependency_down(exc)
            if isinstance(exc, ChoreFailed):
                log.error("chore %s failed after %.3fs: %s", chore.name, duration, exc)
            elif down is None:
                log.exception("chore %s failed after %.3fs", chore.name, duration)
            else:  # one line; repeats are held back by the outage filter (orbit/outages.py)
                log.warning("chore %s failed: %s unavailable (%r)", chore.name, down, exc)
            await self._release(chore)
            error = f"{type(exc).__name__}: {exc}"[:ERROR_LIMIT]
            await self._record(self._stats(chore, started_at, duration, 0, error))
            return False
        duration = time.monotonic() - started
        log.info("chore %s: %d in %.3fs", chore.name, count, duration)
        await self._record(self._stats(chore, started_at, duration, int(count), None))
        return True

    def _stats(
        self, chore: Chore, started_at: float, duration: float, count: int, error: str | None
    ) -> ChoreStats:
        return ChoreStats(
            name=chore.name,
            interval=chore.interval,
            last_run_at=started_at,
            duration=round(duration, 3),
            count=count,
            ok=error is None,
            error=error,
            host=self.host,
        )

    async def _loop(self, chore: Chore) -> None:
        failures = 0
        while not self.stopping.is_set():
            outcome = await self.run_once(chore)
            if outcome is False:
                failures += 1
                pause = backoff(failures, chore.interval)
            else:
                failures = 0
                # Not due here (another janitor holds it): look again a little later.
                pause = chore.interval if outcome else min(chore.interval, 5.0)
            await _sleep_or(self.stopping, pause)
