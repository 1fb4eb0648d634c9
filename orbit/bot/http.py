"""The bot's HTTP server: `/healthz`, `/metrics` (orbit/ops_http.py), the Crypto Pay
webhook and, in webhook mode, Telegram's (orbit/bot/webhook.py).

What one listener serves is chosen in `orbit.bot.process.start_http`: the health and
metrics endpoints never share a listener open beyond the host (docs/RELIABILITY.md, access);
`orbit.bot.http_limits` bounds what a stranger can make any of them hold.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import asyncpg
from aiohttp import hdrs, web
from aiohttp.http import HttpVersion11
from redis.asyncio import Redis

from orbit import ops_http
from orbit.bot.http_limits import HttpLimits, read_body_in_time
from orbit.i18n import Translator
from orbit.metrics import Metrics
from orbit.payments import cryptobot
from orbit.settings import Settings

POOL = web.AppKey("pool", asyncpg.Pool)
REDIS = web.AppKey("redis", Redis)
METRICS = web.AppKey("metrics", Metrics)
SETTINGS = web.AppKey("settings", Settings)
TRANSLATOR = web.AppKey("translator", Translator)
CRYPTOBOT_WEBHOOK_PATH = "/cryptobot/webhook"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

log = logging.getLogger(__name__)


async def cryptobot_webhook(request: web.Request) -> web.Response:
    """Crypto Pay's `invoice_paid`: the signature is checked on the raw bytes first."""
    app = request.app
    try:
        done = await cryptobot.handle_webhook(
            app[POOL],
            app[REDIS],
            app[TRANSLATOR],
            app[SETTINGS],
            await request.read(),
            request.headers.get(cryptobot.SIGNATURE_HEADER),
        )
    except cryptobot.BadSignature:
        app[METRICS].inc("cryptobot_webhooks_total", outcome="bad_signature")
        return web.json_response({"ok": False, "error": "bad signature"}, status=401)
    except cryptobot.BadUpdate:
        app[METRICS].inc("cryptobot_webhooks_total", outcome="bad_update")
        return web.json_response({"ok": False, "error": "unreadable update"}, status=400)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
        # Not the sender's fault: Crypto Pay retries a 5xx, and reconciliation finds it anyway.
        log.warning("cryptobot webhook not handled, database unavailable: %r", exc)
        app[METRICS].inc("cryptobot_webhooks_total", outcome="unavailable")
        return web.json_response({"ok": False, "error": "try again later"}, status=503)
    outcome = "ignored" if done is None else "replayed" if done.replayed else "confirmed"
    app[METRICS].inc("cryptobot_webhooks_total", outcome=outcome)
    return web.json_response({"ok": True})


async def expect_continue_only(request: web.Request) -> None:
    """aiohttp's own Expect handler echoes the header into its 417 text and fails with a
    500 when the header is not valid UTF-8; the webhook is reachable from anywhere."""
    expect = request.headers.get(hdrs.EXPECT, "")
    if request.version != HttpVersion11:
        return
    if expect.lower() != "100-continue":
        raise web.HTTPExpectationFailed(text="unsupported Expect header")
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    request.writer.output_size = 0  # the body has not started yet


def create_app(
    pool: asyncpg.Pool,
    redis: Redis,
    metrics_: Metrics,
    settings: Settings | None = None,
    translator: Translator | None = None,
    *,
    limits: HttpLimits | None = None,
    ops: bool = True,
    webhooks: bool = True,
    probe: ops_http.Probe | None = None,
    telegram: tuple[str, Handler] | None = None,
) -> web.Application:
    """`ops`: serve `/healthz` and `/metrics` (`probe`: what they read, the process's
    heartbeat included); `webhooks`: the Crypto Pay webhook (with `settings` and
    `translator`); `telegram`: Telegram's webhook, (path, handler)."""
    limits = limits or HttpLimits()
    app = web.Application(
        client_max_size=limits.max_body_bytes, middlewares=[read_body_in_time(limits, metrics_)]
    )
    app[POOL] = pool
    app[REDIS] = redis
    app[METRICS] = metrics_
    if ops:
        ops_http.add_routes(app, probe or ops_http.Probe(pool, redis, metrics_))
    if webhooks and settings is not None and translator is not None:
        app[SETTINGS] = settings
        app[TRANSLATOR] = translator
        app.router.add_post(CRYPTOBOT_WEBHOOK_PATH, cryptobot_webhook, expect_handler=expect_continue_only)
    if telegram is not None:
        path, handler = telegram
        app.router.add_post(path, handler, expect_handler=expect_continue_only)
    return app
