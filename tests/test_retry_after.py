"""The bot's reply path waits out a short 429 once and gives a long one to the error handler."""

from __future__ import annotations

from typing import Any

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import AnswerCallbackQuery

from orbit.bot.metrics import Metrics
from orbit.bot.retry_after import RetryAfterMiddleware

METHOD = AnswerCallbackQuery(callback_query_id="1")


class Requests:
    """The next step of the request chain: fails with the given 429s, then succeeds."""

    def __init__(self, *retry_afters: int) -> None:
        self.pending = list(retry_afters)
        self.calls = 0

    async def __call__(self, bot: Bot, method: Any) -> Any:
        self.calls += 1
        if self.pending:
            raise TelegramRetryAfter(method, "Too Many Requests", self.pending.pop(0))
        return True


async def test_a_short_limit_is_waited_out_once() -> None:
    metrics = Metrics()
    requests = Requests(0)
    result = await RetryAfterMiddleware(metrics)(requests, Bot("1:x"), METHOD)  # type: ignore[arg-type]
    assert result is True and requests.calls == 2
    assert metrics.value("telegram_retry_after_total", outcome="waited") == 1


async def test_a_second_limit_and_a_long_limit_go_to_the_error_handler() -> None:
    metrics = Metrics()
    twice = Requests(0, 0)
    with pytest.raises(TelegramRetryAfter):
        await RetryAfterMiddleware(metrics)(twice, Bot("1:x"), METHOD)  # type: ignore[arg-type]
    assert twice.calls == 2
    long = Requests(30)
    with pytest.raises(TelegramRetryAfter):
        await RetryAfterMiddleware(metrics, max_wait=5)(long, Bot("1:x"), METHOD)  # type: ignore[arg-type]
    assert long.calls == 1  # no 30-second wait inside a button press
    assert metrics.value("telegram_retry_after_total", outcome="gave_up") == 1
