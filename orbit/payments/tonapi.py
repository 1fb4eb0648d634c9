"""A small tonapi.io v2 client: an account's transactions and the TON rate.

Written on aiohttp rather than pytonapi: we need two endpoints, our own
bounded back-off and no self-throttling (pytonapi waits 4 s between requests
without a key, even against the local emulator).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiohttp
import msgspec

log = logging.getLogger(__name__)

_T = TypeVar("_T")

TEXT_COMMENT = "text_comment"
TEXT_COMMENT_PREFIX = "00000000"  # op code of a plain text comment in a message body


class TonapiError(Exception):
    """tonapi answered with an error we do not retry (4xx other than 429), or bad JSON."""


class TonapiUnavailable(TonapiError):
    """429, 5xx or a network error persisted through every retry."""


class AccountAddress(msgspec.Struct):
    address: str


class TextBody(msgspec.Struct):
    text: str | None = None


class Message(msgspec.Struct):
    msg_type: str
    value: int = 0
    bounced: bool = False
    source: AccountAddress | None = None
    op_code: str | None = None
    decoded_op_name: str | None = None
    decoded_body: TextBody | None = None
    raw_body: str | None = None

    @property
    def comment(self) -> str | None:
        if self.decoded_op_name == TEXT_COMMENT and self.decoded_body is not None:
            return self.decoded_body.text
        body = self.raw_body or ""
        if self.op_code == "0x00000000" and body.startswith(TEXT_COMMENT_PREFIX):
            try:
                return bytes.fromhex(body[len(TEXT_COMMENT_PREFIX) :]).decode()
            except ValueError:  # a long comment spans cells: tonapi's decoded_body covers it
                return None
        return None


class Transaction(msgspec.Struct):
    hash: str
    lt: int
    utime: int
    success: bool
    aborted: bool = False
    in_msg: Message | None = None
    # Set by `decode_transactions` for an item whose shape it could not read: the
    # watcher stores it as `rejected` with this reason and moves on.
    problem: str | None = None

    @property
    def is_incoming(self) -> bool:
        """An internal message from another account (not our own wallet's outgoing transfer)."""
        msg = self.in_msg
        return msg is not None and msg.msg_type == "int_msg" and msg.source is not None

    @property
    def credits_us(self) -> bool:
        """Incoming money that stayed: the transaction succeeded and is not a bounce."""
        msg = self.in_msg
        return self.is_incoming and self.success and not self.aborted and msg is not None and not msg.bounced


class _Transactions(msgspec.Struct):
    transactions: list[Transaction]


class _TokenRates(msgspec.Struct):
    prices: dict[str, float] = {}


class _Rates(msgspec.Struct):
    rates: dict[str, _TokenRates]


class TonapiClient:
    """`retries` extra attempts on 429/5xx/network errors, with exponential back-off
    from `base_delay` capped at `max_delay` (a `Retry-After` header wins when given)."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        base_url: str,
        api_key: str | None = None,
        *,
        retries: int = 5,
        base_delay: float = 0.5,
        max_delay: float = 10.0,
        timeout: float = 15.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.headers = {"Accept": "application/json"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self.retries = retries
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.sleep = sleep

    async def transactions(self, account: str, after_lt: int, limit: int = 100) -> list[Transaction]:
        """The account's transactions with `lt > after_lt`, oldest first, at most `limit`."""
        body = await self._get(
            f"/v2/blockchain/accounts/{account}/transactions",
            {"after_lt": str(after_lt), "limit": str(limit), "sort_order": "asc"},
        )
        return decode_transactions(body)

    async def ton_price(self, currency: str = "RUB") -> float:
        """The price of 1 TON in `currency`."""
        body = await self._get("/v2/rates", {"tokens": "ton", "currencies": currency.lower()})
        rates = _decode(body, _Rates).rates
        price = rates.get("TON", _TokenRates()).prices.get(currency.upper())
        if price is None or price <= 0:
            raise TonapiError(f"no TON/{currency} price in the answer")
        return price

    async def _get(self, path: str, params: dict[str, str]) -> bytes:
        url = self.base_url + path
        for attempt in range(self.retries + 1):
            try:
                async with self.http.get(
                    url, params=params, headers=self.headers, timeout=self.timeout
                ) as response:
                    body = await response.read()
                    if response.status == 200:
                        return body
                    retryable = response.status == 429 or response.status >= 500
                    reason = f"HTTP {response.status}: {body[:200]!r}"
                    retry_after = _retry_after(response.headers.get("Retry-After"))
            except (aiohttp.ClientError, TimeoutError) as exc:
                retryable, reason, retry_after = True, f"{type(exc).__name__}: {exc}", None
            if not retryable:
                raise TonapiError(f"GET {path}: {reason}")
            if attempt == self.retries:
                raise TonapiUnavailable(f"GET {path}: {reason} after {attempt + 1} attempts")
            delay = self._delay(attempt, retry_after)
            log.warning(
                "tonapi GET %s: %s; retry %d/%d in %.2fs", path, reason, attempt + 1, self.retries, delay
            )
            await self.sleep(delay)
        raise AssertionError("unreachable")

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_delay)
        # Full jitter keeps several clients from retrying in lock-step.
        ceiling = min(self.max_delay, self.base_delay * 2**attempt)
        return ceiling / 2 + random.uniform(0, ceiling / 2)


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def decode_transactions(body: bytes) -> list[Transaction]:
    """A transaction list as tonapi sends it, one odd item never costing the page.

    The strict decoder refuses a whole body for one lone UTF-16 surrogate (`"\\ud800"`,
    a comment of invalid UTF-16) or one invalid UTF-8 byte; then the body is read
    again leniently (Python's JSON, bytes replaced) and item by item. An item of the
    wrong shape that still has a hash and an lt comes back with `problem` set; one
    without them is logged and dropped. Raises `TonapiError` only when the body is not
    a transaction list at all.
    """
    try:
        return msgspec.json.decode(body, type=_Transactions).transactions
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        pass
    try:
        data = json.loads(body.decode("utf-8", errors="replace"))
    except ValueError as exc:
        raise TonapiError(f"unexpected tonapi answer: {exc}") from None
    items = data.get("transactions") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise TonapiError("unexpected tonapi answer: no transactions list")
    out = []
    for item in items:
        tx = _lenient_transaction(item)
        if tx is not None:
            out.append(tx)
    return out


def _lenient_transaction(item: object) -> Transaction | None:
    try:
        return msgspec.convert(item, Transaction)
    except msgspec.ValidationError as exc:
        problem = f"undecodable transaction: {exc}"
    fields = item if isinstance(item, dict) else {}
    tx_hash, lt, utime = fields.get("hash"), fields.get("lt"), fields.get("utime")
    if not isinstance(tx_hash, str) or not isinstance(lt, int) or isinstance(lt, bool):
        log.warning("tonapi: dropped a transaction without a hash or lt: %.200r", item)
        return None
    utime = utime if isinstance(utime, int) and not isinstance(utime, bool) else 0
    return Transaction(hash=tx_hash, lt=lt, utime=utime, success=False, problem=problem)


def _decode(body: bytes, kind: type[_T]) -> _T:
    try:
        return msgspec.json.decode(body, type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise TonapiError(f"unexpected tonapi answer: {exc}") from None
