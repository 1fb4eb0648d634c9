"""Banned users (`users.is_banned`, set by an admin) are told once, then get silence.

The first update after a ban claims `users.ban_notice_sent` (one conditional
UPDATE) and is answered with a polite notice; every later message gets no answer
and a button press a bare answer (its spinner stops, no text), so a banned user's
flood costs one row read each and is never answered message by message. A ban
or unban resets the flag. Payments Telegram reports (pre-checkout queries,
`successful_payment`, `refunded_payment`) are let through: money a banned user
already paid must still reach their balance. Admins are never refused.

An outer middleware after the user row and i18n, rather than a first router:
every update would pass that router's propagation (its filters, the middleware
wrapping) for a check that is one attribute of the row already loaded.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update
from aiogram_i18n import I18nContext

from orbit.bot.middlewares import Handler
from orbit.i18n import plain_text
from orbit.settings import Settings
from orbit.users.queries import UserRow, claim_ban_notice


class RefuseBanned(BaseMiddleware):
    def __init__(self, settings: Settings, pool: asyncpg.Pool) -> None:
        self.admin_ids = frozenset(settings.admin_ids)
        self.support = settings.support_contact
        self.pool = pool

    async def _first_notice(self, user: UserRow) -> bool:
        # Claimed before it is sent: a concurrent flood cannot send it twice (a send
        # that fails leaves the user untold, which beats telling them per message).
        return not user.ban_notice_sent and await claim_ban_notice(self.pool, user.id)

    async def __call__(
        self,
        handler: Handler,
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        user: UserRow | None = data.get("user")
        if user is None or not user.is_banned or user.id in self.admin_ids or not isinstance(event, Update):
            return await handler(event, data)
        i18n: I18nContext = data["i18n"]
        if event.callback_query is not None:
            if await self._first_notice(user):
                text = plain_text(i18n.get("banned-text", support=self.support))  # an alert parses no HTML
                await event.callback_query.answer(text, show_alert=True)
            else:
                await event.callback_query.answer()
            return None
        message = event.message
        if message is not None and message.successful_payment is None and message.refunded_payment is None:
            if await self._first_notice(user):
                await message.answer(i18n.get("banned-text", support=self.support))
            return None
        return await handler(event, data)
