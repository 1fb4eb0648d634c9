"""Last resort: every button press gets an answer, even a stale or forged one, and
a message nothing understood (free text outside a flow, an unknown command) gets
a hint to /menu, at most once per user per `hint` interval (orbit/ratelimit.py)."""

from __future__ import annotations

import logging

from aiogram import Router
from aiogram.enums import ChatType
from aiogram.types import CallbackQuery, Message
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram_i18n import I18nContext
from redis.exceptions import RedisError

from orbit.bot.api_failures import BOT_API_FAILURES, describe
from orbit.metrics import Metrics
from orbit.ratelimit import RateLimiter

log = logging.getLogger(__name__)

router = Router(name="fallback")

HINT_ACTION = "hint"


@router.callback_query()
async def unknown_button(
    callback: CallbackQuery, callback_answer: CallbackAnswer, i18n: I18nContext
) -> None:
    callback_answer.text = i18n.get("error-stale-button")
    callback_answer.show_alert = True


async def private_text(message: Message) -> bool:
    """Text in a private chat; groups are not ours to answer."""
    return message.text is not None and message.chat.type == ChatType.PRIVATE


@router.message(private_text)
async def not_understood(
    message: Message, rate_limiter: RateLimiter, metrics: Metrics, i18n: I18nContext
) -> None:
    assert message.from_user is not None
    try:
        decision = await rate_limiter.hit(message.from_user.id, HINT_ACTION)
    except RedisError:  # no limit to ask: stay quiet rather than answer a flood
        return
    if not decision.allowed:
        return
    metrics.inc("menu_hints_total")
    try:
        await message.answer(i18n.get("hint-menu"))
    except BOT_API_FAILURES as exc:
        log.info("hint to user %d not delivered: %s", message.from_user.id, describe(exc))
