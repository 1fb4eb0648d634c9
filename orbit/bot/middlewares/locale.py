"""aiogram-i18n locale manager: the user's stored choice, else Telegram's language_code."""

from __future__ import annotations

import asyncpg
from aiogram.types import User
from aiogram_i18n.managers import BaseManager

from orbit.i18n import language_for
from orbit.users import queries
from orbit.users.queries import UserRow


class UserLocaleManager(BaseManager):
    # Arguments are injected by name from handler data (see UserMiddleware).
    async def get_locale(
        self, user: UserRow | None = None, event_from_user: User | None = None
    ) -> str:
        if user is not None:
            return user.language
        return language_for(event_from_user.language_code if event_from_user else None)

    async def set_locale(
        self, locale: str, pool: asyncpg.Pool, event_from_user: User | None = None
    ) -> None:
        if event_from_user is not None:
            await queries.set_language(pool, event_from_user.id, locale)
