"""`/healthz` and `/metrics` of every process.

The runtime serves them on `METRICS_HOST:METRICS_PORT_<PROCESS>` for the workers;
the bot adds the same handlers to its own listeners (orbit/bot/http.py). Neither
carries authentication: they stay on loopback unless an operator puts them behind
a private network or an authenticating proxy (README, HTTP endpoints).
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass

import asyncpg
from aiohttp import web
from redis.asyncio import Redis

from orbit.connections import StartupError
from orbit.metrics import CONTENT_TYPE, Metrics

log = logging.getLogger(__name__)

HEALTH_TIMEOUT_SECONDS = 3.0


class Liveness:
    """When the process last wrote its heartbeat (the runtime's heartbeat task)."""

    def __init__(self) -> None:
        self.beat_at: float | None = None  # monotonic

    def beat(self) -> None:
        self.beat_at = time.monotonic()

    def fresh(self, ttl: float) -> bool:
        return self.beat_at is not None and time.monotonic() - self.beat_at < ttl


@dataclass(frozen=True)
class Probe:
    pool: asyncpg.Pool
    redis: Redis
    metrics: Metrics
    liveness: Liveness | None = None  # None: not checked (an app without a runtime)
    heartbeat_ttl: float = 30.0


PROBE = web.AppKey("probe", Probe)


async def healthz(request: web.Request) -> web.Response:
    """200 when the heartbeat is fresh and Postgres and Redis answer, else 503; `ok` or
    `failing` per check, nothing more: the error itself (hosts, user names, driver
    messages) goes to the log, not to whoever asks."""
    probe = request.app[PROBE]
    checks = {"postgres": probe.pool.fetchval("SELECT 1"), "redis": probe.redis.ping()}
    states: dict[str, str] = {}
    for name, check in checks.items():
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT_SECONDS):
                await check
        except Exception as exc:  # any failure is reported, none is raised
            log.warning("healthz: %s failing: %s", name, str(exc) or type(exc).__name__)
            states[name] = "failing"
        else:
            states[name] = "ok"
    if probe.liveness is not None:
        states["heartbeat"] = "ok" if probe.liveness.fresh(probe.heartbeat_ttl) else "failing"
    ok = all(state == "ok" for state in states.values())
    return web.json_response({"ok": ok, **states}, status=200 if ok else 503)


async def metrics(request: web.Request) -> web.Response:
    body = await request.app[PROBE].metrics.scrape()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def add_routes(app: web.Application, probe: Probe) -> None:
    app[PROBE] = probe
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)


async def serve(stack: AsyncExitStack, probe: Probe, host: str, port: int) -> None:
    """A small app of its own (a worker has no other HTTP), closed with the stack."""
    app = web.Application()
    add_routes(app, probe)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        raise StartupError(f"cannot listen on {host}:{port} for /metrics: {exc}") from None
    log.info("/healthz and /metrics on %s:%d", host, port)
