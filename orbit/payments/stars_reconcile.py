"""Stars reconciliation: Telegram's record (`getStarTransactions`) against our payments.

- An incoming charge (`source` a user, `invoice_payment`) that no payment carries
  was taken from the payer while we never recorded it (the bot died handling
  `successful_payment`, whose update polling had already confirmed): credited
  now through `confirm_stars`, exactly once (the charge id is the payment's
  external id). A charge naming no payment of the payer is reported.
- A refund (`receiver` a user, same id as the charge) of a payment still
  confirmed was made outside the bot, or our commit was lost: the credit is
  reversed, or reported when the balance no longer covers it.
- Our refunds whose answer was lost (`refund_state = unconfirmed`) are settled:
  asked again, `CHARGE_ALREADY_REFUNDED` or success confirms them; a refusal is
  reported (the debit stays until an admin decides).

Telegram lists transactions in chronological order and only ever appends, so a
cursor (`cursors.stars:transactions`, how many were read) spares re-reading all
of history; each run re-reads one page before it, and everything done per
transaction is idempotent, so re-reading is harmless.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import asyncpg
from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramRetryAfter
from aiogram.types import StarTransaction, TransactionPartnerUser
from redis.asyncio import Redis

from orbit.i18n import Translator
from orbit.money import format_rub
from orbit.payments import issues, queries, service, stars
from orbit.payments.reconcile_report import Report
from orbit.settings import Settings
from orbit.text import clean_text

log = logging.getLogger(__name__)

CURSOR = "stars:transactions"
PAGE = 100  # the most getStarTransactions returns
MAX_PAGES = 50  # per run; the cursor carries the rest to the next run
UNCONFIRMED_BATCH = 50
INVOICE_PAYMENT = "invoice_payment"
HISTORY_MARGIN = timedelta(hours=1)


def _user_partner(partner: object) -> TransactionPartnerUser | None:
    return partner if isinstance(partner, TransactionPartnerUser) else None


async def reconcile_stars(
    pool: asyncpg.Pool,
    redis: Redis,
    translator: Translator,
    settings: Settings,
    bot: Bot,
    *,
    from_start: bool = False,
) -> Report:
    """Read Telegram's Star transactions since the cursor (all of them with
    `from_start`) and fix what our rows miss; then settle unconfirmed refunds."""
    report = Report(source=stars.METHOD)
    cursor = 0 if from_start else int(await queries.get_cursor(pool, CURSOR) or 0)
    offset = max(0, cursor - PAGE)
    for _ in range(MAX_PAGES):
        page = (await bot.get_star_transactions(offset=offset, limit=PAGE)).transactions
        await _reconcile_page(pool, redis, translator, settings, page, report)
        offset += len(page)
        if offset > cursor:
            async with pool.acquire() as conn:
                await queries.advance_cursor(conn, CURSOR, offset)
        if len(page) < PAGE:
            break
    await _settle_unconfirmed(pool, redis, translator, settings, bot, report)
    return report


async def _reconcile_page(
    pool: asyncpg.Pool,
    redis: Redis,
    translator: Translator,
    settings: Settings,
    page: list[StarTransaction],
    report: Report,
) -> None:
    ids = [tx.id for tx in page]
    known = await queries.known_external_ids(pool, stars.METHOD, ids)
    reported = await queries.reported_subjects(pool, stars.METHOD, "charge_unmatched", ids)
    # The bot's history from before Orbit took Stars (another bot on this token) is not ours.
    earliest = await pool.fetchval(queries.EARLIEST_PAYMENT, stars.METHOD)
    for tx in page:
        report.checked += 1
        payer = _user_partner(tx.source)
        if payer is not None and payer.transaction_type in (INVOICE_PAYMENT, None):
            ours = earliest is not None and tx.date >= earliest - HISTORY_MARGIN
            if ours and tx.id not in known and tx.id not in reported:
                await _credit_unrecorded(pool, redis, translator, settings, tx, payer, report)
                known[tx.id] = "confirmed"
            continue
        if _user_partner(tx.receiver) is not None and known.get(tx.id) in ("confirmed", "refunded"):
            outcome = await stars.reverse_refunded_charge(pool, redis, translator, settings, tx.id)
            if outcome.result == "reversed":
                report.reversed += 1
                report.fixed.append(
                    f"charge {tx.id} refunded outside the bot: payment {outcome.payment_id} reversed"
                )
            elif outcome.result == "settled":
                report.settled += 1
                report.fixed.append(f"refund of payment {outcome.payment_id} confirmed by Telegram's record")
            elif outcome.reported:
                report.unresolved += 1
            known[tx.id] = "refunded" if outcome.result != "uncovered" else "confirmed"


async def _credit_unrecorded(
    pool: asyncpg.Pool,
    redis: Redis,
    translator: Translator,
    settings: Settings,
    tx: StarTransaction,
    payer: TransactionPartnerUser,
    report: Report,
) -> None:
    payload = payer.invoice_payload or ""
    try:
        confirmation = await stars.confirm_stars(
            pool, redis, translator, settings, payer.user.id, stars.CURRENCY, tx.amount, payload, tx.id
        )
    except service.PaymentNotFound:
        async with pool.acquire() as conn, conn.transaction():
            new = await issues.report_issue(
                conn,
                translator,
                settings,
                source=stars.METHOD,
                subject=tx.id,
                kind="charge_unmatched",
                what_key="reconcile-what-charge-unmatched",
                user_id=payer.user.id,
                amount=str(tx.amount),
                user=str(payer.user.id),
                payload=clean_text(payload, 64),
            )
        if new:
            report.unresolved += 1
        return
    if not confirmation.replayed:
        report.credited += 1
        report.fixed.append(
            f"charge {tx.id} of user {payer.user.id} was never recorded: payment"
            f" {confirmation.payment.id} credited {format_rub(confirmation.credited_kop)} RUB"
        )


async def _settle_unconfirmed(
    pool: asyncpg.Pool, redis: Redis, translator: Translator, settings: Settings, bot: Bot, report: Report
) -> None:
    """Ask Telegram again about each refund whose answer was lost: it is idempotent
    there (`CHARGE_ALREADY_REFUNDED`), and the debit was kept, so the Stars are owed."""
    for payment in await queries.unconfirmed_refunds(pool, stars.METHOD, UNCONFIRMED_BATCH):
        assert payment.external_id is not None
        report.checked += 1
        try:
            confirmed = await stars.ask_refund(
                bot, payment.user_id, payment.external_id, stars.REFUND_TIMEOUT_SECONDS
            )
        except TelegramAPIError as exc:  # refused (a 429 is asked again next run)
            if not isinstance(exc, TelegramRetryAfter):
                await _report_refused(pool, translator, settings, payment, exc.message, report)
            continue
        if not confirmed:
            log.info("refund of payment %d still unconfirmed", payment.id)
            continue
        async with pool.acquire() as conn, conn.transaction():
            locked = await queries.lock_payment(conn, payment.id)
            if locked is None or locked.details.get("refund_state") != "unconfirmed":
                continue  # settled meanwhile (the refunded_payment message)
            await queries.set_refund_state(conn, payment.id, "confirmed")
            await issues.resolve_issue(conn, stars.METHOD, payment.external_id, "refund_refused")
        report.settled += 1
        report.fixed.append(f"refund of payment {payment.id} confirmed by Telegram")


async def _report_refused(
    pool: asyncpg.Pool,
    translator: Translator,
    settings: Settings,
    payment: queries.PaymentRow,
    error: str,
    report: Report,
) -> None:
    assert payment.external_id is not None
    async with pool.acquire() as conn, conn.transaction():
        new = await issues.report_issue(
            conn,
            translator,
            settings,
            source=stars.METHOD,
            subject=payment.external_id,
            kind="refund_refused",
            what_key="reconcile-what-refund-refused",
            user_id=payment.user_id,
            amount_kop=payment.credited_kop,
            error=error,
            user=str(payment.user_id),
            amount=format_rub(payment.credited_kop or 0),
        )
    if new:
        report.unresolved += 1
