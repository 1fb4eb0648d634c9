"""Telegram Stars top-ups: an XTR invoice whose payload is the payment id.

Flow: `create_stars_payment` → the bot sends the invoice → Telegram asks
`check_pre_checkout` (answered within 10 s, one query) → the user's chat gets
`successful_payment` → `confirm_stars`, idempotent by
`telegram_payment_charge_id` (stored as the payment's `external_id`, unique per
method). `refund_stars` reverses the credit and asks Telegram to return the Stars.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import ROUND_CEILING, Decimal

import asyncpg
import msgspec
from aiogram import Bot
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramBadRequest,
    TelegramNetworkError,
    TelegramServerError,
)
from redis.asyncio import Redis

from orbit import audit, ledger, outbox
from orbit.i18n import Translator
from orbit.money import format_rub
from orbit.payments import issues, queries, service
from orbit.payments.queries import PaymentRow
from orbit.settings import Settings

log = logging.getLogger(__name__)

CURRENCY = "XTR"
METHOD = "stars"


class StarsInvoice(msgspec.Struct, frozen=True):
    payment: PaymentRow
    stars: int
    payload: str  # what the invoice carries and Telegram sends back


class PreCheckoutRefused(service.PaymentError):
    """`message_key` (balance.ftl) is the reason Telegram shows the payer."""

    def __init__(self, message_key: str) -> None:
        super().__init__(message_key)
        self.message_key = message_key


class NotAStarsPayment(service.PaymentError):
    message_key = "stars-refund-not-stars"


def stars_for(amount_kop: int, rate: float) -> int:
    """Stars for `amount_kop` at `rate` RUB per star, rounded up (we never take less)."""
    if rate <= 0:
        raise ValueError("TELEGRAM_STARS_RATE must be positive")
    stars = (Decimal(amount_kop) / (Decimal(str(rate)) * 100)).to_integral_value(rounding=ROUND_CEILING)
    return max(int(stars), 1)


def invoice_payload(payment_id: int) -> str:
    return str(payment_id)


def parse_payload(payload: str) -> int | None:
    return int(payload) if payload.isascii() and payload.isdigit() and len(payload) <= 18 else None


async def create_stars_payment(
    pool: asyncpg.Pool, settings: Settings, user_id: int, amount_kop: int
) -> StarsInvoice:
    """A pending Stars payment of `amount_kop`; the Star price is fixed now.
    Raises `service.AmountOutOfRange` outside the top-up limits."""
    service.check_topup_amount(settings, amount_kop)
    stars = stars_for(amount_kop, settings.telegram_stars_rate)
    async with pool.acquire() as conn, conn.transaction():
        await service.reserve_pending_slot(conn, settings, user_id)  # before an invoice is sent
        payment = await service.create_payment(
            conn,
            user_id,
            METHOD,
            amount_kop,
            CURRENCY,
            stars,
            service.payment_expires_at(settings),
            details={"rate_rub": settings.telegram_stars_rate},
        )
    log.info("stars payment %d: user %d, %d kop = %d stars", payment.id, user_id, amount_kop, stars)
    return StarsInvoice(payment, stars, invoice_payload(payment.id))


async def check_pre_checkout(
    pool: asyncpg.Pool, user_id: int, currency: str, total_amount: int, payload: str
) -> PaymentRow:
    """Whether Telegram may take the payer's Stars: the payment exists, is theirs,
    still pending and unexpired, and the amount and currency are the ones fixed.
    Raises `PreCheckoutRefused` with the reason otherwise. One query."""
    payment_id = parse_payload(payload)
    payment = await service.get_payment(pool, payment_id) if payment_id is not None else None
    if payment is None or payment.method != METHOD:
        raise PreCheckoutRefused("stars-refused-unknown")
    if payment.user_id != user_id:
        raise PreCheckoutRefused("stars-refused-mismatch")
    if payment.status in service.ALREADY_CONFIRMED:
        raise PreCheckoutRefused("stars-refused-paid")
    if payment.status != "pending" or payment.expires_at <= datetime.now(UTC):
        raise PreCheckoutRefused("stars-refused-expired")
    if currency != CURRENCY or total_amount != payment.currency_amount:
        raise PreCheckoutRefused("stars-refused-mismatch")
    return payment


async def confirm_stars(
    pool: asyncpg.Pool,
    redis: Redis,
    translator: Translator,
    settings: Settings,
    user_id: int,
    currency: str,
    total_amount: int,
    payload: str,
    charge_id: str,
) -> service.Confirmation:
    """Credit a `successful_payment`. The same charge delivered again changes nothing.

    The Stars have been taken at this point, so a payment that somehow was already
    confirmed by another charge gets a payment row of its own and is credited too.
    Raises `service.PaymentNotFound` when the payload names no Stars payment of
    this payer (logged as an error: an admin must look, and may refund the charge).
    """
    payment_id = parse_payload(payload)
    async with pool.acquire() as conn, conn.transaction():
        # Lock the payment first: a concurrent delivery of the same charge waits here,
        # then finds the charge recorded just below.
        payment = await queries.lock_payment(conn, payment_id) if payment_id is not None else None
        seen = await service.find_payment(conn, METHOD, charge_id)
        if seen is not None:
            confirmation = await service.confirm_payment(
                conn, translator, seen.id, credited_kop=seen.credited_kop or 1, settings=settings
            )
            log.info("stars charge %s delivered again: payment %d, nothing changed", charge_id, seen.id)
            return confirmation
        if payment is None or payment.method != METHOD or payment.user_id != user_id or currency != CURRENCY:
            log.error(
                "stars charge %s (%s %d from user %d) names no payment of theirs: payload %r",
                charge_id,
                currency,
                total_amount,
                user_id,
                payload,
            )
            raise service.PaymentNotFound(payload)
        if payment.status in service.ALREADY_CONFIRMED:
            # A second charge for one invoice: the Stars arrived, so they are credited on a row of their own.
            payment = await service.create_payment(
                conn,
                user_id,
                METHOD,
                payment.amount_kop,
                CURRENCY,
                payment.currency_amount,
                payment.expires_at,
                details={"second_charge_of": payment.id},
            )
            log.warning("stars charge %s pays payment %d a second time", charge_id, payment.id)
        credited = total_amount * payment.amount_kop // payment.currency_amount
        confirmation = await service.confirm_payment(
            conn, translator, payment.id, credited_kop=credited, external_id=charge_id, settings=settings
        )
    await outbox.wake_sender(redis)
    return confirmation


# Telegram may have returned the Stars although we never heard so: the debit stays.
UNKNOWN_OUTCOME = (TelegramNetworkError, TelegramServerError, ClientDecodeError)
REFUND_TIMEOUT_SECONDS = 15.0
ALREADY_REFUNDED = "CHARGE_ALREADY_REFUNDED"


class StarsRefund(msgspec.Struct, frozen=True):
    entry: ledger.Entry  # the debit (replayed when the payment was already refunded)
    confirmed: bool  # Telegram said it returned the Stars (or had already)


async def refund_stars(
    pool: asyncpg.Pool,
    redis: Redis,
    translator: Translator,
    bot: Bot,
    payment_id: int,
    note: str | None = None,
    *,
    actor: str,
    timeout: float = REFUND_TIMEOUT_SECONDS,
) -> StarsRefund:
    """Reverse a Stars top-up and return the Stars to the payer.

    The debit and Telegram's `refundStarPayment` happen inside one transaction:
    the debit comes first, so a balance already spent (`ledger.InsufficientFunds`)
    refuses the refund before any Star moves; Telegram's refusal rolls the debit
    back. An answer that never came (timeout, network, 5xx) may hide a refund
    that happened, so the debit is kept and the refund marked `unconfirmed`
    (`details.refund_state`); reconciliation settles it. A crash after Telegram
    refunded and before the commit leaves the payment confirmed: reconciliation
    finds the refund in `getStarTransactions` and reverses the credit then.
    Raises `service.PaymentNotFound`, `NotAStarsPayment`,
    `service.PaymentNotConfirmable` (never paid), `ledger.InsufficientFunds`,
    `TelegramAPIError` (Telegram refused: nothing changed). The admin who asked
    (`actor`, orbit.audit) is recorded with the debit, in its transaction.
    """
    confirmed = True
    async with pool.acquire() as conn, conn.transaction():
        payment = await service.get_payment(conn, payment_id)
        if payment is None:
            raise service.PaymentNotFound(payment_id)
        if payment.method != METHOD:
            raise NotAStarsPayment(payment_id)
        entry = await service.reverse_payment(conn, translator, payment_id, note=note)
        if not entry.replayed:
            await audit.record(
                conn,
                actor,
                "payment.refund",
                target_user_id=payment.user_id,
                target=f"payment:{payment_id}",
                before={"status": payment.status, "balance_kop": entry.balance_after_kop - entry.amount_kop},
                after={
                    "status": "refunded",
                    "balance_kop": entry.balance_after_kop,
                    "stars": payment.currency_amount,
                },
            )
        # Asked again for an unconfirmed refund: CHARGE_ALREADY_REFUNDED or success settles it.
        unsettled = entry.replayed and payment.details.get("refund_state") == "unconfirmed"
        if not entry.replayed or unsettled:
            assert payment.external_id is not None  # a confirmed Stars payment carries its charge id
            confirmed = await ask_refund(bot, payment.user_id, payment.external_id, timeout)
            await queries.set_refund_state(conn, payment_id, "confirmed" if confirmed else "unconfirmed")
    if not entry.replayed:
        await outbox.wake_sender(redis)
        log.info(
            "stars payment %d refunded (%d kop)%s",
            payment_id,
            -entry.amount_kop,
            "" if confirmed else ", Telegram's answer unknown: unconfirmed",
        )
    return StarsRefund(entry, confirmed)


async def ask_refund(bot: Bot, user_id: int, charge_id: str, timeout: float) -> bool:
    """Whether Telegram confirmed the refund (or had done it already); False when its
    answer is unknown. Telegram's refusal raises."""
    try:
        await bot.refund_star_payment(
            user_id=user_id, telegram_payment_charge_id=charge_id, request_timeout=int(max(timeout, 1))
        )
    except TelegramBadRequest as exc:
        if ALREADY_REFUNDED not in exc.message:
            raise
        log.info("stars charge %s was already refunded by Telegram", charge_id)
    except UNKNOWN_OUTCOME as exc:
        log.warning("stars refund of charge %s: no answer from Telegram (%s)", charge_id, exc)
        return False
    return True


