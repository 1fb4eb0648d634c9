"""aiogram's CallbackAnswerMiddleware, except that a failing handler's press is
answered by the error handler.

aiogram's answers in a `finally`: when a handler raises, the press is answered
empty before the error handler runs, whose alert ("something went wrong") then
cannot be shown because a callback query is answered only once. Here only a
handler that returned gets the automatic answer; the error handler answers the
rest (orbit/bot/errors.py), so every press still gets exactly one answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram.dispatcher.flags import get_flag
from aiogram.types import CallbackQuery, TelegramObject
from aiogram.utils.callback_answer import CallbackAnswerMiddleware


class AnswerUnlessFailed(CallbackAnswerMiddleware):
    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        if not isinstance(event, CallbackQuery):
            return await handler(event, data)
        answer = data["callback_answer"] = self.construct_callback_answer(
            properties=get_flag(data, "callback_answer"),
        )
        if not answer.disabled and answer.answered:  # `pre`: answered before the handler
            await self.answer(event, answer)
        result = await handler(event, data)
        if not answer.disabled and not answer.answered:
            await self.answer(event, answer)
        return result
