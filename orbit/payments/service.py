"""The payments core every method shares: create a payment row, confirm it with its
ledger credit, the referral bonus and the user's notification, reverse it.

Everything here runs inside the caller's transaction (the caller commits, then
calls `outbox.wake_sender`). A method's own module (TON, Stars, CryptoBot) talks
to its service and calls these.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import asyncpg
import msgspec

from orbit import ledger, metrics, outbox
from orbit.i18n import Translator
from orbit.money import format_rub, rub_to_kopecks
from orbit.payments import queries
from orbit.payments.queries import PaymentRow
from orbit.settings import Settings, load_settings

log = logging.getLogger(__name__)

METHODS = ("ton", "stars", "cryptobot")
# A confirmation is accepted from these: a late payment is still money that arrived.
CONFIRMABLE = ("pending", "expired", "failed")
ALREADY_CONFIRMED = ("confirmed", "refunded")

_UQ_EXTERNAL_ID = "uq_payments_method_external_id"
_AMOUNT_RE = re.compile(r"^[0-9]{1,9}(?:[.,][0-9]{1,2})?$")


class PaymentError(Exception):
    """A refusal the user or the caller can be told about; `message_key` is in payments.ftl."""

    message_key = "payment-error"


class InvalidAmount(PaymentError):
    """Not a number of roubles (letters, a sign, too many decimals, absurdly long)."""

    message_key = "payment-amount-invalid"


class AmountOutOfRange(PaymentError):
    message_key = "payment-amount-out-of-range"

    def __init__(self, amount_kop: int, min_kop: int, max_kop: int) -> None:
        super().__init__(f"{amount_kop} kopecks is outside {min_kop}..{max_kop}")
        self.amount_kop = amount_kop
        self.min_kop = min_kop
        self.max_kop = max_kop


class MethodNotConfigured(PaymentError):
    message_key = "payment-method-unavailable"


class TooManyPendingPayments(PaymentError):
    """The user already has `MAX_PENDING_PAYMENTS` invoices waiting to be paid: each one
    is a call to a payment service and a row, so a new one waits until one is paid or
    expires (`PAYMENT_TIMEOUT_MINUTES`)."""

    message_key = "payment-too-many-pending"

    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} pending payments")
        self.limit = limit


class PaymentNotFound(PaymentError):
    message_key = "payment-not-found"


class PaymentNotConfirmable(PaymentError):
    """The payment's status does not allow this (e.g. reversing one never confirmed)."""

    message_key = "payment-not-confirmable"


class ExternalIdTaken(PaymentError):
    """Another payment of the method already carries this invoice/charge id."""

    message_key = "payment-error"


class Confirmation(msgspec.Struct, frozen=True):
    payment: PaymentRow  # as it is after the confirmation
    credited_kop: int  # this confirmation's ledger credit
    balance_after_kop: int  # the user's balance right after that credit
    replayed: bool  # already confirmed before: nothing changed, this is the first result
    referrer_id: int | None  # paid a referral bonus now (None on a replay)


# --- amounts ---------------------------------------------------------------------------------


def topup_limits(settings: Settings) -> tuple[int, int]:
    """(min, max) top-up in kopecks."""
    return rub_to_kopecks(settings.topup_min_rub), rub_to_kopecks(settings.topup_max_rub)


def check_topup_amount(settings: Settings, amount_kop: int) -> int:
    """Return `amount_kop` if it is within the top-up limits, else raise `AmountOutOfRange`."""
    low, high = topup_limits(settings)
    if not low <= amount_kop <= high:
        raise AmountOutOfRange(amount_kop, low, high)
    return amount_kop


def parse_topup_amount(settings: Settings, text: str) -> int:
    """A typed RUB amount ("150", "150.50", "1 500,5", "150 ₽") → kopecks within the limits.

    Raises `InvalidAmount` for anything that is not a plain non-negative number
    with at most two decimals, `AmountOutOfRange` outside the limits.
    """
    cleaned = re.sub(r"\s+", "", text or "").removesuffix("₽").removesuffix("руб").removesuffix("rub")
    if not _AMOUNT_RE.match(cleaned):
        raise InvalidAmount(text)
    try:
        kopecks = int(Decimal(cleaned.replace(",", ".")) * 100)
    except InvalidOperation:
        raise InvalidAmount(text) from None
    return check_topup_amount(settings, kopecks)


