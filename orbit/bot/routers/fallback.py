"""Last resort: every button press gets an answer, even a stale or forged one."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import CallbackQuery
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram_i18n import I18nContext

router = Router(name="fallback")


@router.callback_query()
async def unknown_button(
    callback: CallbackQuery, callback_answer: CallbackAnswer, i18n: I18nContext
) -> None:
    callback_answer.text = i18n.get("error-stale-button")
    callback_answer.show_alert = True
