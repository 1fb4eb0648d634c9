"""Banned users (`users.is_banned`, set by an admin) get a polite refusal to
everything they send or press. This router comes first, so no other handler
runs for them. Payments Telegram reports are let through: money a banned user
already paid must still reach their balance. Admins are never refused here."""

from __future__ import annotations

import html

from aiogram import F, Router
from aiogram.types import CallbackQuery, Message, TelegramObject
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram_i18n import I18nContext

from orbit.settings import Settings
from orbit.users.queries import UserRow

router = Router(name="banned")


# async: aiogram runs a plain-def filter in a worker thread (asyncio.to_thread) on every update.
async def is_banned(_: TelegramObject, settings: Settings, user: UserRow | None = None) -> bool:
    return user is not None and user.is_banned and user.id not in settings.admin_ids


router.message.filter(is_banned)
router.callback_query.filter(is_banned)


@router.message(F.successful_payment.is_(None), F.refunded_payment.is_(None))
async def refuse_message(message: Message, settings: Settings, i18n: I18nContext) -> None:
    await message.answer(i18n.get("banned-text", support=html.escape(settings.support_contact)))


@router.callback_query()
async def refuse_press(
    callback: CallbackQuery, settings: Settings, i18n: I18nContext, callback_answer: CallbackAnswer
) -> None:
    callback_answer.text = i18n.get("banned-text", support=settings.support_contact)  # an alert is plain text
    callback_answer.show_alert = True
