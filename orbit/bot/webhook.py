"""Webhook mode: Telegram POSTs each update to every bot process behind one URL.

Not aiogram's `SimpleRequestHandler`: by default it answers Telegram at once and
handles the update in the background, so a process that dies mid-update has
already confirmed it and the update is lost. Here the answer goes out only after
the dispatcher ran the update, so a process killed mid-update leaves Telegram to
deliver it again (to any process); every handler is safe to run twice (idempotency
keys in Postgres, the press tokens of orbit/ui/callbacks.py, charge ids).

What Telegram is answered, and why (Telegram redelivers every non-2xx, with
backoff, until it gives up):
- a wrong or missing `X-Telegram-Bot-Api-Secret-Token`: 401, nothing is handled;
- a body that is not an update: 400 (it cannot get better by being sent again);
- the process is stopping: 503, another process (or this one restarted) gets it;
- Postgres or Redis was unreachable while handling (`orbit.outages`): 503, so the
  update, a `successful_payment` above all, is handled again once it is back;
- any other handler error: 200, after the error handler told the user. A poison
  update (a bug, odd input) redelivered for ever would only repeat the same error
  message to its user and hold a connection Telegram could use for others;
- an update handled already (its id marked in Redis for 10 minutes after a 2xx-worthy
  run): 200 at once. Telegram sends one again when an answer was lost (a timeout,
  a process killed after the handler but before the answer).

`setWebhook` is called by one process at a time (`register`, under a Redis lease)
and only when what it would set differs from what the last one set.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import msgspec
from aiogram import Bot, Dispatcher
from aiogram.types import ErrorEvent, TelegramObject, Update
from aiohttp import web
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from orbit import keys
from orbit.metrics import Metrics
from orbit.outages import dependency_down
from orbit.runtime import Lease
from orbit.settings import Settings

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
LEASE_NAME = "bot:webhook"
LEASE_WAIT_SECONDS = 10.0
# A handled update's id is kept this long: Telegram redelivers within minutes (backoff).
DONE_TTL_SECONDS = 600  # a process that finds the lease taken waits this long for the holder
_OUTCOME = "webhook_outcome"  # the key under which a handler run's outcome reaches the middleware


def path_of(url: str) -> str:
    """The path the processes serve: WEBHOOK_URL's own (the proxy passes it through)."""
    return urlsplit(url).path or "/"


@dataclass
class Outcome:
    """What one update's run left behind for the HTTP answer."""

    down: str | None = None  # "Postgres" or "Redis" when a handler failed because it was away


async def note_outages(
    handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
    event: TelegramObject,
    data: dict[str, Any],
) -> Any:
    """Outer middleware of the error observer: every exception that reaches aiogram's
    error boundary passes here, from a handler or any outer middleware, before the
    error handler answers the user; it notes whether a dependency was away."""
    outcome = data.get(_OUTCOME)
    if isinstance(outcome, Outcome) and isinstance(event, ErrorEvent):
        outcome.down = dependency_down(event.exception)
    return await handler(event, data)


