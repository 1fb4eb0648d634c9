"""aiogram's CallbackAnswerMiddleware, except that a failing handler's press is
answered by the error handler.

aiogram's answers in a `finally`: when a handler raises, the press is answered
empty before the error handler runs, whose alert ("something went wrong") then
cannot be shown because a callback query is answered only once. Here a handler
that raises disables the automatic answer on its way out; the error handler
answers instead (orbit/bot/errors.py), so every press still gets one answer.
"""

from __future__ import annotations

from typing import Any

from aiogram.methods import AnswerCallbackQuery
from aiogram.types import CallbackQuery, TelegramObject
from aiogram.utils.callback_answer import CallbackAnswer, CallbackAnswerMiddleware

from orbit.bot.middlewares import Handler
from orbit.i18n import plain_text


class AnswerUnlessFailed(CallbackAnswerMiddleware):
    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        async def handle(event: TelegramObject, data: dict[str, Any]) -> Any:
            try:
                return await handler(event, data)
            except Exception:
                answer: CallbackAnswer | None = data.get("callback_answer")
                if answer is not None:
                    answer.disable()  # the error handler answers this press
                raise

        return await super().__call__(handle, event, data)

    def answer(self, event: CallbackQuery, callback_answer: CallbackAnswer) -> AnswerCallbackQuery:
        # Alert texts are catalog messages (HTML, values escaped); an alert parses no HTML.
        return event.answer(
            text=None if callback_answer.text is None else plain_text(callback_answer.text),
            show_alert=callback_answer.show_alert,
            url=callback_answer.url,
            cache_time=callback_answer.cache_time,
        )
