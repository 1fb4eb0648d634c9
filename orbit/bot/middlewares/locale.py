"""aiogram-i18n wiring: the user's stored choice, else Telegram's language_code."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiogram.types import TelegramObject, User
from aiogram_i18n import I18nMiddleware
from aiogram_i18n.managers import BaseManager

from orbit.bot.middlewares import Handler
from orbit.i18n import language_for
from orbit.users import queries
from orbit.users.queries import UserRow


def locale_of(user: UserRow | None, from_user: User | None) -> str:
    if user is not None:
        return user.language
    return language_for(from_user.language_code if from_user else None)


class UserLocaleManager(BaseManager):
    # get_locale is what aiogram-i18n's own middleware asks (arguments injected by
    # name from handler data); UserI18nMiddleware calls `locale_of` directly.
    async def get_locale(
        self, user: UserRow | None = None, event_from_user: User | None = None
    ) -> str:
        return locale_of(user, event_from_user)

    async def set_locale(
        self, locale: str, pool: asyncpg.Pool, event_from_user: User | None = None
    ) -> None:
        if event_from_user is not None:
            await queries.set_language(pool, event_from_user.id, locale)


class UserI18nMiddleware(I18nMiddleware):
    """aiogram-i18n's middleware with the locale read from the row already loaded,
    and without leaving a reference cycle behind each update.

    - The library asks its manager through a getter that injects arguments by name,
      filtering the whole handler data on every update; the row is in hand, so the
      middleware reads it directly (runs after UserMiddleware). Storing a choice
      still goes through the manager (`i18n.set_locale`).
    - The `I18nContext` holds the handler data and the data holds the context. An
      update outlives the young GC passes, so each one left a cycle (the data with
      its FSM and event contexts) that only a full pass frees: more and longer full
      passes, which pause every update in flight. The cycle is cut once the update
      is served; an update that fails keeps it, for the error handler's answer.
    """

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        locale = locale_of(data.get("user"), data.get("event_from_user"))
        with self.use_context(locale=locale, data=data):
            result = await handler(event, data)
        data.pop(self.context_key, None)
        return result