class TelegramWebhook:
    """The aiohttp handler of Telegram's POSTs for one dispatcher and bot."""

    def __init__(self, dp: Dispatcher, bot: Bot, secret: str, metrics: Metrics, redis: Redis) -> None:
        self.dp = dp
        self.bot = bot
        self.redis = redis
        self._secret = secret.encode()
        self.metrics = metrics
        self.accepting = True
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def _authentic(self, request: web.Request) -> bool:
        given = request.headers.get(SECRET_HEADER, "")
        # aiohttp decodes header bytes with surrogateescape: back to the bytes that came.
        return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), self._secret)

    def _answer(self, status: int, outcome: str) -> web.Response:
        self.metrics.inc("webhook_requests_total", outcome=outcome)
        return web.Response(status=status)

    async def handle(self, request: web.Request) -> web.Response:
        if not self._authentic(request):
            return self._answer(401, "bad_secret")
        if not self.accepting:
            return self._answer(503, "stopping")
        try:
            raw = msgspec.json.decode(await request.read())
            update = Update.model_validate(raw, context={"bot": self.bot})
        except (msgspec.DecodeError, ValidationError):
            return self._answer(400, "bad_update")
        if await self._seen(update.update_id):
            return self._answer(200, "duplicate")
        self._in_flight += 1
        self._idle.clear()
        try:
            return await self._handle(update)
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def _handle(self, update: Update) -> web.Response:
        outcome = Outcome()
        try:
            await self.dp.feed_update(self.bot, update, **{_OUTCOME: outcome})
        except Exception as exc:  # the error handler did not take it: same rule as below
            outcome.down = outcome.down or dependency_down(exc)
            if outcome.down is None:
                log.exception("update %s escaped the error handler", update.update_id)
        if outcome.down is not None:
            log.warning("update %s answered 503 (%s unavailable): Telegram delivers it again",
                        update.update_id, outcome.down)  # fmt: skip
            return self._answer(503, "unavailable")
        await self._mark_done(update.update_id)
        return self._answer(200, "handled")

    async def _seen(self, update_id: int) -> bool:
        """Handled already (its answer was lost: a timeout, a kill between the handler
        and the answer)? Without Redis: handle it again, the handlers are idempotent."""
        try:
            return bool(await self.redis.exists(keys.webhook_update_done(update_id)))
        except (RedisError, OSError):
            return False

    async def _mark_done(self, update_id: int) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self.redis.set(keys.webhook_update_done(update_id), 1, ex=DONE_TTL_SECONDS)

    async def drain(self, timeout: float) -> None:
        """Refuse new updates (503: Telegram sends them again) and wait for those in hand."""
        self.accepting = False
        if self._in_flight:
            log.info("stopping: waiting for %d webhook update(s) (up to %.0fs)", self._in_flight, timeout)
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            log.warning("stopping: %d webhook update(s) unfinished after %.0fs", self._in_flight, timeout)


def install(dp: Dispatcher) -> None:
    dp.errors.outer_middleware(note_outages)


def _fingerprint(settings: Settings, allowed_updates: list[str]) -> str:
    """What setWebhook would set, secret included (getWebhookInfo never shows it)."""
    s = settings
    parts = [s.webhook_url, s.webhook_secret, s.webhook_max_connections, sorted(allowed_updates)]
    return hashlib.sha256(msgspec.json.encode(parts)).hexdigest()


async def register(bot: Bot, redis: Redis, settings: Settings, allowed_updates: list[str]) -> bool:
    """Point Telegram at WEBHOOK_URL, once for all the processes; True if this one did.

    Under the `bot:webhook` lease, so N processes starting together make one call; the
    holder skips the call when Telegram has the URL and the last call set the same
    fingerprint, so a rolling restart makes none."""
    assert settings.webhook_url is not None and settings.webhook_secret is not None
    lease = Lease(redis, LEASE_NAME, ttl=30.0)
    deadline = asyncio.get_running_loop().time() + LEASE_WAIT_SECONDS
    while not await lease.refresh():
        if asyncio.get_running_loop().time() > deadline:
            log.warning("webhook: another process held %s for %.0fs; left the webhook to it",
                        lease.key, LEASE_WAIT_SECONDS)  # fmt: skip
            return False
        await asyncio.sleep(0.2)
    try:
        wanted = _fingerprint(settings, allowed_updates)
        info = await bot.get_webhook_info()
        if info.url == settings.webhook_url and await redis.get(keys.WEBHOOK_FINGERPRINT) == wanted:
            log.info("webhook: %s already set", settings.webhook_url)
            return False
        await bot.set_webhook(
            settings.webhook_url,
            secret_token=settings.webhook_secret,
            max_connections=settings.webhook_max_connections,
            allowed_updates=allowed_updates,
        )
        await redis.set(keys.WEBHOOK_FINGERPRINT, wanted)
        log.info("webhook: set %s (max_connections=%d, %s)", settings.webhook_url,
                 settings.webhook_max_connections, ",".join(allowed_updates))  # fmt: skip
        return True
    finally:
        await lease.release()


async def unregister(bot: Bot, redis: Redis) -> None:
    """Polling mode: a webhook left from webhook mode would make every getUpdates a 409.
    Its pending updates stay with Telegram and come through polling."""
    info = await bot.get_webhook_info()
    if info.url:
        await bot.delete_webhook(drop_pending_updates=False)
        log.info("webhook %s deleted: polling", info.url)
    await redis.delete(keys.WEBHOOK_FINGERPRINT)
