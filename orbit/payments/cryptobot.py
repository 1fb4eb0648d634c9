"""CryptoBot (Crypto Pay API) top-ups: a RUB fiat invoice the payer settles in crypto.

Our own small client (aiohttp) rather than aiocryptopay: its webhook check is
not constant-time and answers nothing on a bad signature, and its pins are old
(see shared/reference/protocols.md §3). A payment is confirmed by the
`invoice_paid` webhook (signature checked on the raw bytes before anything is
parsed) or by the user's "Check payment" (`getInvoices`); both go through
`confirm_invoice`, idempotent by invoice id (the payment's `external_id`).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

import aiohttp
import asyncpg
import msgspec
from redis.asyncio import Redis

from orbit import outbox
from orbit.i18n import Translator
from orbit.payments import service
from orbit.payments.queries import PaymentRow
from orbit.settings import Settings

log = logging.getLogger(__name__)

METHOD = "cryptobot"
MAINNET_URL = "https://pay.crypt.bot"
TESTNET_URL = "https://testnet-pay.crypt.bot"
SIGNATURE_HEADER = "crypto-pay-api-signature"
ACCEPTED_ASSETS = ("USDT", "TON", "BTC", "ETH", "LTC", "BNB", "TRX", "USDC")
FIAT = "RUB"
REQUEST_TIMEOUT = 10.0


class CryptoPayError(service.PaymentError):
    """The Crypto Pay API failed or refused (the user is told to try later)."""

    message_key = "cryptobot-unavailable"

    def __init__(self, code: int, name: str) -> None:
        super().__init__(f"Crypto Pay API {code} {name}")
        self.code = code
        self.name = name


class BadSignature(Exception):
    """A webhook whose `crypto-pay-api-signature` is missing or wrong (answer 401)."""


class BadUpdate(Exception):
    """A correctly signed webhook body we cannot read (answer 400)."""


class Invoice(msgspec.Struct, frozen=True, kw_only=True):
    invoice_id: int
    status: str  # active, paid, expired
    amount: str  # decimal string, in `fiat` for a fiat invoice
    currency_type: str = "crypto"
    fiat: str | None = None
    asset: str | None = None
    bot_invoice_url: str = ""
    payload: str | None = None
    paid_asset: str | None = None
    paid_amount: str | None = None


class WebhookUpdate(msgspec.Struct, frozen=True, kw_only=True):
    update_id: int
    update_type: str
    payload: Invoice


class _Error(msgspec.Struct, frozen=True):
    code: int = 0
    name: str = "UNKNOWN"


class _Envelope(msgspec.Struct, frozen=True):
    ok: bool
    result: msgspec.Raw = msgspec.Raw(b"null")
    error: _Error | None = None


class _Items(msgspec.Struct, frozen=True):
    items: list[Invoice]


class CheckResult(msgspec.Struct, frozen=True):
    status: str  # confirmed, pending, expired
    payment: PaymentRow
    confirmation: service.Confirmation | None = None


def api_url(settings: Settings) -> str:
    if settings.cryptobot_api_url:
        return settings.cryptobot_api_url.rstrip("/")
    return TESTNET_URL if settings.cryptobot_testnet else MAINNET_URL


def signature(token: str, body: bytes) -> str:
    """hex(HMAC-SHA256(key = SHA256(token), msg = the raw body)), as Crypto Pay signs webhooks."""
    secret = hashlib.sha256(token.encode()).digest()
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def rub_amount(kopecks: int) -> str:
    """`15050` → `"150.50"`: the API takes amounts as decimal strings."""
    rub, kop = divmod(kopecks, 100)
    return f"{rub}.{kop:02d}"


def verify_signature(token: str, body: bytes, given: str | None) -> bool:
    """Constant-time check of the header. Anything that is not ASCII cannot be our hex
    digest (and `compare_digest` raises on non-ASCII strings): it is simply wrong."""
    if not given or not given.isascii():
        return False
    return hmac.compare_digest(signature(token, body).encode(), given.strip().lower().encode())


class CryptoPayClient:
    def __init__(self, http: aiohttp.ClientSession, token: str, base_url: str) -> None:
        self.http = http
        self.token = token
        self.base_url = base_url.rstrip("/")

    async def call(self, method: str, params: dict[str, Any]) -> msgspec.Raw:
        try:
            async with self.http.post(
                f"{self.base_url}/api/{method}",
                json=params,
                headers={"Crypto-Pay-API-Token": self.token},
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
            ) as response:
                body = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise CryptoPayError(0, f"network: {exc!r}") from None
        try:
            envelope = msgspec.json.decode(body, type=_Envelope)
        except msgspec.DecodeError:
            raise CryptoPayError(status, "UNREADABLE_RESPONSE") from None
        if not envelope.ok:
            error = envelope.error or _Error(status)
            raise CryptoPayError(error.code or status, error.name)
        return envelope.result

    async def create_invoice(
        self, amount_rub: str, *, payload: str, description: str, expires_in: int
    ) -> Invoice:
        raw = await self.call(
            "createInvoice",
            {
                "currency_type": "fiat",
                "fiat": FIAT,
                "accepted_assets": ",".join(ACCEPTED_ASSETS),
                "amount": amount_rub,
                "payload": payload,
                "description": description,
                "expires_in": expires_in,
                "allow_comments": False,
            },
        )
        return _decode(raw, Invoice)

    async def get_invoices(self, invoice_ids: list[int]) -> list[Invoice]:
        raw = await self.call(
            "getInvoices",
            {"invoice_ids": ",".join(map(str, invoice_ids)), "count": max(len(invoice_ids), 1)},
        )
        return _decode(raw, _Items).items

    async def recent_invoices(self, status: str, count: int = 100) -> list[Invoice]:
        """The app's latest invoices of `status` (newest first, at most 1000)."""
        raw = await self.call("getInvoices", {"status": status, "count": count})
        return _decode(raw, _Items).items


