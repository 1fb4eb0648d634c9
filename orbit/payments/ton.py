"""TON top-ups: the rate, the payment with its fixed nanotons and comment, the
`ton://` link and its QR code. The `ton_watcher` process confirms them.
"""

from __future__ import annotations

import io
import logging
import re
import secrets
from decimal import ROUND_CEILING, Decimal
from urllib.parse import quote

import aiohttp
import asyncpg
import msgspec
import qrcode
from redis.asyncio import Redis
from redis.exceptions import RedisError

from orbit import keys
from orbit.payments import service
from orbit.payments.queries import PaymentRow
from orbit.payments.tonapi import TonapiClient, TonapiError
from orbit.settings import Settings
from orbit.text import clean_text

log = logging.getLogger(__name__)

NANOTON = 10**9
# Amounts are rounded up to 0.0001 TON: short enough to type, and a payer who
# types the shown amount pays at least what was asked.
NANOTON_STEP = 10**5
RATE_TTL_SECONDS = 300
FALLBACK_TTL_SECONDS = 30  # while tonapi is down, do not wait on it for every screen
COMMENT_PREFIX = "ORB"
COMMENT_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud or retyped
COMMENT_LENGTH = 6
_COMMENT_ATTEMPTS = 8
_UQ_COMMENT = "uq_payments_comment"


class TonInvoice(msgspec.Struct, frozen=True):
    """What the TON screen shows: send exactly `amount_ton` to `address` with `comment`."""

    payment: PaymentRow
    address: str
    nanotons: int
    amount_ton: str  # "1.2345"
    comment: str
    link: str  # ton://transfer/...
    rate_rub: float  # RUB per TON used


async def ton_rate(redis: Redis, http: aiohttp.ClientSession, settings: Settings) -> float:
    """RUB per 1 TON: tonapi's rate cached in Redis for a few minutes; `TON_RUB_RATE`
    when tonapi cannot say (the fallback is cached briefly too)."""
    try:
        cached = await redis.get(keys.TON_RATE)
    except (RedisError, OSError) as exc:
        log.warning("TON rate cache unreadable: %s", exc)
        cached = None
    if cached:
        return float(cached)
    client = TonapiClient(http, settings.tonapi_url, settings.tonapi_key, retries=1, timeout=5.0)
    try:
        rate, ttl = await client.ton_price("RUB"), RATE_TTL_SECONDS
    except TonapiError as exc:
        log.warning("TON rate from tonapi failed (%s); using TON_RUB_RATE=%s", exc, settings.ton_rub_rate)
        rate, ttl = settings.ton_rub_rate, FALLBACK_TTL_SECONDS
    try:
        await redis.set(keys.TON_RATE, repr(rate), ex=ttl)
    except (RedisError, OSError) as exc:
        log.warning("TON rate not cached: %s", exc)
    return rate


def nanotons_for(amount_kop: int, rate_rub: float) -> int:
    """The nanotons worth `amount_kop` at `rate_rub` RUB/TON, rounded up to `NANOTON_STEP`."""
    if rate_rub <= 0:
        raise ValueError("the TON rate must be positive")
    exact = Decimal(amount_kop) * NANOTON / (Decimal(str(rate_rub)) * 100)
    steps = (exact / NANOTON_STEP).to_integral_value(rounding=ROUND_CEILING)
    return max(int(steps), 1) * NANOTON_STEP


def credited_for(payment: PaymentRow, nanotons: int) -> int:
    """Kopecks for `nanotons` paid on `payment`, at the rate fixed when it was created
    (rounded down: we never credit more than arrived)."""
    return nanotons * payment.amount_kop // payment.currency_amount


def kopecks_at_rate(nanotons: int, rate_rub: float) -> int:
    """Kopecks `nanotons` are worth at `rate_rub` RUB per TON, rounded down."""
    return int(Decimal(nanotons) * Decimal(str(rate_rub)) * 100 // NANOTON)


def format_ton(nanotons: int) -> str:
    """`1234500000` → `1.2345`."""
    text = f"{Decimal(nanotons) / NANOTON:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def new_comment() -> str:
    return COMMENT_PREFIX + "".join(secrets.choice(COMMENT_ALPHABET) for _ in range(COMMENT_LENGTH))


def normalize_comment(text: str | None) -> str | None:
    """How a transfer's comment is matched: spaces dropped, upper-case (payers retype them);
    anything Postgres cannot hold (NUL, lone surrogates, controls) dropped first."""
    if not text:
        return None
    cleaned = re.sub(r"\s+", "", clean_text(text, 256)).upper()
    return cleaned[:64] or None


def ton_link(address: str, nanotons: int, comment: str) -> str:
    """A `ton://transfer` deep link wallets open with amount and comment filled in."""
    return f"ton://transfer/{address}?amount={nanotons}&text={quote(comment, safe='')}"


def qr_png(data: str) -> bytes:
    """A PNG QR code of `data` (send it with aiogram's `BufferedInputFile(png, "ton.png")`)."""
    image = qrcode.make(data, border=2, box_size=8)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


async def create_ton_payment(
    pool: asyncpg.Pool,
    redis: Redis,
    http: aiohttp.ClientSession,
    settings: Settings,
    user_id: int,
    amount_kop: int,
) -> TonInvoice:
    """A pending TON payment of `amount_kop` for `user_id`: the rate is taken now
    (`ton_rate`) and the nanotons are fixed in the row, with a unique short
    comment the watcher matches the transfer by; expires after
    `PAYMENT_TIMEOUT_MINUTES` (a transfer after that is still credited).

    Raises `service.MethodNotConfigured` without `TON_ADDRESS`,
    `service.AmountOutOfRange` outside the top-up limits.
    """
    if not settings.ton_address:
        raise service.MethodNotConfigured("ton")
    service.check_topup_amount(settings, amount_kop)
    async with pool.acquire() as conn, conn.transaction():  # refused before the rate is fetched
        await service.reserve_pending_slot(conn, settings, user_id)
    rate = await ton_rate(redis, http, settings)  # before the transaction: no HTTP while holding it
    nanotons = nanotons_for(amount_kop, rate)
    details = {"rate_rub": rate, "address": settings.ton_address}
    async with pool.acquire() as conn, conn.transaction():
        await service.reserve_pending_slot(conn, settings, user_id)  # again: held while inserting
        for _ in range(_COMMENT_ATTEMPTS):
            comment = new_comment()
            try:
                async with conn.transaction():  # a savepoint per attempt: a clash only costs a retry
                    payment = await service.create_payment(
                        conn,
                        user_id,
                        "ton",
                        amount_kop,
                        "TON",
                        nanotons,
                        service.payment_expires_at(settings),
                        comment=comment,
                        details=details,
                    )
                break
            except asyncpg.UniqueViolationError as exc:
                if exc.constraint_name != _UQ_COMMENT:
                    raise
        else:
            raise RuntimeError("no free TON comment after several attempts")
    log.info("TON payment %d: user %d, %d kop = %d nanoton, comment %s", payment.id, user_id,
             amount_kop, nanotons, comment)
    return TonInvoice(
        payment=payment,
        address=settings.ton_address,
        nanotons=nanotons,
        amount_ton=format_ton(nanotons),
        comment=comment,
        link=ton_link(settings.ton_address, nanotons, comment),
        rate_rub=rate,
    )
