"""Maintenance mode in the bot (orbit/maintenance.py): while it is on, a user who is
not an admin gets one polite message per maintenance period and then silence;
every press is still answered (silently). Payments Telegram reports (pre-checkout
queries, `successful_payment`, `refunded_payment`) and block/unblock updates go
on as usual, so money paid meanwhile reaches the balance; TON and Crypto Pay are
credited by other processes and never pass here.

The switch is read from Redis at most once a second per process (`CACHE_SECONDS`):
turning maintenance on or off takes effect within a second, and a flood does not
cost a round trip per update.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from aiogram import BaseMiddleware
from aiogram.exceptions import TelegramAPIError
from aiogram.types import TelegramObject, Update
from aiogram_i18n import I18nContext
from redis.asyncio import Redis
from redis.exceptions import RedisError

from orbit import maintenance
from orbit.bot.middlewares import Handler
from orbit.i18n import plain_text
from orbit.maintenance import Maintenance
from orbit.settings import Settings

log = logging.getLogger(__name__)

CACHE_SECONDS = 1.0


def _lets_through(update: Update) -> bool:
    """Updates that must be handled in maintenance too: money and block bookkeeping."""
    if update.pre_checkout_query is not None or update.my_chat_member is not None:
        return True
    message = update.message
    return message is not None and (
        message.successful_payment is not None or message.refunded_payment is not None
    )


class MaintenanceGate(BaseMiddleware):
    def __init__(self, settings: Settings, redis: Redis) -> None:
        self.admin_ids = frozenset(settings.admin_ids)
        self.redis = redis
        self._state: Maintenance | None = None
        self._read_at = float("-inf")

    async def _current(self) -> Maintenance | None:
        now = time.monotonic()
        if now - self._read_at >= CACHE_SECONDS:
            # Marked read before the round trip: the updates that arrive meanwhile use the
            # last state instead of each sending a GET of their own (a burst a second).
            self._read_at = now
            try:
                self._state = await maintenance.read(self.redis)
            except (RedisError, OSError) as exc:  # keep the last known state; the bot serves on
                log.warning("maintenance switch unreadable: %s", exc)
        return self._state

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        if not isinstance(event, Update) or _lets_through(event):
            return await handler(event, data)
        state = await self._current()
        user = data.get("event_from_user")
        if state is None or user is None or user.id in self.admin_ids:
            return await handler(event, data)
        try:
            tell = await maintenance.first_time(self.redis, state, user.id)
        except (RedisError, OSError):
            tell = False  # silence rather than a message per update
        i18n: I18nContext = data["i18n"]
        text = state.message or i18n.get("maintenance-text")
        try:
            if event.callback_query is not None:
                await event.callback_query.answer(plain_text(text) if tell else None, show_alert=tell)
            elif tell and event.message is not None:
                await event.message.answer(text)
        except TelegramAPIError as exc:
            log.info("maintenance notice to user %d not delivered: %s", user.id, exc)
        return None
