"""Polling that does not confirm a payment's update before it was handled.

aiogram's polling confirms an update (the next getUpdates carries its offset)
as soon as it has started the update's task, so a bot killed while crediting
`successful_payment` never hears of it again: Telegram took the Stars, we
recorded nothing. For an update carrying a payment (`successful_payment`,
`refunded_payment`) this dispatcher waits, before reading on, until the
update was handled (bounded by `PAYMENT_WAIT_SECONDS`): a crash in that window
means Telegram delivers it again, and the handler is idempotent by charge id.
Reconciliation (`orbit/payments/stars_reconcile.py`) covers what remains.

Other updates are not held: a payment is rare, a press is not.
It overrides aiogram's private `_listen_updates`; tests/e2e/test_payments_crash.py
fails if a new aiogram stops calling it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.types import TelegramObject, Update

log = logging.getLogger(__name__)

PAYMENT_WAIT_SECONDS = 30.0


def carries_payment(update: Update) -> bool:
    message = update.message
    return message is not None and (
        message.successful_payment is not None or message.refunded_payment is not None
    )


class PaymentSafeDispatcher(Dispatcher):
    def __init__(self, *args: Any, payment_wait: float = PAYMENT_WAIT_SECONDS, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.payment_wait = payment_wait
        self._payments_in_flight: dict[int, asyncio.Event] = {}
        # Registered first, so outermost: the update counts as handled once everything ran.
        self.update.outer_middleware(self._mark_handled)

    async def _mark_handled(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        try:
            return await handler(event, data)
        finally:
            if isinstance(event, Update) and (done := self._payments_in_flight.get(event.update_id)):
                done.set()

    async def _listen_updates(  # type: ignore[override]
        self, bot: Bot, *args: Any, **kwargs: Any
    ) -> AsyncGenerator[Update, None]:
        async for update in super()._listen_updates(bot, *args, **kwargs):
            if not carries_payment(update):
                yield update
                continue
            done = self._payments_in_flight.setdefault(update.update_id, asyncio.Event())
            try:
                yield update
                # Resumed when polling wants the next update: the handler's task exists;
                # reading on could confirm this update's offset, so wait for it first.
                await asyncio.wait_for(done.wait(), self.payment_wait)
            except TimeoutError:
                log.warning("payment update %d not handled within %.0fs", update.update_id, self.payment_wait)
            finally:
                self._payments_in_flight.pop(update.update_id, None)
