"""Telegram Stars: the pre-checkout answer, `successful_payment`, and the admins' `/refund`.

The confirmation message is queued by the payments core and delivered by the
outbox, so `successful_payment` itself sends nothing (a second delivery of it
changes nothing and says nothing)."""

from __future__ import annotations

import logging

import asyncpg
from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject
from aiogram.types import Message, PreCheckoutQuery
from aiogram_i18n import I18nContext
from redis.asyncio import Redis

from orbit import ledger
from orbit.audit import bot_actor
from orbit.bot import filters
from orbit.i18n import Translator
from orbit.money import format_rub
from orbit.payments import service, stars
from orbit.settings import Settings

log = logging.getLogger(__name__)

router = Router(name="stars")


@router.pre_checkout_query()
async def pre_checkout(query: PreCheckoutQuery, pool: asyncpg.Pool, i18n: I18nContext) -> None:
    """Telegram waits at most 10 s for this answer: one query, then answer."""
    try:
        await stars.check_pre_checkout(
            pool, query.from_user.id, query.currency, query.total_amount, query.invoice_payload
        )
    except stars.PreCheckoutRefused as exc:
        log.info("pre-checkout %s of user %d refused: %s", query.id, query.from_user.id, exc.message_key)
        await query.answer(ok=False, error_message=i18n.get(exc.message_key))
        return
    await query.answer(ok=True)


@router.message(filters.successful_payment)
async def successful_payment(
    message: Message,
    pool: asyncpg.Pool,
    redis: Redis,
    translator: Translator,
    settings: Settings,
    i18n: I18nContext,
) -> None:
    paid = message.successful_payment
    if paid is None or message.from_user is None:
        return
    try:
        await stars.confirm_stars(
            pool,
            redis,
            translator,
            settings,
            message.from_user.id,
            paid.currency,
            paid.total_amount,
            paid.invoice_payload,
            paid.telegram_payment_charge_id,
        )
    except service.PaymentNotFound:
        # Logged with the charge id; an admin refunds or credits it by hand.
        await message.answer(i18n.get("stars-payment-unmatched"))


@router.message(filters.refunded_payment)
async def refunded_payment(
    message: Message, pool: asyncpg.Pool, redis: Redis, translator: Translator, settings: Settings
) -> None:
    """Telegram's record of a refund (ours, or one made outside the bot): the credit is
    reversed once, or the admins are told the money was spent. The user hears of it
    from the payments core's message, so nothing is answered here."""
    refunded = message.refunded_payment
    if refunded is None:
        return
    outcome = await stars.reverse_refunded_charge(
        pool, redis, translator, settings, refunded.telegram_payment_charge_id
    )
    log.info(
        "refunded_payment for charge %s: %s (payment %s)",
        refunded.telegram_payment_charge_id,
        outcome.result,
        outcome.payment_id,
    )


async def is_admin(message: Message, settings: Settings) -> bool:
    return message.from_user is not None and message.from_user.id in settings.admin_ids


@router.message(Command("refund"), is_admin)
async def refund(
    message: Message,
    command: CommandObject,
    bot: Bot,
    pool: asyncpg.Pool,
    redis: Redis,
    translator: Translator,
    i18n: I18nContext,
) -> None:
    argument = (command.args or "").strip()
    if not argument.isascii() or not argument.isdigit() or len(argument) > 18:
        await message.answer(i18n.get("refund-usage"))
        return
    payment_id = int(argument)
    try:
        refund = await stars.refund_stars(
            pool,
            redis,
            translator,
            bot,
            payment_id,
            note=f"/refund by {message.chat.id}",
            actor=bot_actor(message.chat.id),
        )
    except ledger.InsufficientFunds as exc:
        await message.answer(
            i18n.get(
                "refund-spent",
                id=str(payment_id),
                balance=format_rub(exc.balance_kop),
                needed=format_rub(exc.needed_kop),
            )
        )
        return
    except service.PaymentError as exc:
        await message.answer(i18n.get(exc.message_key))
        return
    except TelegramAPIError as exc:
        await message.answer(i18n.get("refund-telegram-failed", error=exc.message))
        return
    entry = refund.entry
    if not refund.confirmed:
        key = "refund-unconfirmed"
    else:
        key = "refund-already" if entry.replayed else "refund-done"
    await message.answer(
        i18n.get(key, id=str(payment_id), user=str(entry.user_id), amount=format_rub(-entry.amount_kop))
    )
