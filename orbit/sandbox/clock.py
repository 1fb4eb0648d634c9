"""The sandbox's one clock: Postgres's offset (`orbit.clock`), shared by every emulator.

Postgres holds the offset (`orbit_now()` is what expiry, grace and reminders read),
so it survives a restart of the sandbox; the emulators take it from there when
they start and follow every move made through `advance`.
"""

from __future__ import annotations

import time
from typing import Protocol

import asyncpg
from redis.asyncio import Redis

from orbit import clock, keys


class _ClockedTelegram(Protocol):
    def advance_clock(self, seconds: float) -> float: ...


class SandboxClock:
    """The present as the emulators see it: the host's time plus the sandbox's offset.

    Pass `clock.time` to the Marzban, tonapi and Crypto Pay emulators; the Telegram
    emulator keeps its own offset, moved through `advance_clock`.
    """

    def __init__(self, telegram: _ClockedTelegram | None = None) -> None:
        self.offset = 0.0
        self._telegram = telegram

    def time(self) -> float:
        return time.time() + self.offset

    def follow(self, offset: float) -> None:
        """Catch up with an offset read from Postgres (the clock only moves forward)."""
        if offset > self.offset:
            if self._telegram is not None:
                self._telegram.advance_clock(offset - self.offset)
            self.offset = offset

    async def sync(self, pool: asyncpg.Pool) -> float:
        self.follow(await clock.offset(pool))
        return self.offset

    async def advance(self, pool: asyncpg.Pool, redis: Redis, seconds: float) -> float:
        """Move Postgres's clock, then every emulator's, then wake the janitor; the new offset.

        Postgres first: it is the one the processes read. If this process dies right
        after, the emulators catch up from Postgres when the sandbox starts again.
        """
        offset = await clock.advance(pool, seconds)
        self.follow(offset)
        # Reminders, expiry and renewals now, not at the janitor's next minute.
        await redis.publish(keys.channel(redis, keys.JANITOR_POKE_CHANNEL), "clock")
        return offset
