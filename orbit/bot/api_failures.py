"""Every way a Bot API call can fail, for the callers that tolerate a failure.

`TelegramAPIError` alone is not enough: an answer that is not Telegram's JSON (a
reverse proxy's HTML 502 page, a wrong TELEGRAM_API_URL) raises aiogram's
`ClientDecodeError`, which derives from `AiogramError` only. aiogram's aiohttp
session wraps connection errors and timeouts in `TelegramNetworkError`; the raw
ones are listed too, for another session or a call made around it.
"""

from __future__ import annotations

import asyncio

import aiohttp
from aiogram.exceptions import ClientDecodeError, TelegramAPIError

BOT_API_FAILURES: tuple[type[Exception], ...] = (
    TelegramAPIError,
    ClientDecodeError,
    aiohttp.ClientError,
    asyncio.TimeoutError,
)

_SHOWN = 200  # characters of a failure's text in a log line


def describe(exc: BaseException) -> str:
    """One short line: `ClientDecodeError`'s own text carries the whole page it could
    not decode, newlines and all."""
    if isinstance(exc, ClientDecodeError):
        text = f"not a Bot API answer ({exc.message}: {type(exc.original).__name__})"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())[:_SHOWN]
