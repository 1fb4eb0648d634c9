"""`/healthz` answers 200 only while the heartbeat is fresh and Postgres and Redis answer;
`/metrics` runs the scrape-time refreshes (a failing one keeps the last values)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack

import aiohttp
import asyncpg
import pytest
from redis.asyncio import Redis

from orbit import ops_http
from orbit.metrics import Metrics
from tests.e2e.conftest import free_port

Serve = Callable[[ops_http.Probe], Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    async with AsyncExitStack() as stack:

        async def start(probe: ops_http.Probe) -> str:
            port = free_port()
            await ops_http.serve(stack, probe, "127.0.0.1", port)
            return f"http://127.0.0.1:{port}"

        yield start


async def test_healthz_follows_the_heartbeat(db: asyncpg.Pool, redis: Redis, serve: Serve) -> None:
    liveness = ops_http.Liveness()
    url = await serve(ops_http.Probe(db, redis, Metrics("janitor"), liveness, heartbeat_ttl=0.5))
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/healthz") as resp:  # never beat yet
            assert (resp.status, await resp.json()) == (
                503, {"ok": False, "postgres": "ok", "redis": "ok", "heartbeat": "failing"}
            )  # fmt: skip
        liveness.beat()
        async with http.get(f"{url}/healthz") as resp:
            assert resp.status == 200
        liveness.beat_at = time.monotonic() - 1.0  # the heartbeat task stalled past its TTL
        async with http.get(f"{url}/healthz") as resp:
            assert resp.status == 503


async def test_metrics_refresh_at_scrape_and_survive_a_failing_refresh(
    db: asyncpg.Pool, redis: Redis, serve: Serve
) -> None:
    metrics = Metrics("bot")
    depth = iter([3, None])

    async def refresh() -> None:
        value = next(depth)
        if value is None:
            raise OSError("Postgres went away")
        metrics.set("outbox_depth", value, state="due")

    metrics.on_scrape(refresh)
    url = await serve(ops_http.Probe(db, redis, metrics))
    async with aiohttp.ClientSession() as http:
        for _ in range(2):  # the second refresh fails: the scrape still answers, last value kept
            async with http.get(f"{url}/metrics") as resp:
                assert resp.status == 200
                assert 'orbit_outbox_depth{state="due"} 3.0' in await resp.text()
