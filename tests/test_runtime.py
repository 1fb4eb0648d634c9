"""The worker runtime with real processes: heartbeat, clean SIGTERM, single-active lease."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

from redis.asyncio import Redis

from orbit import keys
from tests.support.processes import spawn, wait_for_heartbeat


async def test_worker_heartbeats_and_exits_0_on_sigterm(
    db: object, redis: Redis, base_env: dict[str, str], log_dir: Path
) -> None:
    worker = await spawn("janitor", base_env, log_dir)
    try:
        beat = await wait_for_heartbeat(redis, "janitor", pid=worker.pid)
        assert beat["active"] is True
        ttl = await redis.ttl(keys.heartbeat("janitor"))
        assert 0 < ttl <= 6
    finally:
        started = time.monotonic()
        code = await worker.stop(signal.SIGTERM)
    assert code == 0, worker.output()
    assert time.monotonic() - started < 15  # supervisord's stopwaitsecs
    assert "stopped" in worker.output()


async def _holder(redis: Redis) -> str | None:
    return await redis.get(keys.lease("balancer"))


async def test_two_balancers_one_lease_and_takeover(
    db: object, redis: Redis, base_env: dict[str, str], log_dir: Path
) -> None:
    first = await spawn("balancer", base_env, log_dir)
    second = await spawn("balancer", base_env, log_dir)
    try:
        await wait_for_heartbeat(redis, "balancer")
        deadline = time.monotonic() + 10
        while await _holder(redis) is None and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        owner = await _holder(redis)
        assert owner is not None
        holders = [w for w in (first, second) if f":{w.pid}:" in owner]
        assert len(holders) == 1
        holder = holders[0]
        standby = second if holder is first else first
        # Only one ever logs having acquired it.
        await asyncio.sleep(1.5)
        acquired = [w for w in (first, second) if "acquired" in w.output()]
        assert acquired == [holder]

        holder.proc.kill()  # kill -9: no release; the key must expire
        await holder.proc.wait()
        killed_at = time.monotonic()
        while time.monotonic() - killed_at < 3 + 3:  # lease TTL + one renewal period
            owner = await _holder(redis)
            if owner is not None and f":{standby.pid}:" in owner:
                break
            await asyncio.sleep(0.1)
        assert owner is not None and f":{standby.pid}:" in owner
        assert time.monotonic() - killed_at <= 3 + 1.5
        beat = await wait_for_heartbeat(redis, "balancer", pid=standby.pid)
        assert beat["active"] is True
    finally:
        for w in (first, second):
            await w.stop()
    # A clean exit releases the lease at once.
    assert await _holder(redis) is None
