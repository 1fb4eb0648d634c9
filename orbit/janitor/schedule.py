"""Each janitor chore on its own interval, in its own task.

A chore runs once per interval across every janitor: the one that takes its claim
(`SET janitor:chore:{name}:claim NX PX interval`) runs it; a poke (the sandbox moved
the clock: `orbit:janitor:poke`) runs every chore marked `on_poke` at once. A chore that fails
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
from orbit.chore_stats import ChoreStats
from orbit.metrics import Metrics
from orbit.outages import dependency_down
from orbit.redis_owned import delete_if_owner
from orbit.runtime import wait_any

log = logging.getLogger(__name__)

ERROR_LIMIT = 300



class ChoreFailed(Exception):
    """A failure the chore explains in one line (no traceback): pg_dump refused, say."""


@dataclass(frozen=True)
class Chore:
    name: str
    run: Callable[[], Awaitable[int]]  # returns how many things it did
    interval: float  # seconds between runs, across every janitor
    on_poke: bool = True  # runs at once when the janitor is poked (the sandbox moved the clock)


def backoff(failures: int, interval: float) -> float:
    return min(interval, 2.0**failures)


class Scheduler:
    def __init__(
        self,
        redis: Redis,
        chores: Sequence[Chore],
        stopping: asyncio.Event,
        metrics: Metrics | None = None,
    ) -> None:
        self.redis = redis
        self.chores = tuple(chores)
        self.stopping = stopping
        self.metrics = metrics
        self._poked = {chore.name: asyncio.Event() for chore in self.chores}
        self.host = socket.gethostname()
        self.owner = f"{self.host}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def poke(self) -> None:
        """Run every chore that follows pokes now, whoever holds its claim."""
        for chore in self.chores:
            if chore.on_poke:
                self._poked[chore.name].set()

    async def serve(self) -> None:
        """Every chore's loop until `stopping` is set (a running chore is finished)."""
        await asyncio.gather(*(self._loop(chore) for chore in self.chores))

    async def _claim(self, chore: Chore, force: bool) -> bool:
        key = keys.janitor_chore_claim(chore.name)
        ttl = max(1, int(chore.interval * 1000))
        return bool(await self.redis.set(key, self.owner, nx=not force, px=ttl))

    async def _release(self, chore: Chore) -> None:
        with contextlib.suppress(RedisError, OSError):
            await delete_if_owner(self.redis, keys.janitor_chore_claim(chore.name), self.owner)

    async def _record(self, stats: ChoreStats) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self.redis.hset(keys.JANITOR_CHORES, stats.name, msgspec.json.encode(stats))

    def _measure(self, chore: Chore, duration: float, count: int | None) -> None:
        if self.metrics is None:
            return
        self.metrics.inc("janitor_chore_runs_total", chore=chore.name)
        self.metrics.observe("janitor_chore_duration_seconds", duration, chore=chore.name)
        if count is None:
            self.metrics.inc("janitor_chore_failures_total", chore=chore.name)
        else:
            self.metrics.inc("janitor_chore_items_total", count, chore=chore.name)

    async def run_once(self, chore: Chore, *, force: bool = False) -> bool | None:
        """Run `chore` if its claim is ours (`force`: take it): True done, False failed,
        None not due here."""
        started_at, started = time.time(), time.monotonic()
        claimed = False
        try:
            if not await self._claim(chore, force):
                return None
            claimed = True
            count = await chore.run()
        except Exception as exc:
            duration = time.monotonic() - started
            if claimed:
                self._measure(chore, duration, None)
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
        self._measure(chore, duration, int(count))
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
        poked = self._poked[chore.name]
        while not self.stopping.is_set():
            force = poked.is_set()
            poked.clear()
            outcome = await self.run_once(chore, force=force)
            if outcome is False:
                failures += 1
                pause = backoff(failures, chore.interval)
            else:
                failures = 0
                # Not due here (another janitor holds it): look again a little later.
                pause = chore.interval if outcome else min(chore.interval, 5.0)
            await wait_any((self.stopping, poked), pause)
