"""The bot process: checks its token with getMe, serves HTTP, polls Telegram."""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack

import asyncpg
from aiogram import Bot, Dispatcher
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramNetworkError,
    TelegramUnauthorizedError,
)
from aiogram.fsm.storage.redis import RedisStorage
from aiohttp import web
from redis.asyncio import Redis

from orbit import keys
from orbit.bot import http, routers, webhook
from orbit.bot.api_failures import describe
from orbit.bot.commands import set_commands
from orbit.bot.errors import setup_errors
from orbit.bot.fsm_keys import UserTaggedKeys
from orbit.bot.http_limits import BoundedAppRunner, HttpLimits
from orbit.bot.inflight import wait_for_updates_on_shutdown
from orbit.bot.middlewares import private_only
from orbit.bot.middlewares.banned import RefuseBanned
from orbit.bot.middlewares.callback_answer import AnswerUnlessFailed
from orbit.bot.middlewares.locale import UserI18nMiddleware, UserLocaleManager
from orbit.bot.middlewares.maintenance import MaintenanceGate
from orbit.bot.middlewares.private_only import PrivateChatsOnly
from orbit.bot.middlewares.registered import RequireRegistered
from orbit.bot.middlewares.throttling import install_throttling
from orbit.bot.middlewares.update_metrics import UpdateMetrics
from orbit.bot.middlewares.user import UserMiddleware
from orbit.bot.payment_polling import PaymentSafeDispatcher
from orbit.bot.responses import pin_response_types
from orbit.bot.routers import admin, admin_card
from orbit.bot.send_budget import SendBudget
from orbit.bot_client import create_bot
from orbit.connections import StartupError, create_redis
from orbit.i18n import DEFAULT_LOCALE, Translator, create_core
from orbit.marzban.instances import ensure_legacy_instance
from orbit.marzban.passwords import check_passwords
from orbit.marzban.provisioning import PanelDeps
from orbit.metrics import Metrics
from orbit.outbox import queries as outbox_queries
from orbit.outbox.limiter import SendLimiter
from orbit.outbox.sender import OutboxSender
from orbit.ratelimit import RateLimiter
from orbit.runtime import Context, Job, Worker
from orbit.settings import Settings

log = logging.getLogger(__name__)

GETME_ATTEMPTS = 5  # the Bot API (or the sandbox emulator) may still be starting


async def check_token(bot: Bot, settings: Settings) -> None:
    for attempt in range(1, GETME_ATTEMPTS + 1):
        try:
            me = await bot.get_me()
        except TelegramUnauthorizedError:
            raise StartupError("BOT_TOKEN was rejected by the Bot API (401 Unauthorized)") from None
        except TelegramNetworkError as exc:
            if attempt == GETME_ATTEMPTS:
                raise StartupError(f"Bot API at {settings.telegram_api_url}: {exc}") from None
            await asyncio.sleep(attempt)
            continue
        except TelegramAPIError as exc:
            raise StartupError(f"Bot API at {settings.telegram_api_url} failed: {exc}") from None
        except ClientDecodeError as exc:  # HTML from a proxy, or no Bot API at that URL
            raise StartupError(f"Bot API at {settings.telegram_api_url}: {describe(exc)}") from None
        log.info("bot @%s (id %d) via %s", me.username, me.id, settings.telegram_api_url)
        return


