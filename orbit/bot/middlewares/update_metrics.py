"""Counts every update by type and outcome and times it (`orbit_updates_total`,
`orbit_update_duration_seconds`): the outermost of our middlewares, so the time
includes the rate limit, the user row and the handler."""

from __future__ import annotations

import time
from typing import Any

from aiogram import BaseMiddleware
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.types import TelegramObject, Update

from orbit.bot.middlewares import Handler
from orbit.metrics import Metrics
from orbit.outages import dependency_down


class UpdateMetrics(BaseMiddleware):
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        kind = event.event_type if isinstance(event, Update) else type(event).__name__
        started = time.perf_counter()
        outcome = "error"
        try:
            result = await handler(event, data)
            outcome = "unhandled" if result is UNHANDLED else "handled"
            return result
        except Exception as exc:
            down = dependency_down(exc)
            if down is not None:
                self.metrics.inc("dependency_errors_total", dependency=down.lower())
            raise
        finally:
            self.metrics.observe("update_duration_seconds", time.perf_counter() - started, type=kind)
            self.metrics.inc("updates_total", type=kind, outcome=outcome)
