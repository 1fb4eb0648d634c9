"""Loads the pressing user's row once per update (the only query a menu press needs)."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, User

from orbit.bot.middlewares import Handler
from orbit.users import queries
from orbit.users.loader import UserRows


class UserMiddleware(BaseMiddleware):
    """Puts `user` (UserRow or None for someone who never pressed /start) in handler data."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.rows = UserRows(pool)  # concurrent updates share one query

    async def __call__(
        self,
        handler: Handler,
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        from_user: User | None = data.get("event_from_user")
        user = None
        if from_user is not None:
            user = await self.rows.get(from_user.id)
            if user is not None and user.blocked_at is not None:
                await queries.unblock(self.pool, from_user.id)
        data["user"] = user
        return await handler(event, data)
