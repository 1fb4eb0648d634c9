"""The last error boundary: log once, and never leave a button spinning."""

from __future__ import annotations

import logging
import math

import asyncpg
from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramAPIError, TelegramForbiddenError, TelegramRetryAfter
from aiogram.types import ErrorEvent

from orbit.bot.metrics import Metrics
from orbit.i18n import Translator, language_for
from orbit.users.queries import mark_blocked

log = logging.getLogger(__name__)


def setup_errors(dp: Dispatcher) -> None:
    @dp.errors()
    async def on_error(
        event: ErrorEvent, bot: Bot, translator: Translator, metrics: Metrics, pool: asyncpg.Pool
    ) -> bool:
        update = event.update
        user = update.event.from_user if hasattr(update.event, "from_user") else None
        if isinstance(event.exception, TelegramForbiddenError) and user is not None:
            # The user blocked the bot: notifications skip them until they write again.
            await mark_blocked(pool, user.id)
            metrics.inc("users_blocked_total")
            log.info("user %s blocked the bot (update %s)", user.id, update.update_id)
            return True
        metrics.inc("handler_errors_total", kind=type(event.exception).__name__)
        log.error("update %s failed: %r", event.update.update_id, event.exception,
                  exc_info=event.exception)
        if user is None:
            return True
        locale = language_for(user.language_code)
        if isinstance(event.exception, TelegramRetryAfter):  # a flood limit too long to wait out
            seconds = max(1, math.ceil(event.exception.retry_after))
            text = translator(locale, "rate-limited", seconds=seconds)
        else:
            text = translator(locale, "error-generic")
        try:
            if update.callback_query is not None:
                await bot.answer_callback_query(update.callback_query.id, text, show_alert=True)
            elif update.message is not None:
                await bot.send_message(user.id, text)
        except TelegramAPIError as exc:
            log.warning("could not tell user %s about the error: %s", user.id, exc)
        return True
