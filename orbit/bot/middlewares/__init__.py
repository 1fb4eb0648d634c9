"""The bot's aiogram middlewares (registered in `orbit.bot.process.build_dispatcher`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram.types import TelegramObject

# What aiogram passes a middleware as `handler`: the rest of the chain.
Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]
