"""The bot's real dispatcher in this process, fed updates the Telegram emulator made.

As `bench/bench_menu.py` does: the emulator (in-process here, real HTTP) turns
control-API messages and presses into updates, `getUpdates` hands them over, and
`Dispatcher.feed_update` runs them through `build_dispatcher()`'s whole stack
(user row from Postgres, rate limit + FSM state in Redis, aiogram-i18n, the
callback-answer middleware, every router, the error handler). Faster than a bot
process, so property tests can feed hundreds of updates.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import asyncpg
import msgspec
from aiogram import Bot, Dispatcher, Router
from aiogram.filters.callback_data import CallbackData, CallbackQueryFilter
from aiogram.types import Update
from redis.asyncio import Redis

from orbit.bot.process import build_dispatcher, install_send_budget
from orbit.bot.routers import get_routers, menu
from orbit.bot_client import create_bot
from orbit.metrics import Metrics
from orbit.plans import load_plans
from orbit.runtime import Context
from orbit.sandbox.telegram import TelegramEmulator
from orbit.sandbox.telegram_control import CallbackAnswer, RateLimits, TelegramControl
from orbit.settings import Settings
from orbit.ui.callbacks import MenuCb


def button_classes() -> list[type[CallbackData]]:
    """Every CallbackData class a handler of the bot filters on (the dispatcher's own
    menu handlers compare packed `MenuCb` data, so MenuCb is added)."""
    found: dict[str, type[CallbackData]] = {MenuCb.__prefix__: MenuCb}
    own = Router(name="dispatcher")  # stands for the dispatcher, which holds the menu's handlers
    menu.register(own)
    for top in [own, *get_routers()]:
        for router in top.chain_tail:
            for handler in router.callback_query.handlers:
                for f in handler.filters or ():
                    if isinstance(f.callback, CallbackQueryFilter):
                        cls = f.callback.callback_data
                        found[cls.__prefix__] = cls
    return sorted(found.values(), key=lambda cls: cls.__prefix__)


class BotHarness:
    def __init__(
        self, dp: Dispatcher, bot: Bot, control: TelegramControl, metrics: Metrics,
        emulator: TelegramEmulator,
    ) -> None:
        self.dp = dp
        self.bot = bot
        self.control = control
        self.metrics = metrics
        self.emulator = emulator
        self._offset = 0

    async def _feed_next(self) -> Update:
        batch = await self.bot.get_updates(offset=self._offset, limit=1, timeout=2)
        assert batch, "the emulator made no update"
        update = batch[0]
        self._offset = update.update_id + 1
        await self.dp.feed_update(self.bot, update)
        return update

    async def send(self, user_id: int, text: str, **profile: Any) -> Update:
        """The user writes `text`; returns once the bot has handled it."""
        await self.control.send_text(user_id, text, **profile)
        return await self._feed_next()

    async def press(self, user_id: int, data: str) -> CallbackAnswer:
        """The user presses a button carrying `data` (forged: any data at all)."""
        pressed = await self.control.press(user_id, data=data, forge=True)
        await self._feed_next()
        return await self.control.callback_answer(pressed.callback_query_id, timeout=0.5)

    def handler_errors(self) -> list[str]:
        """What the error handler counted: exceptions that escaped a handler."""
        return [
            line
            for line in self.metrics.render().splitlines()
            if line.startswith("orbit_handler_errors_total{")
        ]


@asynccontextmanager
async def running_bot(
    settings: Settings,
    pool: asyncpg.Pool,
    redis: Redis,
    http: aiohttp.ClientSession,
    *,
    telegram_limits: bool = True,
) -> AsyncIterator[BotHarness]:
    """`settings` without a token or API URL: the harness's emulator provides both.

    `telegram_limits=False` only where the test is about inputs, not pacing (the fuzz
    tests): one message a second per chat would make hundreds of examples take minutes."""
    emulator = TelegramEmulator(rate_limits=RateLimits(enabled=telegram_limits))
    url = await emulator.start()
    settings = msgspec.structs.replace(
        settings, bot_token="123456:HARNESS-token", telegram_api_url=url
    )
    bot = create_bot(settings)
    metrics = Metrics()
    if telegram_limits:  # as the bot process does: the budget paces replies to the limits
        install_send_budget(bot, redis, settings, metrics)
    dp = build_dispatcher(Context("bot", settings, pool, redis, http, load_plans(settings)), metrics)
    try:
        await bot.get_me()
        await dp.emit_startup(bot=bot, dispatcher=dp, bots=[bot])
        yield BotHarness(dp, bot, TelegramControl(url, http), metrics, emulator)
    finally:
        await dp.emit_shutdown(bot=bot, dispatcher=dp, bots=[bot])
        await dp.storage.close()
        await bot.session.close()
        await emulator.stop()
        detach_routers()


def detach_routers() -> None:
    """The routers are module-level objects and aiogram attaches a router once:
    free them for the next test's dispatcher."""
    for router in get_routers():
        router._parent_router = None