def _decode(raw: msgspec.Raw, kind: type[Any]) -> Any:
    try:
        return msgspec.json.decode(raw, type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise CryptoPayError(200, f"UNEXPECTED_RESULT: {exc}") from None


def client_for(http: aiohttp.ClientSession, settings: Settings) -> CryptoPayClient:
    if not settings.cryptobot_token:
        raise service.MethodNotConfigured(METHOD)
    return CryptoPayClient(http, settings.cryptobot_token, api_url(settings))


async def create_cryptobot_payment(
    pool: asyncpg.Pool,
    http: aiohttp.ClientSession,
    settings: Settings,
    user_id: int,
    amount_kop: int,
    description: str,
) -> PaymentRow:
    """A pending payment and its Crypto Pay invoice (RUB, any accepted asset); the
    returned row carries the invoice id (`external_id`) and its `pay_url`.

    The row is committed before the API call, so an invoice always has its row
    (its payload is the payment id). Raises `service.MethodNotConfigured`,
    `service.AmountOutOfRange`, `CryptoPayError` (the row is then `failed`).
    """
    client = client_for(http, settings)
    service.check_topup_amount(settings, amount_kop)
    async with pool.acquire() as conn, conn.transaction():
        await service.reserve_pending_slot(conn, settings, user_id)  # before Crypto Pay is asked
        payment = await service.create_payment(
            conn,
            user_id,
            METHOD,
            amount_kop,
            FIAT,
            amount_kop,
            service.payment_expires_at(settings),
        )
    try:
        invoice = await client.create_invoice(
            rub_amount(amount_kop),
            payload=str(payment.id),
            description=description,
            expires_in=settings.payment_timeout_minutes * 60,
        )
    except CryptoPayError as exc:
        async with pool.acquire() as conn:
            await service.fail_payment(conn, payment.id, str(exc))
        log.warning("cryptobot invoice for payment %d failed: %s", payment.id, exc)
        raise
    async with pool.acquire() as conn:
        payment = await service.attach_invoice(
            conn,
            payment.id,
            external_id=str(invoice.invoice_id),
            pay_url=invoice.bot_invoice_url,
        )
    log.info(
        "cryptobot payment %d: user %d, %d kop, invoice %d",
        payment.id,
        user_id,
        amount_kop,
        invoice.invoice_id,
    )
    return payment


MAX_INVOICE_KOP = 10**14  # far above any top-up; keeps a forged amount inside bigint


def _kopecks(amount: str) -> int | None:
    """A positive decimal string → kopecks; None for anything else, or for less than
    a kopeck or more than `MAX_INVOICE_KOP` (no such invoice of ours exists)."""
    if len(amount) > 40:
        return None
    try:
        value = Decimal(amount)
    except InvalidOperation:
        return None
    if not value.is_finite() or not 0 < value < MAX_INVOICE_KOP // 100:
        return None
    kopecks = int((value * 100).to_integral_value(rounding=ROUND_DOWN))
    return kopecks if kopecks > 0 else None


def _payload_payment_id(payload: str | None) -> int | None:
    """The payment id our invoices carry as payload; None for anything else (a forged
    or foreign payload must not reach the database as a non-bigint)."""
    if payload and payload.isascii() and payload.isdigit() and len(payload) <= 18:
        return int(payload)
    return None


async def confirm_invoice(
    pool: asyncpg.Pool, redis: Redis, translator: Translator, settings: Settings, invoice: Invoice
) -> service.Confirmation | None:
    """Credit a paid invoice once; None when it names no payment of ours.

    The payment is found by invoice id, or by the payload (our payment id) when
    the process died before the invoice id was recorded. The credit is the
    invoice's RUB amount, which is what we asked for.
    """
    if invoice.status != "paid":
        raise ValueError(f"invoice {invoice.invoice_id} is {invoice.status}, not paid")
    external_id = str(invoice.invoice_id)
    credited = _kopecks(invoice.amount) if invoice.fiat == FIAT else None
    async with pool.acquire() as conn, conn.transaction():
        payment = await service.find_payment(conn, METHOD, external_id)
        payload_id = _payload_payment_id(invoice.payload)
        if payment is None and payload_id is not None:
            candidate = await service.get_payment(conn, payload_id)
            if (
                candidate is not None
                and candidate.method == METHOD
                and candidate.external_id in (None, external_id)
            ):
                payment = candidate
        if payment is None or credited is None:
            log.error(
                "cryptobot invoice %d (%s %s, payload %r) matches no payment: left for an admin",
                invoice.invoice_id,
                invoice.amount,
                invoice.fiat,
                invoice.payload,
            )
            return None
        if credited != payment.amount_kop:
            log.warning(
                "cryptobot invoice %d pays %d kop for payment %d of %d kop",
                invoice.invoice_id,
                credited,
                payment.id,
                payment.amount_kop,
            )
        try:
            confirmation = await service.confirm_payment(
                conn,
                translator,
                payment.id,
                credited_kop=credited,
                external_id=external_id,
                settings=settings,
            )
        except service.ExternalIdTaken:  # asking again cannot help: an admin must look
            log.error(
                "cryptobot invoice %d: another payment already holds this invoice id", invoice.invoice_id
            )
            return None
    if not confirmation.replayed:
        await outbox.wake_sender(redis)
    return confirmation


async def handle_webhook(
    pool: asyncpg.Pool,
    redis: Redis,
    translator: Translator,
    settings: Settings,
    body: bytes,
    given_signature: str | None,
) -> service.Confirmation | None:
    """A webhook's raw body: the signature is checked before a byte of it is parsed.

    Raises `BadSignature` (also when CryptoBot is not configured) and `BadUpdate`;
    returns the confirmation (None for an update that pays nothing of ours).
    """
    token = settings.cryptobot_token
    if not token or not verify_signature(token, body, given_signature):
        raise BadSignature
    try:
        update = msgspec.json.decode(body, type=WebhookUpdate)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BadUpdate(str(exc)) from None
    if update.update_type != "invoice_paid" or update.payload.status != "paid":
        log.info("cryptobot update %d (%s) ignored", update.update_id, update.update_type)
        return None
    return await confirm_invoice(pool, redis, translator, settings, update.payload)


async def check_payment(
    pool: asyncpg.Pool,
    redis: Redis,
    http: aiohttp.ClientSession,
    translator: Translator,
    settings: Settings,
    user_id: int,
    payment_id: int,
) -> CheckResult:
    """The user's "Check payment": ask `getInvoices` about their invoice and confirm
    it if paid. Raises `service.PaymentNotFound` for a payment that is not the
    user's CryptoBot payment, `CryptoPayError`."""
    payment = await service.get_payment(pool, payment_id)
    if payment is None or payment.user_id != user_id or payment.method != METHOD:
        raise service.PaymentNotFound(payment_id)
    if payment.status in service.ALREADY_CONFIRMED:
        return CheckResult("confirmed", payment)
    if payment.external_id is None:  # the invoice was never created
        return CheckResult("expired", payment)
    client = client_for(http, settings)
    invoices = await client.get_invoices([int(payment.external_id)])
    invoice = next((i for i in invoices if str(i.invoice_id) == payment.external_id), None)
    if invoice is None or invoice.status == "expired":
        return CheckResult("expired", payment)
    if invoice.status != "paid":
        return CheckResult("pending", payment)
    confirmation = await confirm_invoice(pool, redis, translator, settings, invoice)
    if confirmation is None:
        return CheckResult("pending", payment)
    return CheckResult("confirmed", confirmation.payment, confirmation)
