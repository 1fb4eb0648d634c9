"""aiogram's CallbackAnswerMiddleware, except that a failing handler's press is
answered by the error handler, and a press whose screen must wait for the send
budget is answered at once.

aiogram's answers in a `finally`: when a handler raises, the press is answered
empty before the error handler runs, whose alert ("something went wrong") then
cannot be shown because a callback query is answered only once. Here a handler
that raises disables the automatic answer on its way out; the error handler
answers instead (orbit/bot/errors.py), so every press still gets one answer.

Telegram does not count `answerCallbackQuery` against the bot's message limits, so
when a screen has to queue (orbit/bot/send_budget.py) the press is answered before
the wait (`answer_press_now`) and no spinner hangs; a text the handler sets after
that is logged, not raised.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from aiogram.exceptions import TelegramAPIError
from aiogram.methods import AnswerCallbackQuery
from aiogram.types import CallbackQuery, TelegramObject
from aiogram.utils.callback_answer import CallbackAnswer, CallbackAnswerMiddleware

from orbit.bot.middlewares import Handler
from orbit.i18n import plain_text

log = logging.getLogger(__name__)

# The press of the update being handled in this task, answerable early.
_PRESS: ContextVar[Callable[[], Awaitable[None]] | None] = ContextVar("orbit_press", default=None)


async def answer_press_now() -> None:
    """Answer the press being handled, if it is still unanswered (no-op elsewhere)."""
    answer = _PRESS.get()
    if answer is not None:
        await answer()


class EarlyAnswer(CallbackAnswer):
    """A CallbackAnswer that may be sent before its handler ends."""

    def mark_answered(self) -> None:
        self._answered = True

    def _late(self, what: str) -> bool:
        if self._answered:
            log.info("press answered early (its screen queued): %s not shown", what)
            return True
        return False

    @property  # type: ignore[override]
    def text(self) -> str | None:
        return self._text

    @text.setter
    def text(self, value: str | None) -> None:
        if not self._late(f"text {value!r}"):
            self._text = value

    @property  # type: ignore[override]
    def show_alert(self) -> bool | None:
        return self._show_alert

    @show_alert.setter
    def show_alert(self, value: bool | None) -> None:
        if not self._late("alert"):
            self._show_alert = value


class AnswerUnlessFailed(CallbackAnswerMiddleware):
    def construct_callback_answer(self, properties: dict[str, Any] | bool | None) -> CallbackAnswer:
        base = super().construct_callback_answer(properties)
        return EarlyAnswer(
            answered=base.answered,
            disabled=base.disabled,
            text=base.text,
            show_alert=base.show_alert,
            url=base.url,
            cache_time=base.cache_time,
        )

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        async def handle(event: TelegramObject, data: dict[str, Any]) -> Any:
            answer: CallbackAnswer | None = data.get("callback_answer")

            async def now() -> None:
                if (
                    isinstance(answer, EarlyAnswer)
                    and isinstance(event, CallbackQuery)
                    and not answer.disabled
                    and not answer.answered
                ):
                    answer.mark_answered()
                    try:
                        await self.answer(event, answer)
                    except TelegramAPIError as exc:  # too old, say: the screen still goes out
                        log.info("early answer to press %s failed: %s", event.id, exc)

            token = _PRESS.set(now)
            try:
                return await handler(event, data)
            except Exception:
                if answer is not None and not answer.answered:
                    answer.disable()  # the error handler answers this press
                raise
            finally:
                _PRESS.reset(token)

        return await super().__call__(handle, event, data)

    def answer(self, event: CallbackQuery, callback_answer: CallbackAnswer) -> AnswerCallbackQuery:
        # Alert texts are catalog messages (HTML, values escaped); an alert parses no HTML.
        return event.answer(
            text=None if callback_answer.text is None else plain_text(callback_answer.text),
            show_alert=callback_answer.show_alert,
            url=callback_answer.url,
            cache_time=callback_answer.cache_time,
        )
