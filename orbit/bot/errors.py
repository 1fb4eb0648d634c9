"""The last error boundary: log once, and never leave a button spinning."""

from __future__ import annotations

import contextlib
import logging
import math

import asyncpg
from aiogram import Bot, Dispatcher
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramRetryAfter,
)
from aiogram.types import ErrorEvent

from orbit.bot.api_failures import BOT_API_FAILURES, describe
from orbit.i18n import Translator, language_for, plain_text
from orbit.metrics import Metrics
from orbit.outages import dependency_down
from orbit.users.queries import UserRow, mark_blocked

log = logging.getLogger(__name__)


def setup_errors(dp: Dispatcher) -> None:
    @dp.errors()
    async def on_error(
        event: ErrorEvent,
        bot: Bot,
        translator: Translator,
        metrics: Metrics,
        pool: asyncpg.Pool,
        user: UserRow | None = None,  # the row, when the user middleware got that far
    ) -> bool:
        update = event.update
        sender = update.event.from_user if hasattr(update.event, "from_user") else None
        if isinstance(event.exception, TelegramForbiddenError) and sender is not None:
            # The user blocked the bot: notifications skip them until they write again.
            await mark_blocked(pool, sender.id)
            metrics.inc("users_blocked_total")
            log.info("user %s blocked the bot (update %s)", sender.id, update.update_id)
            if update.callback_query is not None:  # still stop the button's spinner
                with contextlib.suppress(*BOT_API_FAILURES):
                    await bot.answer_callback_query(update.callback_query.id)
            return True
        if isinstance(event.exception, TelegramRetryAfter):
            # Expected under a crowd: the send budget waited as long as it may. One line,
            # and no message that would queue behind the same flood; a press gets an
            # alert (Telegram does not count callback answers against the limits).
            metrics.inc("handler_flood_total")
            log.warning("update %s: flood limit outlasted the send budget (retry after %ss)",
                        update.update_id, event.exception.retry_after)
            if sender is not None and update.callback_query is not None:
                locale = user.language if user is not None else language_for(sender.language_code)
                seconds = max(1, math.ceil(event.exception.retry_after))
                text = translator(locale, "rate-limited", seconds=seconds)
                await _alert(bot, update.callback_query.id, text)
            return True
        metrics.inc("handler_errors_total", kind=type(event.exception).__name__)
        down = dependency_down(event.exception)
        if down is not None:  # expected while it restarts; the user is told to try again
            # The exception as an argument: repeats collapse (orbit.outages.RepeatedOutageLines).
            log.warning("update %s failed: %s unavailable (%r)", event.update.update_id, down,
                        event.exception)
        else:
            log.error("update %s failed: %r", event.update.update_id, event.exception,
                      exc_info=event.exception)
        if sender is None:
            return True
        # The stored language choice when the row was loaded, else Telegram's.
        locale = user.language if user is not None else language_for(sender.language_code)
        text = translator(locale, "error-generic")
        try:
            if update.callback_query is not None and await _alert(bot, update.callback_query.id, text):
                return True
            if update.callback_query is not None or update.message is not None:
                await bot.send_message(sender.id, text)
        except BOT_API_FAILURES as exc:
            log.warning("could not tell user %s about the error: %s", sender.id, describe(exc))
        return True


async def _alert(bot: Bot, callback_query_id: str, text: str) -> bool:
    """Tell a press's user in an alert; False when the press was answered already (a
    handler flagged `pre` is answered before it runs), so a message must tell them."""
    try:
        await bot.answer_callback_query(callback_query_id, plain_text(text), show_alert=True)
    except TelegramBadRequest:
        return False
    except BOT_API_FAILURES as exc:
        log.warning("press %s: alert not shown: %s", callback_query_id, describe(exc))
        return False
    return True
