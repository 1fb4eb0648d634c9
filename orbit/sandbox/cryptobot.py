"""A local Crypto Pay API (@CryptoBot) emulator with signed ``invoice_paid`` webhooks.

Methods are served at ``/api/<method>`` from GET query strings and POST JSON/form
bodies; see ``docs/cryptobot-emulator.md`` for the error names and the controls.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import logging
import secrets
import string
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from decimal import ROUND_UP, Decimal, InvalidOperation
from typing import Any, TypeVar

import aiohttp
import msgspec
from aiohttp import web

from orbit.sandbox import standalone

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

TOKEN_HEADER = "Crypto-Pay-API-Token"
SIGNATURE_HEADER = "crypto-pay-api-signature"
CONTROL_PREFIX = "/_emulator"
MAX_EXPIRES_IN = 2_678_400
MAX_DESCRIPTION = 1024
MAX_HIDDEN_MESSAGE = 2048
MAX_PAYLOAD_BYTES = 4096
MAX_COUNT = 1000
DEFAULT_COUNT = 100
MIN_INVOICE_USD = Decimal("0.01")
FEE_RATE = Decimal("0.03")
PAID_BUTTONS = frozenset({"viewItem", "openChannel", "openBot", "callback"})
INVOICE_STATUSES = frozenset({"active", "paid", "expired"})


class AssetInfo(msgspec.Struct, frozen=True):
    name: str
    usd: Decimal
    decimals: int
    stablecoin: bool = False


ASSETS: Mapping[str, AssetInfo] = {
    "USDT": AssetInfo("Tether", Decimal("1"), 6, stablecoin=True),
    "TON": AssetInfo("Toncoin", Decimal("3"), 9),
    "BTC": AssetInfo("Bitcoin", Decimal("60000"), 8),
    "ETH": AssetInfo("Ethereum", Decimal("3000"), 18),
    "LTC": AssetInfo("Litecoin", Decimal("80"), 8),
    "BNB": AssetInfo("Binance Coin", Decimal("600"), 18),
    "TRX": AssetInfo("TRON", Decimal("0.12"), 6),
    "USDC": AssetInfo("USD Coin", Decimal("1"), 6, stablecoin=True),
}
FIATS: Mapping[str, tuple[str, Decimal]] = {
    "USD": ("US Dollar", Decimal("1")),
    "EUR": ("Euro", Decimal("0.92")),
    "RUB": ("Russian Ruble", Decimal("90")),
    "BYN": ("Belarusian Ruble", Decimal("3.2")),
    "UAH": ("Ukrainian Hryvnia", Decimal("41")),
    "GBP": ("British Pound", Decimal("0.79")),
    "CNY": ("Chinese Yuan", Decimal("7.2")),
    "KZT": ("Kazakhstani Tenge", Decimal("480")),
}


# --- wire objects -----------------------------------------------------------------------------


class Invoice(msgspec.Struct, kw_only=True, omit_defaults=True):
    invoice_id: int
    hash: str
    currency_type: str
    status: str
    amount: str
    bot_invoice_url: str
    mini_app_invoice_url: str
    web_app_invoice_url: str
    pay_url: str
    created_at: str
    allow_comments: bool
    allow_anonymous: bool
    asset: str | None = None
    fiat: str | None = None
    accepted_assets: list[str] | None = None
    description: str | None = None
    hidden_message: str | None = None
    payload: str | None = None
    paid_btn_name: str | None = None
    paid_btn_url: str | None = None
    expiration_date: str | None = None
    paid_at: str | None = None
    paid_anonymously: bool | None = None
    comment: str | None = None
    paid_asset: str | None = None
    paid_amount: str | None = None
    paid_fiat_rate: str | None = None
    paid_usd_rate: str | None = None
    fee_asset: str | None = None
    fee_amount: str | None = None
    fee_in_usd: str | None = None


class Update(msgspec.Struct, kw_only=True):
    update_id: int
    update_type: str
    request_date: str
    payload: Invoice


class WebhookDelivery(msgspec.Struct, kw_only=True):
    kind: str  # "update" | "redelivery" | "forged"
    url: str
    update_id: int | None
    invoice_id: int | None
    attempt: int
    status: int | None
    error: str | None
    signature: str | None
    body: str
    at: float

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class RecordedRequest(msgspec.Struct, kw_only=True):
    method: str
    path: str
    api_method: str
    params: dict[str, Any]
    headers: dict[str, str]
    status: int
    at: float


class ApiError(Exception):
    """A Crypto Pay error envelope: ``{"ok": false, "error": {"code": ..., "name": ...}}``."""

    def __init__(self, code: int, name: str) -> None:
        super().__init__(f"{code} {name}")
        self.code = code
        self.name = name


class InvoiceNotFound(LookupError):
    pass


class InvoiceStateError(ValueError):
    pass


class _Stored(msgspec.Struct, kw_only=True):
    invoice: Invoice
    expires_at: float | None
    last_update: tuple[int, bytes] | None = None


class _AppState(msgspec.Struct, kw_only=True):
    next_invoice_id: int
    next_update_id: int
    invoices: dict[int, _Stored]
    balances: dict[str, Decimal]
    webhook_url: str | None


class PayCommand(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    asset: str | None = None
    comment: str | None = None
    anonymous: bool = False


class WebhookCommand(msgspec.Struct, forbid_unknown_fields=True):
    url: str | None


class ForgedCommand(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    body: str
    signature: str | None = None


class RateCommand(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    source: str
    target: str
    rate: str


class FailCommand(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    count: int = 1
    status: int = 500
    name: str = "INTERNAL_ERROR"


# --- helpers ----------------------------------------------------------------------------------


def sign_body(token: str, body: bytes) -> str:
    """``crypto-pay-api-signature``: hex HMAC-SHA256 of the raw body keyed by SHA256(token)."""
    secret = hashlib.sha256(token.encode()).digest()
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def _iso(ts: float) -> str:
    moment = datetime.fromtimestamp(ts, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _fmt(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def _str(params: Mapping[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _bool(params: Mapping[str, Any], name: str, default: bool) -> bool:
    value = params.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise ApiError(400, f"{name.upper()}_INVALID")


def _int(params: Mapping[str, Any], name: str, default: int | None) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise ApiError(400, f"{name.upper()}_INVALID")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ApiError(400, f"{name.upper()}_INVALID") from None


def _list(params: Mapping[str, Any], name: str) -> list[str]:
    value = params.get(name)
    if value is None:
        return []
    items = value if isinstance(value, list) else str(value).split(",")
    return [str(item).strip() for item in items if str(item).strip()]


def _random_hash() -> str:
    alphabet = string.ascii_letters + string.digits
    return "IV" + "".join(secrets.choice(alphabet) for _ in range(12))


# --- the emulator -----------------------------------------------------------------------------


class CryptoBotEmulator:
    """In-memory Crypto Pay API for one app token, posting signed webhooks on payment."""

    def __init__(
        self,
        token: str,
        webhook_url: str | None = None,
        *,
        app_id: int = 1,
        app_name: str = "Orbit sandbox",
        webhook_attempts: int = 3,
        webhook_retry_delay: float = 0.1,
        webhook_timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.token = token
        self._clock = clock  # invoice times; the sandbox moves it with its one clock
        self.app_id = app_id
        self.app_name = app_name
        self.webhook_attempts = max(webhook_attempts, 1)
        self.webhook_retry_delay = webhook_retry_delay
        self.webhook_timeout = webhook_timeout
        self._initial_webhook_url = webhook_url
        self.webhook_url = webhook_url
        self.requests: list[RecordedRequest] = []
        self.deliveries: list[WebhookDelivery] = []
        self._invoice_ids = itertools.count(1)
        self._update_ids = itertools.count(1)
        self._invoices: dict[int, _Stored] = {}
        self._balances: dict[str, Decimal] = {}
        self._rates: dict[tuple[str, str], Decimal] = {}
        self._faults: deque[ApiError] = deque()
        self._methods: dict[str, Callable[[Mapping[str, Any]], Any]] = {
            "getMe": self._get_me,
            "createInvoice": self._create_invoice,
            "getInvoices": self._get_invoices,
            "deleteInvoice": self._delete_invoice,
            "getExchangeRates": self._get_exchange_rates,
            "getCurrencies": self._get_currencies,
            "getBalance": self._get_balance,
        }
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.base_url: str | None = None
        self._reset_rates()

    # -- lifecycle ------------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("GET", "/api/{method}", self._api)
        app.router.add_route("POST", "/api/{method}", self._api)
        control = CONTROL_PREFIX
        app.router.add_post(f"{control}/invoices/{{invoice_id}}/pay", self._ctl_pay)
        app.router.add_post(f"{control}/invoices/{{invoice_id}}/expire", self._ctl_expire)
        app.router.add_post(f"{control}/invoices/{{invoice_id}}/redeliver", self._ctl_redeliver)
        app.router.add_get(f"{control}/invoices", self._ctl_invoices)
        app.router.add_get(f"{control}/deliveries", self._ctl_deliveries)
        app.router.add_get(f"{control}/requests", self._ctl_requests)
        app.router.add_post(f"{control}/webhook", self._ctl_webhook)
        app.router.add_post(f"{control}/forged_webhook", self._ctl_forged)
        app.router.add_post(f"{control}/rates", self._ctl_rates)
        app.router.add_post(f"{control}/fail", self._ctl_fail)
        app.router.add_post(f"{control}/reset", self._ctl_reset)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner = web.AppRunner(self.make_app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_host, bound_port = self._runner.addresses[0][:2]
        self.base_url = f"http://{bound_host}:{bound_port}"
        logger.info("cryptobot emulator listening on %s, webhook %s", self.base_url, self.webhook_url)
        return self.base_url

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            logger.info("cryptobot emulator on %s stopped", self.base_url)

    def reset(self) -> None:
        """Forget invoices, balances, deliveries, faults and requests; restore rates and webhook.

        Invoice and update ids keep growing across resets so they never repeat.
        """
        self.requests.clear()
        self.deliveries.clear()
        self._invoices.clear()
        self._balances.clear()
        self._faults.clear()
        self.webhook_url = self._initial_webhook_url
        self._reset_rates()

    def dump_state(self) -> bytes:
        """Invoices, balances, the webhook and the id counters as bytes, for the sandbox to keep
        across restarts: ids never repeat, so Orbit's payments still name the right invoice."""
        next_invoice, next_update = next(self._invoice_ids), next(self._update_ids)
        self._invoice_ids, self._update_ids = itertools.count(next_invoice), itertools.count(next_update)
        return msgspec.json.encode(
            _AppState(
                next_invoice_id=next_invoice,
                next_update_id=next_update,
                invoices=self._invoices,
                balances=self._balances,
                webhook_url=self.webhook_url,
            )
        )

    def load_state(self, data: bytes) -> None:
        state = msgspec.json.decode(data, type=_AppState)
        self._invoice_ids = itertools.count(state.next_invoice_id)
        self._update_ids = itertools.count(state.next_update_id)
        self._invoices = state.invoices
        self._balances = state.balances
        self.webhook_url = state.webhook_url

    # -- controls -------------------------------------------------------------------------------

    def set_webhook_url(self, url: str | None) -> None:
        self.webhook_url = url

    def set_exchange_rate(self, source: str, target: str, rate: Decimal | str | float) -> None:
        """Override one ``getExchangeRates`` pair, e.g. ``("USDT", "RUB", "92.5")``."""
        self._rates[(source.upper(), target.upper())] = Decimal(str(rate))

    def fail_next(self, count: int = 1, status: int = 500, name: str = "INTERNAL_ERROR") -> None:
        """Make the next ``count`` API calls answer ``{"ok": false, "error": {status, name}}``."""
        self._faults.extend(ApiError(status, name) for _ in range(count))

    def invoice(self, invoice_id: int) -> dict[str, Any]:
        """The invoice as the API would return it now."""
        return msgspec.to_builtins(self._stored(invoice_id).invoice)

    def invoices(self) -> list[dict[str, Any]]:
        for invoice_id in self._invoices:
            self._refresh(invoice_id)
        return [msgspec.to_builtins(s.invoice) for s in self._invoices.values()]

    def balance(self, asset: str) -> Decimal:
        return self._balances.get(asset.upper(), Decimal(0))

    def expire_invoice(self, invoice_id: int) -> dict[str, Any]:
        stored = self._stored(invoice_id)
        if stored.invoice.status != "active":
            raise InvoiceStateError(f"invoice {invoice_id} is {stored.invoice.status}")
        stored.invoice.status = "expired"
        logger.info("cryptobot emulator: invoice %s expired", invoice_id)
        return msgspec.to_builtins(stored.invoice)

    async def pay_invoice(
        self,
        invoice_id: int,
        asset: str | None = None,
        *,
        comment: str | None = None,
        anonymous: bool = False,
    ) -> dict[str, Any]:
        """Mark an active invoice paid and deliver the signed ``invoice_paid`` update.

        ``asset`` is what the payer used: a crypto invoice is always paid in its own asset
        (``asset`` must match or be None); a fiat invoice defaults to USDT and must be paid
        in one of its ``accepted_assets``. Delivery (with retries) is awaited; see
        ``deliveries`` for the outcome.
        """
        stored = self._stored(invoice_id)
        invoice = stored.invoice
        if invoice.status != "active":
            raise InvoiceStateError(f"invoice {invoice_id} is {invoice.status}")
        if invoice.currency_type == "crypto":
            paid_asset = (asset or invoice.asset or "").upper()
            if paid_asset != invoice.asset:
                raise InvoiceStateError(f"crypto invoice {invoice_id} is paid in {invoice.asset}")
            paid_amount = Decimal(invoice.amount)
        else:
            paid_asset = (asset or "USDT").upper()
            accepted = invoice.accepted_assets or list(ASSETS)
            if paid_asset not in accepted:
                raise InvoiceStateError(f"{paid_asset} is not accepted by invoice {invoice_id}")
            fiat_rate = self._rate(paid_asset, invoice.fiat or "USD")
            places = Decimal(1).scaleb(-min(ASSETS[paid_asset].decimals, 8))
            paid_amount = (Decimal(invoice.amount) / fiat_rate).quantize(places, ROUND_UP)
            invoice.paid_fiat_rate = _fmt(fiat_rate)
        usd_rate = self._rate(paid_asset, "USD")
        fee = (paid_amount * FEE_RATE).quantize(
            Decimal(1).scaleb(-min(ASSETS[paid_asset].decimals, 8)), ROUND_UP
        )
        invoice.status = "paid"
        invoice.paid_at = _iso(self._clock())
        invoice.paid_asset = paid_asset
        invoice.paid_amount = _fmt(paid_amount)
        invoice.paid_usd_rate = _fmt(usd_rate)
        invoice.fee_asset = paid_asset
        invoice.fee_amount = _fmt(fee)
        invoice.fee_in_usd = _fmt((fee * usd_rate).quantize(Decimal("0.00000001")))
        invoice.paid_anonymously = anonymous and invoice.allow_anonymous
        if comment is not None and invoice.allow_comments:
            invoice.comment = comment
        self._balances[paid_asset] = self.balance(paid_asset) + paid_amount - fee
        logger.info(
            "cryptobot emulator: invoice %s paid with %s %s",
            invoice_id,
            invoice.paid_amount,
            paid_asset,
        )
        update = Update(
            update_id=next(self._update_ids),
            update_type="invoice_paid",
            request_date=_iso(self._clock()),
            payload=invoice,
        )
        body = msgspec.json.encode(update)
        stored.last_update = (update.update_id, body)
        if self.webhook_url is None:
            logger.info("cryptobot emulator: no webhook url, update %s not sent", update.update_id)
        else:
            await self._deliver(
                body,
                sign_body(self.token, body),
                kind="update",
                update_id=update.update_id,
                invoice_id=invoice_id,
                attempts=self.webhook_attempts,
            )
        return msgspec.to_builtins(invoice)

    async def deliver_webhook_again(self, invoice_id: int) -> WebhookDelivery:
        """Send the invoice's last update again, byte for byte (a duplicate delivery)."""
        stored = self._stored(invoice_id)
        if stored.last_update is None:
            raise InvoiceStateError(f"invoice {invoice_id} has no update to deliver")
        if self.webhook_url is None:
            raise InvoiceStateError("no webhook url set")
        update_id, body = stored.last_update
        return await self._deliver(
            body,
            sign_body(self.token, body),
            kind="redelivery",
            update_id=update_id,
            invoice_id=invoice_id,
            attempts=1,
        )

    async def post_forged_webhook(
        self, body: bytes | str | Mapping[str, Any], signature: str | None
    ) -> WebhookDelivery:
        """POST ``body`` to the webhook with any signature (None: no header), no retries."""
        if self.webhook_url is None:
            raise InvoiceStateError("no webhook url set")
        if isinstance(body, Mapping):
            raw = msgspec.json.encode(body)
        elif isinstance(body, str):
            raw = body.encode()
        else:
            raw = body
        return await self._deliver(raw, signature, kind="forged", update_id=None, invoice_id=None, attempts=1)

    # -- webhook delivery -----------------------------------------------------------------------

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.webhook_timeout))
        return self._session

    async def _deliver(
        self,
        body: bytes,
        signature: str | None,
        *,
        kind: str,
        update_id: int | None,
        invoice_id: int | None,
        attempts: int,
    ) -> WebhookDelivery:
        url = self.webhook_url
        assert url is not None
        headers = {"Content-Type": "application/json"}
        if signature is not None:
            headers[SIGNATURE_HEADER] = signature
        delivery: WebhookDelivery | None = None
        for attempt in range(1, attempts + 1):
            status: int | None = None
            error: str | None = None
            try:
                async with self._http().post(url, data=body, headers=headers) as response:
                    await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                error = f"{type(exc).__name__}: {exc}"
            delivery = WebhookDelivery(
                kind=kind,
                url=url,
                update_id=update_id,
                invoice_id=invoice_id,
                attempt=attempt,
                status=status,
                error=error,
                signature=signature,
                body=body.decode(),
                at=time.time(),
            )
            self.deliveries.append(delivery)
            logger.info(
                "cryptobot emulator: %s update=%s attempt %d -> %s",
                kind,
                update_id,
                attempt,
                status if status is not None else error,
            )
            if delivery.ok:
                break
            if attempt < attempts:
                await asyncio.sleep(self.webhook_retry_delay * 2 ** (attempt - 1))
        assert delivery is not None
        return delivery

    # -- state helpers --------------------------------------------------------------------------

    def _reset_rates(self) -> None:
        self._rates = {
            (code, fiat): info.usd * per_usd
            for code, info in ASSETS.items()
            for fiat, (_, per_usd) in FIATS.items()
        }

    def _rate(self, source: str, target: str) -> Decimal:
        return self._rates[(source, target)]

    def _stored(self, invoice_id: int) -> _Stored:
        invoice_id = int(invoice_id)
        if invoice_id not in self._invoices:
            raise InvoiceNotFound(f"no invoice {invoice_id}")
        self._refresh(invoice_id)
        return self._invoices[invoice_id]

    def _refresh(self, invoice_id: int) -> None:
        stored = self._invoices[invoice_id]
        if (
            stored.invoice.status == "active"
            and stored.expires_at is not None
            and self._clock() >= stored.expires_at
        ):
            stored.invoice.status = "expired"

    # -- API methods ----------------------------------------------------------------------------

    def _get_me(self, params: Mapping[str, Any]) -> Any:
        return {
            "app_id": self.app_id,
            "name": self.app_name,
            "payment_processing_bot_username": "CryptoBot",
        }

    def _create_invoice(self, params: Mapping[str, Any]) -> Any:
        currency_type = _str(params, "currency_type") or "crypto"
        if currency_type not in ("crypto", "fiat"):
            raise ApiError(400, "CURRENCY_TYPE_INVALID")
        asset = fiat = None
        accepted: list[str] | None = None
        if currency_type == "crypto":
            asset = (_str(params, "asset") or "").upper()
            if not asset:
                raise ApiError(400, "ASSET_REQUIRED")
            if asset not in ASSETS:
                raise ApiError(400, "ASSET_INVALID")
        else:
            fiat = (_str(params, "fiat") or "").upper()
            if not fiat:
                raise ApiError(400, "FIAT_REQUIRED")
            if fiat not in FIATS:
                raise ApiError(400, "FIAT_INVALID")
            accepted = [a.upper() for a in _list(params, "accepted_assets")] or None
            if accepted and any(a not in ASSETS for a in accepted):
                raise ApiError(400, "ACCEPTED_ASSETS_INVALID")
        amount_text = _str(params, "amount")
        if not amount_text:
            raise ApiError(400, "AMOUNT_REQUIRED")
        try:
            amount = Decimal(amount_text)
        except InvalidOperation:
            raise ApiError(400, "AMOUNT_INVALID") from None
        if not amount.is_finite() or amount <= 0:
            raise ApiError(400, "AMOUNT_INVALID")
        usd = amount * ASSETS[asset].usd if asset else amount / FIATS[fiat or "USD"][1]
        if usd < MIN_INVOICE_USD:
            raise ApiError(400, "AMOUNT_TOO_SMALL")
        description = _str(params, "description")
        if description is not None and len(description) > MAX_DESCRIPTION:
            raise ApiError(400, "DESCRIPTION_TOO_LONG")
        hidden_message = _str(params, "hidden_message")
        if hidden_message is not None and len(hidden_message) > MAX_HIDDEN_MESSAGE:
            raise ApiError(400, "HIDDEN_MESSAGE_TOO_LONG")
        payload = _str(params, "payload")
        if payload is not None and len(payload.encode()) > MAX_PAYLOAD_BYTES:
            raise ApiError(400, "PAYLOAD_TOO_LONG")
        paid_btn_name = _str(params, "paid_btn_name")
        paid_btn_url = _str(params, "paid_btn_url")
        if paid_btn_name is not None:
            if paid_btn_name not in PAID_BUTTONS:
                raise ApiError(400, "PAID_BTN_NAME_INVALID")
            if not paid_btn_url:
                raise ApiError(400, "PAID_BTN_URL_REQUIRED")
        if paid_btn_url is not None and not paid_btn_url.startswith(("http://", "https://")):
            raise ApiError(400, "PAID_BTN_URL_INVALID")
        expires_in = _int(params, "expires_in", None)
        if expires_in is not None and not 1 <= expires_in <= MAX_EXPIRES_IN:
            raise ApiError(400, "EXPIRES_IN_INVALID")
        allow_comments = _bool(params, "allow_comments", True)
        allow_anonymous = _bool(params, "allow_anonymous", True)

        now = self._clock()
        invoice_id = next(self._invoice_ids)
        invoice_hash = _random_hash()
        bot_url = f"https://t.me/CryptoBot?start={invoice_hash}"
        invoice = Invoice(
            invoice_id=invoice_id,
            hash=invoice_hash,
            currency_type=currency_type,
            status="active",
            amount=_fmt(amount),
            bot_invoice_url=bot_url,
            mini_app_invoice_url=(f"https://t.me/CryptoBot/app?startapp=invoice-{invoice_hash}&mode=compact"),
            web_app_invoice_url=f"https://app.cr.bot/invoices/{invoice_hash}",
            pay_url=bot_url,
            created_at=_iso(now),
            allow_comments=allow_comments,
            allow_anonymous=allow_anonymous,
            asset=asset,
            fiat=fiat,
            accepted_assets=accepted,
            description=description,
            hidden_message=hidden_message,
            payload=payload,
            paid_btn_name=paid_btn_name,
            paid_btn_url=paid_btn_url,
            expiration_date=_iso(now + expires_in) if expires_in else None,
        )
        self._invoices[invoice_id] = _Stored(
            invoice=invoice, expires_at=now + expires_in if expires_in else None
        )
        logger.info(
            "cryptobot emulator: invoice %s created, %s %s",
            invoice_id,
            invoice.amount,
            asset or fiat,
        )
        return invoice

    def _get_invoices(self, params: Mapping[str, Any]) -> Any:
        asset = (_str(params, "asset") or "").upper() or None
        fiat = (_str(params, "fiat") or "").upper() or None
        status = _str(params, "status")
        if status is not None and status not in INVOICE_STATUSES:
            raise ApiError(400, "STATUS_INVALID")
        try:
            ids = {int(i) for i in _list(params, "invoice_ids")}
        except ValueError:
            raise ApiError(400, "INVOICE_IDS_INVALID") from None
        offset = _int(params, "offset", 0) or 0
        count = _int(params, "count", DEFAULT_COUNT)
        if offset < 0:
            raise ApiError(400, "OFFSET_INVALID")
        if count is None or not 1 <= count <= MAX_COUNT:
            raise ApiError(400, "COUNT_INVALID")
        items = []
        for invoice_id in sorted(self._invoices, reverse=True):
            self._refresh(invoice_id)
            invoice = self._invoices[invoice_id].invoice
            if ids and invoice_id not in ids:
                continue
            if asset is not None and invoice.asset != asset:
                continue
            if fiat is not None and invoice.fiat != fiat:
                continue
            if status is not None and invoice.status != status:
                continue
            items.append(invoice)
        return {"items": items[offset : offset + count]}

    def _delete_invoice(self, params: Mapping[str, Any]) -> Any:
        invoice_id = _int(params, "invoice_id", None)
        if invoice_id is None:
            raise ApiError(400, "INVOICE_ID_REQUIRED")
        if self._invoices.pop(invoice_id, None) is None:
            raise ApiError(400, "INVOICE_NOT_FOUND")
        logger.info("cryptobot emulator: invoice %s deleted", invoice_id)
        return True

    def _get_exchange_rates(self, params: Mapping[str, Any]) -> Any:
        return [
            {
                "is_valid": True,
                "is_crypto": True,
                "is_fiat": False,
                "source": source,
                "target": target,
                "rate": _fmt(rate),
            }
            for (source, target), rate in self._rates.items()
        ]

    def _get_currencies(self, params: Mapping[str, Any]) -> Any:
        crypto = [
            {
                "is_blockchain": not info.stablecoin,
                "is_stablecoin": info.stablecoin,
                "is_fiat": False,
                "name": info.name,
                "code": code,
                "decimals": info.decimals,
            }
            for code, info in ASSETS.items()
        ]
        fiat = [
            {
                "is_blockchain": False,
                "is_stablecoin": False,
                "is_fiat": True,
                "name": name,
                "code": code,
                "decimals": 2,
            }
            for code, (name, _) in FIATS.items()
        ]
        return crypto + fiat

    def _get_balance(self, params: Mapping[str, Any]) -> Any:
        return [
            {"currency_code": code, "available": _fmt(self.balance(code)), "onhold": "0"} for code in ASSETS
        ]

    # -- HTTP: API ------------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        name = request.match_info["method"]
        params: dict[str, Any] = {}
        try:
            params = await _read_params(request)
            if self._faults:
                raise self._faults.popleft()
            method = self._methods.get(name)
            if method is None:
                raise ApiError(405, "METHOD_NOT_FOUND")
            if request.headers.get(TOKEN_HEADER) != self.token:
                raise ApiError(401, "UNAUTHORIZED")
            response = _json({"ok": True, "result": method(params)})
        except ApiError as exc:
            response = _json({"ok": False, "error": {"code": exc.code, "name": exc.name}}, exc.code)
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                api_method=name,
                params=params,
                headers=dict(request.headers),
                status=response.status,
                at=time.time(),
            )
        )
        logger.debug("cryptobot emulator: %s %s -> %s", request.method, name, response.status)
        return response

    # -- HTTP: controls -------------------------------------------------------------------------

    async def _ctl_pay(self, request: web.Request) -> web.Response:
        cmd = await _decode(request, PayCommand)

        async def pay(invoice_id: int) -> Any:
            return await self.pay_invoice(invoice_id, cmd.asset, comment=cmd.comment, anonymous=cmd.anonymous)

        return await _control(request, pay, with_deliveries=self)

    async def _ctl_expire(self, request: web.Request) -> web.Response:
        async def expire(invoice_id: int) -> Any:
            return self.expire_invoice(invoice_id)

        return await _control(request, expire)

    async def _ctl_redeliver(self, request: web.Request) -> web.Response:
        return await _control(request, self.deliver_webhook_again)

    async def _ctl_invoices(self, request: web.Request) -> web.Response:
        return _json(self.invoices())

    async def _ctl_deliveries(self, request: web.Request) -> web.Response:
        return _json(self.deliveries)

    async def _ctl_requests(self, request: web.Request) -> web.Response:
        return _json(self.requests)

    async def _ctl_webhook(self, request: web.Request) -> web.Response:
        cmd = await _decode(request, WebhookCommand)
        self.set_webhook_url(cmd.url)
        return _json({"ok": True, "url": self.webhook_url})

    async def _ctl_forged(self, request: web.Request) -> web.Response:
        cmd = await _decode(request, ForgedCommand)
        try:
            delivery = await self.post_forged_webhook(cmd.body, cmd.signature)
        except InvoiceStateError as exc:
            return _json({"error": str(exc)}, 409)
        return _json(delivery)

    async def _ctl_rates(self, request: web.Request) -> web.Response:
        cmd = await _decode(request, RateCommand)
        try:
            self.set_exchange_rate(cmd.source, cmd.target, cmd.rate)
        except InvalidOperation:
            return _json({"error": f"bad rate {cmd.rate!r}"}, 400)
        return _json({"ok": True})

    async def _ctl_fail(self, request: web.Request) -> web.Response:
        cmd = await _decode(request, FailCommand)
        self.fail_next(cmd.count, cmd.status, cmd.name)
        return _json({"ok": True, "pending": len(self._faults)})

    async def _ctl_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return _json({"ok": True})


