"""The maintenance switch is read from Redis at most once a second per bot process, also
when a crowd's updates arrive together (the middleware reads it on every update)."""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis

from orbit import keys, maintenance
from orbit.bot.middlewares.maintenance import MaintenanceGate
from orbit.settings import Settings


class CountingRedis(Redis):
    """A real client that counts its round trips."""

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        self.commands = getattr(self, "commands", 0) + 1
        return await super().execute_command(*args, **options)


async def test_a_crowd_arriving_together_reads_the_switch_once(redis_url: str, settings: Settings) -> None:
    client = CountingRedis.from_url(redis_url, decode_responses=True)
    try:
        await client.delete(keys.MAINTENANCE)
        gate = MaintenanceGate(settings, client)
        client.commands = 0
        states = await asyncio.gather(*(gate._current() for _ in range(100)))
        assert states == [None] * 100
        assert client.commands == 1
        assert await maintenance.read(client) is None
    finally:
        await client.aclose()