def build_dispatcher(ctx: Context, metrics: Metrics) -> Dispatcher:
    """Dependencies reach handlers by parameter name (aiogram's DI), never as globals."""
    core = create_core()
    translator = Translator(core)
    # A payment's update is confirmed to Telegram only once handled (see the module).
    dp = PaymentSafeDispatcher(
        # Its own client: aiogram closes the storage's connection pool at shutdown, which
        # would cut the shared client's pub/sub, heartbeat and lease from under the worker.
        storage=RedisStorage(create_redis(ctx.settings), key_builder=UserTaggedKeys()),
        settings=ctx.settings,
        pool=ctx.pool,
        redis=ctx.redis,
        http=ctx.http,
        panel_deps=PanelDeps(ctx.pool, ctx.redis, ctx.http, ctx.settings, translator),
        plans=ctx.plans,
        translator=translator,
        metrics=metrics,
        pinned_response_types=pin_response_types(),  # held for the process' life (see module)
    )
    # First of the shutdown handlers: in-flight updates finish before i18n shuts down.
    wait_for_updates_on_shutdown(dp, timeout=max(1.0, ctx.settings.shutdown_grace_seconds - 2))
    dp.update.outer_middleware(UpdateMetrics(metrics))  # counts and times every update
    # Groups and channels end here: before the rate limit, the user row or any handler.
    private_only.install(dp, PrivateChatsOnly(translator, metrics))
    # Order matters: the user row is loaded before the locale is chosen from it.
    dp.update.outer_middleware(UserMiddleware(ctx.pool))
    UserI18nMiddleware(
        core=core, manager=UserLocaleManager(), default_locale=DEFAULT_LOCALE
    ).setup(dispatcher=dp)
    dp.update.outer_middleware(RefuseBanned(ctx.settings, ctx.pool))  # needs the row and i18n
    dp.update.outer_middleware(MaintenanceGate(ctx.settings, ctx.redis))  # needs i18n
    dp.callback_query.middleware(AnswerUnlessFailed())
    # Every button needs a user who pressed /start, but help (flagged) and the admin
    # screens (their router's filter lets admins alone in).
    dp.callback_query.middleware(RequireRegistered(open_routers=[admin.router, admin_card.router]))
    routers.install(dp)
    limiter = RateLimiter(ctx.redis, scale=ctx.settings.rate_limit_scale)
    dp["rate_limiter"] = limiter  # the fallback's hint takes its own tokens
    # Replaces aiogram's FSM middleware: the rate limit and the state read are one round trip.
    install_throttling(dp, limiter, metrics)
    setup_errors(dp)
    return dp


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


async def start_http(
    ctx: Context,
    stack: AsyncExitStack,
    metrics: Metrics,
    translator: Translator,
    telegram: webhook.TelegramWebhook | None = None,
) -> None:
    """The webhook listener, and /healthz + /metrics where only the host can reach them:
    their own listener (METRICS_HOST:METRICS_PORT), or the webhook's while it is on loopback.

    With Telegram's webhook (`telegram`) the listener takes SO_REUSEPORT: N bot processes
    share one port and the kernel spreads the connections among them (README, webhook mode)."""
    s = ctx.settings
    limits = HttpLimits(
        header_timeout=s.bot_http_header_timeout_seconds,
        body_timeout=s.bot_http_body_timeout_seconds,
        max_connections=s.bot_http_max_connections,
        max_body_bytes=s.bot_http_max_body_bytes,
    )
    ops_apart = s.metrics_port != 0
    ops_on_webhook = not ops_apart and is_loopback(s.bot_http_host)
    if not ops_apart and not ops_on_webhook:
        log.warning(
            "/healthz and /metrics are not served: BOT_HTTP_HOST=%s is reachable beyond this host;"
            " set METRICS_PORT to serve them on METRICS_HOST (%s)", s.bot_http_host, s.metrics_host,
        )  # fmt: skip
    route = None if telegram is None else (webhook.path_of(s.webhook_url or ""), telegram.handle)
    hooks = http.create_app(
        ctx.pool, ctx.redis, metrics, s, translator,
        limits=limits, ops=ops_on_webhook, probe=ctx.probe(), telegram=route,
    )  # fmt: skip
    shared = telegram is not None
    await _listen(stack, hooks, s.bot_http_host, s.bot_http_port, limits, metrics, reuse_port=shared)
    if ops_apart:
        ops = http.create_app(
            ctx.pool, ctx.redis, metrics, limits=limits, webhooks=False, probe=ctx.probe()
        )
        await _listen(stack, ops, s.metrics_host, s.metrics_port, limits, metrics)


async def _listen(
    stack: AsyncExitStack,
    app: web.Application,
    host: str,
    port: int,
    limits: HttpLimits,
    metrics: Metrics,
    *,
    reuse_port: bool = False,
) -> None:
    runner = BoundedAppRunner(app, limits, metrics)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None)
    try:
        await site.start()
    except OSError as exc:
        raise StartupError(f"cannot listen on {host}:{port}: {exc}") from None
    log.info("HTTP on %s:%d: %s", host, port, ", ".join(sorted(r.canonical for r in app.router.resources())))


async def outbox_gauges(pool: asyncpg.Pool, metrics: Metrics) -> None:
    """The outbox's depth and its oldest due row's age, read once per scrape."""
    depth = await outbox_queries.depth(pool)
    metrics.set("outbox_depth", depth.pending, state="pending")
    metrics.set("outbox_depth", depth.due, state="due")
    metrics.set("outbox_oldest_due_age_seconds", depth.oldest_due_age)


