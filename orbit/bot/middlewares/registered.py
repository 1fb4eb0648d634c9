"""Keeps handlers for users who pressed /start (a row in `users`).

An inner middleware: it runs only once a handler's filters matched, so an update
that no handler takes falls through to the next router untouched. For someone
without a row (`user` is None, see UserMiddleware) the handler does not run and
the user is asked to press /start; the handler then gets a `UserRow`.

Every button is covered (one instance on the dispatcher's callback queries, so
child routers inherit it); message handlers where a router asks for it. A handler
flagged `flags={OPEN_TO_ALL: True}` runs for everyone, and so do the handlers of
the routers given as `open_routers` (the admin screens, guarded by their own filter).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiogram import BaseMiddleware, Router
from aiogram.dispatcher.flags import get_flag
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message, TelegramObject
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram_i18n import I18nContext

from orbit.bot import screens
from orbit.bot.middlewares import Handler

OPEN_TO_ALL = "open_to_all"


class RequireRegistered(BaseMiddleware):
    def __init__(self, open_routers: Iterable[Router] = ()) -> None:
        self.open_routers = tuple(open_routers)

    async def __call__(
        self,
        handler: Handler,
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        if (
            data["user"] is not None
            or get_flag(data, OPEN_TO_ALL)
            or data["event_router"] in self.open_routers
        ):
            return await handler(event, data)
        i18n: I18nContext = data["i18n"]
        if isinstance(event, CallbackQuery):
            callback_answer: CallbackAnswer = data["callback_answer"]
            if callback_answer.answered:  # answered before the handler (`pre`): no alert left to show
                await screens.show(event, i18n.get("start-first"))
            else:
                callback_answer.text = i18n.get("start-first")
                callback_answer.show_alert = True
        elif isinstance(event, Message):
            state: FSMContext = data["state"]
            await state.clear()  # leave the text-input flow the message was meant for
            await event.answer(i18n.get("start-first"))
        return None