# --- HTTP helpers -----------------------------------------------------------------------------


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(payload), status=status, content_type="application/json")


async def _read_params(request: web.Request) -> dict[str, Any]:
    params: dict[str, Any] = dict(request.query)
    if request.method != "POST" or not request.body_exists:
        return params
    if request.content_type == "application/json":
        raw = await request.read()
        if raw.strip():
            try:
                body = msgspec.json.decode(raw)
            except msgspec.DecodeError:
                raise ApiError(400, "JSON_INVALID") from None
            if not isinstance(body, dict):
                raise ApiError(400, "JSON_INVALID")
            params.update(body)
    elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        params.update({key: str(value) for key, value in form.items()})
    return params


async def _decode(request: web.Request, kind: type[_T]) -> _T:
    body = await request.read()
    try:
        return msgspec.json.decode(body or b"{}", type=kind)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise web.HTTPBadRequest(
            text=msgspec.json.encode({"error": str(exc)}).decode(),
            content_type="application/json",
        ) from None


async def _control(
    request: web.Request,
    action: Callable[[int], Awaitable[Any]],
    with_deliveries: CryptoBotEmulator | None = None,
) -> web.Response:
    try:
        invoice_id = int(request.match_info["invoice_id"])
    except ValueError:
        return _json({"error": "invoice id must be an integer"}, 400)
    seen = len(with_deliveries.deliveries) if with_deliveries is not None else 0
    try:
        result = await action(invoice_id)
    except InvoiceNotFound as exc:
        return _json({"error": str(exc)}, 404)
    except InvoiceStateError as exc:
        return _json({"error": str(exc)}, 409)
    if with_deliveries is not None:
        return _json(
            {"invoice": result, "deliveries": with_deliveries.deliveries[seen:]},
        )
    return _json(result)


# --- running alone ----------------------------------------------------------------------------


async def serve(host: str, port: int, token: str, webhook_url: str | None) -> None:
    await standalone.run_until_signal(host, [(CryptoBotEmulator(token, webhook_url), port)])


def main(argv: list[str] | None = None) -> None:
    parser = standalone.arguments("Local Crypto Pay API (@CryptoBot) emulator", port=8092)
    parser.add_argument("--token", default="sandbox-token", help="app token clients must send")
    parser.add_argument("--webhook-url", default=None, help="where invoice_paid updates go")
    args = standalone.parse(parser, argv)
    asyncio.run(serve(args.host, args.port, args.token, args.webhook_url))


if __name__ == "__main__":
    main()