def install_send_budget(bot: Bot, redis: Redis, settings: Settings, metrics: Metrics) -> SendBudget:
    """One budget (Redis, every bot process): replies reserve their turn ahead of the
    outbox, whose sender has its own bot without this middleware and its own lanes."""
    limiter = SendLimiter(redis, settings.outbox_rate_per_second)
    budget = SendBudget(limiter, metrics, max_wait=settings.send_max_wait_seconds)
    bot.session.middleware(budget)
    return budget


async def setup(ctx: Context, stack: AsyncExitStack) -> Job:
    bot = create_bot(ctx.settings)
    stack.push_async_callback(bot.session.close)
    await check_token(bot, ctx.settings)
    await check_passwords(ctx.pool, ctx.settings)  # encrypted panel passwords need the key
    await ensure_legacy_instance(ctx.pool, ctx.settings)  # S001_* → instance s001
    metrics = ctx.metrics
    budget = install_send_budget(bot, ctx.redis, ctx.settings, metrics)
    sender_bot = create_bot(ctx.settings)
    stack.push_async_callback(sender_bot.session.close)
    dp = build_dispatcher(ctx, metrics)
    await set_commands(bot, dp["translator"])
    if ctx.settings.webhook_url:
        serve = await start_webhook(ctx, stack, dp, bot, metrics)
    else:
        await start_http(ctx, stack, metrics, dp["translator"])
        await _telegram_call("deleteWebhook", webhook.unregister(bot, ctx.redis))
        serve = _polling(ctx, dp, bot)

    sender = OutboxSender(
        sender_bot, ctx.pool, budget.limiter, ctx.stopping, metrics=metrics, gate=budget.outbox_turn
    )
    metrics.on_scrape(lambda: outbox_gauges(ctx.pool, metrics))
    # What was built so far lives as long as the process: keep it out of the cyclic GC's
    # scans (shorter pauses under load: bench/bench_menu.py, BENCHMARKS.md).
    gc.collect()
    gc.freeze()
    return Job(tick=sender.tick, serve=serve)


async def _telegram_call(what: str, call: Awaitable[object]) -> None:
    try:
        await call
    except (TelegramAPIError, TelegramNetworkError, ClientDecodeError) as exc:
        raise StartupError(f"{what} failed: {describe(exc)}") from None


async def start_webhook(
    ctx: Context, stack: AsyncExitStack, dp: Dispatcher, bot: Bot, metrics: Metrics
) -> Callable[[], Awaitable[None]]:
    """Webhook mode: startup handlers first (i18n loads its catalogs), then the listener,
    then setWebhook (one process; orbit/bot/webhook.py). Updates are answered only once
    handled, so the returned `serve` just waits for the stop and drains what is in hand."""
    assert ctx.settings.webhook_secret is not None
    webhook.install(dp)
    telegram = webhook.TelegramWebhook(dp, bot, ctx.settings.webhook_secret, metrics, ctx.redis)
    data = {"dispatcher": dp, "bots": [bot], **dp.workflow_data}
    await dp.emit_startup(bot=bot, **data)
    await start_http(ctx, stack, metrics, dp["translator"], telegram)
    allowed = dp.resolve_used_update_types()
    await _telegram_call("setWebhook", webhook.register(bot, ctx.redis, ctx.settings, allowed))
    grace = max(1.0, ctx.settings.shutdown_grace_seconds - 2)

    async def serve() -> None:
        try:
            await ctx.stopping.wait()
            await telegram.drain(grace)
        finally:
            await dp.emit_shutdown(bot=bot, **data)

    return serve


def _polling(ctx: Context, dp: Dispatcher, bot: Bot) -> Callable[[], Awaitable[None]]:
    async def serve() -> None:
        polling = asyncio.create_task(
            dp.start_polling(bot, handle_signals=False, close_bot_session=False)
        )
        stop = asyncio.create_task(ctx.stopping.wait())
        await asyncio.wait([polling, stop], return_when=asyncio.FIRST_COMPLETED)
        if not polling.done():
            await dp.stop_polling()
        stop.cancel()
        await polling

    return serve


# The tick is the outbox sender: woken by `orbit:outbox`, and by the timer for retries.
WORKER = Worker(
    name="bot",
    setup=setup,
    interval=10.0,
    channels=(keys.OUTBOX_CHANNEL,),
    require=("bot_token",),
    serves_ops=True,
)
