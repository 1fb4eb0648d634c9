"""The sandbox's own control API: one clock for every emulator and process.

`POST /control/clock/advance {"seconds": N}` and `GET /control/clock` (docs/sandbox.md).
Served on `config.CONTROL_PORT`; `add_routes` mounts the same on another app of the
sandbox process (the chat page's).
"""

from __future__ import annotations

import math

import asyncpg
import msgspec
from aiohttp import web
from redis.asyncio import Redis

from orbit import clock
from orbit.sandbox.clock import SandboxClock


class AdvanceIn(msgspec.Struct, forbid_unknown_fields=True):
    seconds: float


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(body), status=status, content_type="application/json")


def add_routes(
    router: web.UrlDispatcher, sandbox_clock: SandboxClock, pool: asyncpg.Pool, redis: Redis
) -> None:
    async def advance(request: web.Request) -> web.Response:
        try:
            body = msgspec.json.decode(await request.read() or b"{}", type=AdvanceIn)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return _json({"error": str(exc)}, 400)
        if not (math.isfinite(body.seconds) and body.seconds >= 0):
            return _json({"error": "seconds must be a number >= 0: the clock only goes forward"}, 400)
        offset = await sandbox_clock.advance(pool, redis, body.seconds)
        return _json({"offset": offset})

    async def show(request: web.Request) -> web.Response:
        offset = await sandbox_clock.sync(pool)
        return _json({"offset": offset, "now": (await clock.now(pool)).isoformat()})

    router.add_post("/control/clock/advance", advance)
    router.add_get("/control/clock", show)


def make_app(sandbox_clock: SandboxClock, pool: asyncpg.Pool, redis: Redis) -> web.Application:
    app = web.Application()
    add_routes(app.router, sandbox_clock, pool, redis)
    return app
