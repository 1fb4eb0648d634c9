"""Direct replies wait out a short flood limit instead of failing the user's press.

Telegram answers 429 with `retry_after` when a chat (or the bot) sends too fast.
A reply to a button or a command is worth a short wait: the press then ends as
the user expects rather than with "something went wrong". A long wait is not
worth it (a callback query must be answered within seconds), so the error goes
on to the error handler, which tells the user. The outbox sender has its own
bot without this middleware: it reschedules a limited row instead of waiting.
"""

from __future__ import annotations

import asyncio
import logging

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType

from orbit.bot.metrics import Metrics

log = logging.getLogger(__name__)

MAX_WAIT_SECONDS = 5.0


class RetryAfterMiddleware(BaseRequestMiddleware):
    def __init__(self, metrics: Metrics, max_wait: float = MAX_WAIT_SECONDS) -> None:
        self.metrics = metrics
        self.max_wait = max_wait

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        try:
            return await make_request(bot, method)
        except TelegramRetryAfter as exc:
            if exc.retry_after > self.max_wait:
                self.metrics.inc("telegram_retry_after_total", outcome="gave_up")
                raise
            self.metrics.inc("telegram_retry_after_total", outcome="waited")
            log.info("%s: flood limit, retrying in %ss", method.__api_method__, exc.retry_after)
            await asyncio.sleep(exc.retry_after)
            return await make_request(bot, method)  # a second 429 goes to the error handler