def payment_expires_at(settings: Settings, now: datetime | None = None) -> datetime:
    """When a payment created now stops being offered (`PAYMENT_TIMEOUT_MINUTES`)."""
    return (now or datetime.now(UTC)) + timedelta(minutes=settings.payment_timeout_minutes)


# --- rows ------------------------------------------------------------------------------------


async def reserve_pending_slot(conn: asyncpg.Connection, settings: Settings, user_id: int) -> None:
    """Raise `TooManyPendingPayments` when the user may open no more invoices now. Call in
    the transaction that inserts the payment, before any call to a payment service: the
    user's row stays locked until it commits, so concurrent requests cannot pass the cap."""
    if await queries.lock_user_and_count_open(conn, user_id) >= settings.max_pending_payments:
        raise TooManyPendingPayments(settings.max_pending_payments)


async def create_payment(
    conn: asyncpg.Connection,
    user_id: int,
    method: str,
    amount_kop: int,
    currency: str,
    currency_amount: int,
    expires_at: datetime,
    comment: str | None = None,
    external_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> PaymentRow:
    """Insert a `pending` payment: `amount_kop` is the RUB top-up asked for,
    `currency_amount` the price in the payment currency fixed now (nanotons for
    TON, stars for XTR, kopecks for a RUB invoice).

    Does not check the top-up limits (call `check_topup_amount` first). Raises
    `ValueError` for a non-positive amount or an unknown method, `ExternalIdTaken`
    when the method already has a payment with `external_id`. A unique-comment
    clash raises `asyncpg.UniqueViolationError` (constraint `uq_payments_comment`)
    so the TON code can draw another comment; call it inside a savepoint if the
    transaction must survive that.
    """
    if method not in METHODS:
        raise ValueError(f"unknown payment method {method!r}")
    if amount_kop <= 0 or currency_amount <= 0:
        raise ValueError("payment amounts must be positive")
    try:
        payment = await queries.insert_payment(
            conn,
            user_id,
            method,
            amount_kop,
            currency,
            currency_amount,
            expires_at,
            comment,
            external_id,
            details,
        )
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name == _UQ_EXTERNAL_ID:
            raise ExternalIdTaken(f"{method} {external_id}") from None
        raise
    metrics.count("payments_total", method=method, status="pending")
    return payment


async def get_payment(conn: asyncpg.Connection | asyncpg.Pool, payment_id: int) -> PaymentRow | None:
    return await queries.get_payment(conn, payment_id)


async def find_payment(
    conn: asyncpg.Connection | asyncpg.Pool, method: str, external_id: str
) -> PaymentRow | None:
    """The payment of `method` carrying `external_id` (invoice id, charge id), if any."""
    return await queries.get_by_external_id(conn, method, external_id)


async def attach_invoice(
    conn: asyncpg.Connection,
    payment_id: int,
    *,
    external_id: str | None = None,
    pay_url: str | None = None,
    details: dict[str, Any] | None = None,
) -> PaymentRow:
    """Record what the payment service returned for this payment (invoice id, pay URL);
    `details` are merged into the row's JSON. Raises `ExternalIdTaken`, `PaymentNotFound`."""
    try:
        async with conn.transaction():  # a savepoint: a clash leaves the caller's transaction usable
            row = await queries.attach_invoice(conn, payment_id, external_id, pay_url, details)
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name == _UQ_EXTERNAL_ID:
            raise ExternalIdTaken(str(external_id)) from None
        raise
    if row is None:
        raise PaymentNotFound(payment_id)
    return row


async def fail_payment(
    conn: asyncpg.Connection, payment_id: int, reason: str
) -> PaymentRow | None:
    """Mark a still-pending payment `failed` (an invoice the service expired or refused).
    Returns None when it was not pending. A later confirmation is still accepted."""
    payment = await queries.mark_failed(conn, payment_id, {"failed": reason})
    if payment is not None:
        metrics.count("payments_total", method=payment.method, status="failed")
    return payment


# --- confirmation ----------------------------------------------------------------------------


def _require_transaction(conn: asyncpg.Connection, what: str) -> None:
    if not conn.is_in_transaction():
        raise RuntimeError(f"{what} must run inside the caller's transaction")


def payment_key(payment_id: int) -> str:
    """The ledger idempotency key of a payment's credit."""
    return f"payment:{payment_id}"


def referral_key(referee_id: int) -> str:
    return f"referral:{referee_id}"


async def confirm_payment(
    conn: asyncpg.Connection,
    translator: Translator,
    payment_id: int,
    *,
    credited_kop: int,
    external_id: str | None = None,
    note: str | None = None,
    settings: Settings | None = None,
    late_note: tuple[str, dict[str, str]] | None = None,
) -> Confirmation:
    """The money for `payment_id` arrived: credit `credited_kop` to the user's balance.

    Runs inside the caller's transaction and, in it: marks the payment
    `confirmed` (from pending, expired or failed: a late payment is still
    money received), records `external_id` (charge id, invoice id, tx hash) if
    given, credits the ledger with key `payment:{id}`, pays the referral bonus
    if this brings the referee's confirmed top-ups to `TOPUP_MIN_RUB` for the
    first time (`referral_min_kop`), and queues the "payment
    confirmed" message to the user (under-, over- and late payments get their
    own wording). After the commit call `outbox.wake_sender(redis)`.

    `late_note` (a message key and its values) replaces the standard note of a late
    payment (TON: credited at the lower rate). `settings` gives `REFERRAL_BONUS` and
    `TOPUP_MIN_RUB`; when omitted it is read from the
    environment (`.env` + env) the way the process read it at start.

    Idempotent: a payment already confirmed (or since refunded) changes nothing
    and returns the first result with `replayed=True`.
    Raises `PaymentNotFound`, `ExternalIdTaken` (another payment holds that id;
    the transaction is then aborted: roll it back), `ValueError` for a
    non-positive `credited_kop`.
    """
    _require_transaction(conn, "confirm_payment")
    locked = await queries.lock_payment_for_confirm(conn, payment_id)
    if locked is None:
        raise PaymentNotFound(payment_id)
    payment, language = locked
    if payment.status in ALREADY_CONFIRMED:
        return await _replay(conn, payment)
    if credited_kop <= 0:
        raise ValueError("credited_kop must be positive")
    settings = settings or load_settings()
    late = payment.status != "pending" or payment.expires_at < datetime.now(UTC)
    extra: dict[str, Any] = {"late": True} if late else {}
    if note:
        extra["note"] = note
    try:
        payment, referrer_id = await queries.mark_confirmed(
            conn, payment_id, credited_kop, external_id, extra or None, referral_min_kop(settings)
        )
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name == _UQ_EXTERNAL_ID:
            raise ExternalIdTaken(f"{payment.method} {external_id}") from None
        raise
    entry = await ledger.credit(
        conn,
        payment.user_id,
        credited_kop,
        "topup",
        payment_key(payment.id),
        payment_id=payment.id,
        note=note,
    )
    await outbox.enqueue(
        conn,
        payment.user_id,
        "payment_confirmed",
        _confirmed_text(
            translator, language, payment, credited_kop, entry.balance_after_kop, late, late_note
        ),
        dedup_key=f"payment-confirmed:{payment.id}",
    )
    if referrer_id is not None:
        referrer_id = await _pay_referral_bonus(conn, translator, payment, referrer_id, settings)
    log.info(
        "payment %d (%s) confirmed: user %d credited %d kop (asked %d)%s",
        payment.id,
        payment.method,
        payment.user_id,
        credited_kop,
        payment.amount_kop,
        " late" if late else "",
    )
    metrics.count("payments_total", method=payment.method, status="confirmed")
    metrics.count("payments_credited_kopecks_total", credited_kop, method=payment.method)
    return Confirmation(payment, credited_kop, entry.balance_after_kop, False, referrer_id)


async def _replay(conn: asyncpg.Connection, payment: PaymentRow) -> Confirmation:
    entry = await queries.ledger_entry(conn, payment_key(payment.id))
    credited = entry["amount_kop"] if entry is not None else payment.credited_kop or 0
    balance_after = entry["balance_after_kop"] if entry is not None else 0
    return Confirmation(payment, credited, balance_after, True, None)


def _confirmed_text(
    t: Translator,
    language: str,
    payment: PaymentRow,
    credited_kop: int,
    balance_kop: int,
    late: bool,
    late_note: tuple[str, dict[str, str]] | None,
) -> str:
    amounts = {
        "credited": format_rub(credited_kop),
        "expected": format_rub(payment.amount_kop),
        "balance": format_rub(balance_kop),
    }
    if credited_kop < payment.amount_kop:
        text = t(language, "payment-confirmed-underpaid", **amounts)
    elif credited_kop > payment.amount_kop:
        text = t(language, "payment-confirmed-overpaid", **amounts)
    else:
        text = t(language, "payment-confirmed", **amounts)
    if late_note is not None:
        key, values = late_note
        text += "\n\n" + t(language, key, **values)
    elif late:
        text += "\n\n" + t(language, "payment-confirmed-late-note")
    return text


def referral_min_kop(settings: Settings) -> int:
    """The referee's confirmed top-ups that earn their referrer the bonus: real money, at
    least the smallest top-up (`TOPUP_MIN_RUB`), not a 1-kopeck under-payment."""
    return topup_limits(settings)[0]


async def claim_referral_bonus(
    conn: asyncpg.Connection, translator: Translator, payment: PaymentRow, settings: Settings
) -> int | None:
    """After more money reached an already confirmed `payment` (a further TON transfer):
    pay the referral bonus if the referee's confirmed top-ups have now reached the
    minimum. Returns the referrer paid now, if any. Inside the caller's transaction."""
    _require_transaction(conn, "claim_referral_bonus")
    referrer_id = await queries.claim_referral(conn, payment.user_id, referral_min_kop(settings))
    if referrer_id is None:
        return None
    return await _pay_referral_bonus(conn, translator, payment, referrer_id, settings)


async def _pay_referral_bonus(
    conn: asyncpg.Connection,
    translator: Translator,
    payment: PaymentRow,
    referrer_id: int,
    settings: Settings,
) -> int | None:
    """REFERRAL_BONUS to whoever invited this user (the claim found the referee's confirmed
    top-ups at the minimum for the first time)."""
    amount = rub_to_kopecks(settings.referral_bonus)
    if amount <= 0:
        return None
    entry = await ledger.credit(
        conn, referrer_id, amount, "referral_bonus", referral_key(payment.user_id), payment_id=payment.id
    )
    if entry.replayed:
        return None
    language = await queries.user_language(conn, referrer_id)
    await outbox.enqueue(
        conn,
        referrer_id,
        "referral_bonus",
        translator(
            language,
            "payment-referral-bonus",
            amount=format_rub(amount),
            balance=format_rub(entry.balance_after_kop),
        ),
        dedup_key=f"referral-bonus:{payment.user_id}",
    )
    log.info("referral bonus %d kop to %d for referee %d", amount, referrer_id, payment.user_id)
    return referrer_id


def refund_key(payment_id: int) -> str:
    return f"refund:payment:{payment_id}"


async def reverse_payment(
    conn: asyncpg.Connection, translator: Translator, payment_id: int, *, note: str | None = None
) -> ledger.Entry:
    """Take a refunded payment's money back off the balance, inside the caller's transaction.

    Debits everything the payment credited (`credited_kop`) as a `refund` entry
    (key `refund:payment:{id}`), marks the payment `refunded` and queues a
    message to the user. Raises `ledger.InsufficientFunds` when the balance was
    already spent (nothing changes; do not refund the money then),
    `PaymentNotConfirmable` for a payment never confirmed, `PaymentNotFound`.
    Idempotent: a refunded payment returns the first entry with `replayed=True`.
    Call it before asking the payment service to send the money back, so a
    refusal costs nothing.
    """
    _require_transaction(conn, "reverse_payment")
    payment = await queries.lock_payment(conn, payment_id)
    if payment is None:
        raise PaymentNotFound(payment_id)
    if payment.status == "refunded":
        entry = await queries.ledger_entry(conn, refund_key(payment.id))
        if entry is None:  # refunded outside the ledger (never credited): nothing to replay
            raise PaymentNotConfirmable(payment_id)
        return ledger.Entry(
            entry["id"], entry["user_id"], entry["amount_kop"], entry["balance_after_kop"], "refund", True
        )
    if payment.status != "confirmed" or not payment.credited_kop:
        raise PaymentNotConfirmable(payment_id)
    entry = await ledger.debit(
        conn,
        payment.user_id,
        payment.credited_kop,
        "refund",
        refund_key(payment.id),
        payment_id=payment.id,
        note=note,
    )
    await queries.mark_refunded(conn, payment.id, {"refund_note": note} if note else None)
    language = await queries.user_language(conn, payment.user_id)
    await outbox.enqueue(
        conn,
        payment.user_id,
        "payment_refunded",
        translator(
            language,
            "payment-refunded",
            amount=format_rub(payment.credited_kop),
            balance=format_rub(entry.balance_after_kop),
        ),
        dedup_key=f"payment-refunded:{payment.id}",
    )
    metrics.count("payments_total", method=payment.method, status="refunded")
    log.info("payment %d refunded: user %d debited %d kop", payment.id, payment.user_id, payment.credited_kop)
    return entry