class RefundOutcome(msgspec.Struct, frozen=True):
    result: str  # reversed, settled, unchanged, uncovered, unknown
    payment_id: int | None = None
    reported: bool = False  # uncovered, and the admins were told now (not on an earlier run)


async def reverse_refunded_charge(
    pool: asyncpg.Pool,
    redis: Redis,
    translator: Translator,
    settings: Settings,
    charge_id: str,
) -> RefundOutcome:
    """Telegram says `charge_id` was refunded (`refunded_payment`, or a refund in
    `getStarTransactions`): the credit it gave is reversed once. Refunded by someone
    else (another tool, a crash before our commit), the payment is still confirmed:
    reversed now, or, when the user has spent the money, reported to the admins.
    Our own refund that was `unconfirmed` becomes confirmed (`settled`)."""
    async with pool.acquire() as conn, conn.transaction():
        payment = await service.find_payment(conn, METHOD, charge_id)
        if payment is None:
            return RefundOutcome("unknown")  # never credited: nothing to take back
        payment = await queries.lock_payment(conn, payment.id)
        assert payment is not None
        if payment.status == "refunded":
            if payment.details.get("refund_state") != "unconfirmed":
                return RefundOutcome("unchanged", payment.id)
            await queries.set_refund_state(conn, payment.id, "confirmed")
            await issues.resolve_issue(conn, METHOD, charge_id, "refund_refused")
            log.info("stars refund of payment %d confirmed by Telegram's record", payment.id)
            return RefundOutcome("settled", payment.id)
        if payment.status != "confirmed":
            return RefundOutcome("unchanged", payment.id)
        try:
            async with conn.transaction():  # a savepoint: the issue below is still written
                await service.reverse_payment(
                    conn, translator, payment.id, note="refunded outside the bot"
                )
                await queries.set_refund_state(conn, payment.id, "confirmed")
        except ledger.InsufficientFunds as exc:
            reported = await issues.report_issue(
                conn,
                translator,
                settings,
                source=METHOD,
                subject=charge_id,
                kind="refund_uncovered",
                what_key="reconcile-what-refund-uncovered",
                user_id=payment.user_id,
                amount_kop=payment.credited_kop,
                user=str(payment.user_id),
                amount=format_rub(exc.needed_kop),
            )
            log.info(
                "stars charge %s refunded outside the bot; user %d spent it (balance %d < %d kop)",
                charge_id,
                payment.user_id,
                exc.balance_kop,
                exc.needed_kop,
            )
            result = RefundOutcome("uncovered", payment.id, reported)
        else:
            await issues.resolve_issue(conn, METHOD, charge_id, "refund_uncovered")
            log.info(
                "stars charge %s was refunded outside the bot: payment %d reversed", charge_id, payment.id
            )
            result = RefundOutcome("reversed", payment.id)
    await outbox.wake_sender(redis)
    return result
