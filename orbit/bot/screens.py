"""Showing a screen: navigation edits the pressed message; commands send a new one.

Telegram answers 400 "message is not modified" when an edit changes nothing;
that is not an error for us (a user pressed the same button twice).
"""

from __future__ import annotations

import logging

from aiogram.exceptions import TelegramBadRequest
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message

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
