"""Showing a screen: navigation edits the pressed message; commands send a new one.

Telegram answers 400 "message is not modified" when an edit changes nothing;
that is not an error for us (a user pressed the same button twice).

A screen that reports an effect (a config created, a plan bought, a trial started)
must reach its user: `show_effect` hands it to the outbox when it cannot be shown
now (the flood limit outlasted the send budget, Telegram or the network failed),
so it is delivered later as a new message instead of being lost with the press.
"""

from __future__ import annotations

import logging

import asyncpg
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramUnauthorizedError,
)
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from redis.asyncio import Redis

from orbit import outbox

log = logging.getLogger(__name__)


def is_not_modified(exc: TelegramBadRequest) -> bool:
    return "message is not modified" in exc.message


async def show(
    event: Message | CallbackQuery,
    text: str,
    reply_markup: InlineKeyboardMarkup | None = None,
) -> None:
    if isinstance(event, CallbackQuery):
        message = event.message
        if isinstance(message, Message):
            try:
                await message.edit_text(text, reply_markup=reply_markup)
                return
            except TelegramBadRequest as exc:
                if is_not_modified(exc):
                    return
                # Too old or deleted: fall through and send a fresh message.
                log.info("edit failed (%s); sending a new message", exc.message)
        if event.from_user is not None and event.bot is not None:
            await event.bot.send_message(event.from_user.id, text, reply_markup=reply_markup)
        return
    await event.answer(text, reply_markup=reply_markup)


EFFECT_KIND = "effect"


async def show_interim(event: Message | CallbackQuery, text: str) -> None:
    """A "working on it" screen: worth showing, not worth failing the work it announces."""
    try:
        await show(event, text)
    except (TelegramForbiddenError, TelegramUnauthorizedError):
        raise
    except TelegramAPIError as exc:
        log.info("interim screen not shown (%s); the work goes on", type(exc).__name__)


async def show_effect(
    event: Message | CallbackQuery,
    text: str,
    reply_markup: InlineKeyboardMarkup | None,
    *,
    pool: asyncpg.Pool,
    redis: Redis,
    dedup_key: str,
) -> None:
    """`show`, and when it fails the screen goes through the outbox (once per `dedup_key`)."""
    try:
        await show(event, text, reply_markup)
        return
    except (TelegramForbiddenError, TelegramUnauthorizedError):
        raise  # blocked: nobody to show it to; the error handler records it
    except TelegramAPIError as exc:
        failure = exc
    chat_id = event.from_user.id if event.from_user is not None else None
    if chat_id is None:
        raise failure
    markup = reply_markup.model_dump(mode="json", exclude_none=True) if reply_markup else None
    async with pool.acquire() as conn:
        queued = await outbox.enqueue(
            conn, chat_id, EFFECT_KIND, text, reply_markup=markup, dedup_key=dedup_key
        )
    await outbox.wake_sender(redis)
    log.warning(
        "effect screen for chat %d not shown now (%s): %s",
        chat_id, type(failure).__name__, "queued in the outbox" if queued else "already queued",
    )
