"""The bot talks to users in their private chats only.

In a group, supergroup or channel every update is dropped before anything else
runs: no rate-limit hit, no user row, no handler. So a `/start` there registers
nobody, `/admin` posts no panel where members would read it, and a member's press
on a message the bot once posted there edits nothing. The press is still answered
(a short notice only the presser sees), else their client would spin.

Payments Telegram reports (`successful_payment`, `refunded_payment`) pass wherever
they come from: money a user paid must reach their balance. Updates without a
chat (pre-checkout queries) are not about a chat and pass too.

The first outer middleware after aiogram's context one (`install`), rather than a
filter on every router: one attribute check per update, and a refused update
costs nothing further (docs/ARCHITECTURE.md, bench/bench_menu.py).
"""

from __future__ import annotations

import logging
from typing import Any

from aiogram import BaseMiddleware, Bot, Dispatcher
from aiogram.dispatcher.middlewares.user_context import UserContextMiddleware
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramAPIError
from aiogram.types import Chat, TelegramObject, Update, User

from orbit.bot.middlewares import Handler
from orbit.i18n import Translator, language_for, plain_text
from orbit.metrics import Metrics

log = logging.getLogger(__name__)

PRIVATE = ChatType.PRIVATE.value


class PrivateChatsOnly(BaseMiddleware):
    def __init__(self, translator: Translator, metrics: Metrics) -> None:
        self.translator = translator
        self.metrics = metrics

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        chat: Chat | None = data.get("event_chat")
        if chat is None or chat.type == PRIVATE or not isinstance(event, Update):
            return await handler(event, data)
        message = event.message
        if message is not None and (message.successful_payment or message.refunded_payment):
            return await handler(event, data)
        self.metrics.inc("group_updates_dropped_total", chat_type=str(chat.type))
        if event.callback_query is not None:
            user: User | None = data.get("event_from_user")
            locale = language_for(user.language_code if user else None)
            text = plain_text(self.translator(locale, "private-only"))
            bot: Bot = data["bot"]
            try:
                await bot.answer_callback_query(event.callback_query.id, text)
            except TelegramAPIError as exc:
                log.info("press in chat %d not answered: %s", chat.id, exc)
        return None


def install(dp: Dispatcher, middleware: PrivateChatsOnly) -> None:
    """Register `middleware` right after aiogram's context middleware (which finds the
    update's chat), ahead of the FSM/rate-limit read and the user row."""
    manager = dp.update.outer_middleware
    middlewares = list(manager)
    position = next(i for i, m in enumerate(middlewares) if isinstance(m, UserContextMiddleware)) + 1
    after = middlewares[position:]
    for m in after:
        manager.unregister(m)
    manager.register(middleware)
    for m in after:
        manager.register(m)
