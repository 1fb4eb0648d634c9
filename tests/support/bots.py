"""Start several bot processes at once, with the patience a loaded machine needs."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

from redis.asyncio import Redis

from tests.support.processes import WorkerProcess, spawn, wait_for_heartbeat

START_TIMEOUT = 90.0  # eight test runs share two cores: a start can take half a minute


@asynccontextmanager
async def bot_fleet(
    redis: Redis, log_dir: Path, envs: list[Mapping[str, str]]
) -> AsyncIterator[Callable[[], list[WorkerProcess]]]:
    """Bot processes with these environments, started together; each must exit 0 on
    SIGTERM at the end unless the test killed it."""
    bots = [await spawn("bot", env, log_dir) for env in envs]
    try:
        try:
            beats = (wait_for_heartbeat(redis, "bot", pid=b.pid, timeout=START_TIMEOUT) for b in bots)
            await asyncio.gather(*beats)
        except TimeoutError:
            logs = "\n".join(b.output()[-2000:] for b in bots)
            raise AssertionError(f"bots did not start:\n{logs}") from None
        yield lambda: bots
    finally:
        codes = [await b.stop() for b in bots]
    for bot, code in zip(bots, codes, strict=True):
        assert code in (0, -signal.SIGKILL), f"bot exited {code}:\n{bot.output()[-3000:]}"
