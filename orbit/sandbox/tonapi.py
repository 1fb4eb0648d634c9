"""A local tonapi.io v2 emulator: account transactions, TON rates, Bearer auth, faults.

Shapes follow tonapi's OpenAPI spec (``Transactions``/``Transaction``/``Message``,
``getRates``); see ``docs/tonapi-emulator.md`` for what is emulated and what is not.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import itertools
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from orbit.sandbox import standalone

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

NANOTON = 1_000_000_000
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
FIRST_LT = 47_000_000_000_001
LT_STEP = 1_000_000
DEFAULT_SENDER = "0:" + "5e" * 32
DEFAULT_RATES: dict[str, float] = {"RUB": 220.5, "USD": 2.45, "EUR": 2.25}
RATE_LIMIT_ERROR = "rate limit: free tier 1 rps"
SERVER_ERROR = "internal error"
UNAUTHORIZED_ERROR = "invalid token"
CONTROL_PREFIX = "/_emulator"

TEXT_COMMENT_OP = "0x00000000"
INCOMING_TOTAL_FEES = 123_600
OUTGOING_TOTAL_FEES = 2_154_000
OUTGOING_FWD_FEE = 266_669
BOUNCE_FWD_FEE = 266_669
FAILED_EXIT_CODE = 9


class AccountAddress(msgspec.Struct, kw_only=True, omit_defaults=True):
    address: str
    is_scam: bool
    is_wallet: bool
    name: str | None = None
    icon: str | None = None


class TextComment(msgspec.Struct):
    text: str


class Message(msgspec.Struct, kw_only=True, omit_defaults=True):
    msg_type: str
    created_lt: int
    ihr_disabled: bool
    bounce: bool
    bounced: bool
    value: int
    fwd_fee: int
    ihr_fee: int
    import_fee: int
    created_at: int
    hash: str
    destination: AccountAddress | None = None
    source: AccountAddress | None = None
    op_code: str | None = None
    raw_body: str | None = None
    decoded_op_name: str | None = None
    decoded_body: TextComment | None = None


class ComputePhase(msgspec.Struct, kw_only=True, omit_defaults=True):
    skipped: bool
    skip_reason: str | None = None
    success: bool | None = None
    gas_fees: int | None = None
    gas_used: int | None = None
    vm_steps: int | None = None
    exit_code: int | None = None
    exit_code_description: str | None = None


class StoragePhase(msgspec.Struct, kw_only=True):
    fees_collected: int
    status_change: str


class CreditPhase(msgspec.Struct, kw_only=True):
    fees_collected: int
    credit: int


class ActionPhase(msgspec.Struct, kw_only=True):
    success: bool
    result_code: int
    total_actions: int
    skipped_actions: int
    fwd_fees: int
    total_fees: int


class Transaction(msgspec.Struct, kw_only=True, omit_defaults=True):
    hash: str
    lt: int
    account: AccountAddress
    success: bool
    utime: int
    orig_status: str
    end_status: str
    total_fees: int
    end_balance: int
    transaction_type: str
    state_update_old: str
    state_update_new: str
    out_msgs: list[Message]
    block: str
    aborted: bool
    destroyed: bool
    raw: str
    in_msg: Message | None = None
    prev_trans_hash: str | None = None
    prev_trans_lt: int | None = None
    compute_phase: ComputePhase | None = None
    storage_phase: StoragePhase | None = None
    credit_phase: CreditPhase | None = None
    action_phase: ActionPhase | None = None
    bounce_phase: str | None = None


class Transactions(msgspec.Struct):
    transactions: list[Transaction]


class TokenRates(msgspec.Struct):
    prices: dict[str, float]
    diff_24h: dict[str, str]
    diff_7d: dict[str, str]
    diff_30d: dict[str, str]


class Rates(msgspec.Struct):
    rates: dict[str, TokenRates]


class RecordedRequest(msgspec.Struct, kw_only=True):
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    status: int
    at: float


class _ChainState(msgspec.Struct, kw_only=True):
    next_lt: int
    txs: dict[str, list[Transaction]]
    balances: dict[str, int]
    rates: dict[str, float]
    hidden: list[str]


class _Fault(msgspec.Struct, frozen=True):
    status: int
    error: str


class SendTon(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    to: str
    amount: int
    comment: str | None = None
    sender: str = DEFAULT_SENDER
    bounce: bool = True
    bounced: bool = False
    failed: bool = False
    utime: int | None = None
    hidden: bool = False


class SendOutgoing(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    source: str
    to: str
    amount: int
    comment: str | None = None
    failed: bool = False
    utime: int | None = None


class FailNext(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    count: int = 1
    status: int = 429
    error: str | None = None


class SetDelay(msgspec.Struct, forbid_unknown_fields=True):
    seconds: float


class Reveal(msgspec.Struct, forbid_unknown_fields=True):
    hash: str


class SetRate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    currency: str = "RUB"
    price: float


# --- addresses ---------------------------------------------------------------------------


def _crc16(data: bytes) -> int:
    """CRC-16/XMODEM, the checksum of TON user-friendly addresses."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def normalize_address(address: str) -> str:
    """Return the raw ``<workchain>:<64 hex>`` form of a raw or user-friendly address.

    Raises ``ValueError`` for anything else (tonapi answers such ids with HTTP 400).
    """
    text = address.strip()
    if ":" in text:
        workchain, _, account = text.partition(":")
        try:
            wc = int(workchain)
            account_bytes = bytes.fromhex(account)
        except ValueError:
            raise ValueError(f"can't parse address {address!r}") from None
        if len(account_bytes) != 32:
            raise ValueError(f"can't parse address {address!r}")
        return f"{wc}:{account_bytes.hex()}"
    if len(text) != 48:
        raise ValueError(f"can't parse address {address!r}")
    try:
        data = base64.urlsafe_b64decode(text.replace("+", "-").replace("/", "_"))
    except (binascii.Error, ValueError):
        raise ValueError(f"can't parse address {address!r}") from None
    if len(data) != 36 or _crc16(data[:34]) != int.from_bytes(data[34:], "big"):
        raise ValueError(f"bad checksum in address {address!r}")
    if data[0] & 0x3F not in (0x11, 0x51):
        raise ValueError(f"bad tag in address {address!r}")
    wc = int.from_bytes(data[1:2], "big", signed=True)
    return f"{wc}:{data[2:34].hex()}"


def friendly_address(
    address: str, *, bounceable: bool = True, testnet: bool = False, url_safe: bool = True
) -> str:
    """Encode any address form as a user-friendly base64 string (EQ…/UQ…/kQ…/0Q…)."""
    workchain, _, account = normalize_address(address).partition(":")
    tag = 0x11 if bounceable else 0x51
    if testnet:
        tag |= 0x80
    body = bytes([tag]) + int(workchain).to_bytes(1, "big", signed=True) + bytes.fromhex(account)
    data = body + _crc16(body).to_bytes(2, "big")
    encode = base64.urlsafe_b64encode if url_safe else base64.b64encode
    return encode(data).decode()


def _comment_body_hex(comment: str) -> str:
    return "00000000" + comment.encode().hex()


def _wallet(address: str) -> AccountAddress:
    return AccountAddress(address=address, is_scam=False, is_wallet=True)


# --- the emulator ---------------------------------------------------------------------------


class TonapiEmulator:
    """In-memory tonapi v2: ``/v2/blockchain/accounts/{id}/transactions`` and ``/v2/rates``."""

    def __init__(self, api_key: str | None = None, *, clock: Callable[[], float] = time.time) -> None:
        self.api_key = api_key
        self._clock = clock  # transfer times (utime); the sandbox moves it with its one clock
        self.requests: list[RecordedRequest] = []
        self._lt = itertools.count(FIRST_LT, LT_STEP)
        self._seq = itertools.count(1)
        self._txs: dict[str, list[Transaction]] = {}
        self._by_hash: dict[str, Transaction] = {}
        self._balances: dict[str, int] = {}
        self._rates: dict[str, float] = dict(DEFAULT_RATES)
        self._faults: deque[_Fault] = deque()
        self._delay = 0.0
        # Raw bodies served, one per request, instead of an account's list (fuzzing the decoder).
        self._scripted: dict[str, deque[bytes]] = {}
        # Transactions on the chain that the list endpoint does not show yet (indexer lag).
        self._hidden: set[str] = set()
        self._runner: web.AppRunner | None = None
        self.base_url: str | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get(
            "/v2/blockchain/accounts/{account_id}/transactions", self._get_account_transactions
        )
        app.router.add_get("/v2/blockchain/transactions/{transaction_id}", self._get_transaction)
        app.router.add_get("/v2/rates", self._get_rates)
        control = CONTROL_PREFIX
        app.router.add_post(f"{control}/send_ton", self._ctl_send_ton)
        app.router.add_post(f"{control}/send_outgoing", self._ctl_send_outgoing)
        app.router.add_post(f"{control}/reveal", self._ctl_reveal)
        app.router.add_post(f"{control}/accounts/{{account_id}}/script_page", self._ctl_script_page)
        app.router.add_post(f"{control}/rates", self._ctl_set_rate)
        app.router.add_post(f"{control}/fail", self._ctl_fail)
        app.router.add_post(f"{control}/delay", self._ctl_delay)
        app.router.add_post(f"{control}/reset", self._ctl_reset)
        app.router.add_get(f"{control}/requests", self._ctl_requests)
        app.router.add_get(f"{control}/accounts/{{account_id}}/transactions", self._ctl_txs)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner = web.AppRunner(self.make_app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_host, bound_port = self._runner.addresses[0][:2]
        self.base_url = f"http://{bound_host}:{bound_port}"
        logger.info("tonapi emulator listening on %s", self.base_url)
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            logger.info("tonapi emulator on %s stopped", self.base_url)

    def reset(self) -> None:
        """Forget transactions, balances, faults, delay, rates and the request log.

        The lt counter keeps growing, so a cursor kept from before a reset never
        hides transactions made after it.
        """
        self.requests.clear()
        self._txs.clear()
        self._by_hash.clear()
        self._balances.clear()
        self._rates = dict(DEFAULT_RATES)
        self._faults.clear()
        self._delay = 0.0
        self._scripted.clear()
        self._hidden.clear()

    def dump_state(self) -> bytes:
        """The chain as bytes (transactions, balances, rates, the lt counter) for the sandbox
        to keep across restarts: the watcher's cursor in Postgres stays below new transfers."""
        next_lt = next(self._lt)
        self._lt = itertools.count(next_lt, LT_STEP)
        return msgspec.json.encode(
            _ChainState(
                next_lt=next_lt,
                txs=self._txs,
                balances=self._balances,
                rates=self._rates,
                hidden=sorted(self._hidden),
            )
        )

    def load_state(self, data: bytes) -> None:
        state = msgspec.json.decode(data, type=_ChainState)
        self._lt = itertools.count(max(state.next_lt, FIRST_LT), LT_STEP)
        self._txs = state.txs
        self._by_hash = {tx.hash: tx for history in state.txs.values() for tx in history}
        self._balances = state.balances
        self._rates = state.rates
        self._hidden = set(state.hidden)

    # -- controls ---------------------------------------------------------------------------

    def send_ton(
        self,
        to_address: str,
        amount_nanoton: int,
        comment: str | None = None,
        sender: str = DEFAULT_SENDER,
        *,
        bounce: bool = True,
        bounced: bool = False,
        failed: bool = False,
        utime: int | None = None,
        hidden: bool = False,
    ) -> str:
        """Append an incoming transfer on ``to_address``'s account; return the tx hash.

        ``hidden`` keeps it out of the account's transaction list until ``reveal(hash)``:
        tonapi's indexer lag, where a transaction shows up after later ones were served.

        ``bounced`` marks the incoming message as a bounce of something the account sent.
        ``failed`` makes the transaction unsuccessful and aborted; if the message was
        bounceable the value goes back to ``sender`` in an out message with ``bounced``.
        """
        if amount_nanoton < 0:
            raise ValueError("amount_nanoton must be >= 0")
        account = normalize_address(to_address)
        source = normalize_address(sender)
        lt = next(self._lt)
        now = int(self._clock()) if utime is None else utime
        bounce = bounce and not bounced
        in_msg = self._message(
            "int_msg",
            lt=lt - 1,
            source=source,
            destination=account,
            value=amount_nanoton,
            comment=comment,
            bounce=bounce,
            bounced=bounced,
            created_at=now,
            fwd_fee=OUTGOING_FWD_FEE,
        )
        out_msgs: list[Message] = []
        credited = 0 if failed and bounce else amount_nanoton
        bounce_phase = None
        if failed and bounce:
            refund = max(amount_nanoton - INCOMING_TOTAL_FEES - BOUNCE_FWD_FEE, 0)
            out_msgs.append(
                self._message(
                    "int_msg",
                    lt=lt + 1,
                    source=account,
                    destination=source,
                    value=refund,
                    comment=None,
                    bounce=False,
                    bounced=True,
                    created_at=now,
                    fwd_fee=BOUNCE_FWD_FEE,
                    op_code="0xffffffff",
                )
            )
            bounce_phase = "TrPhaseBounceOk"
        compute = (
            ComputePhase(
                skipped=False,
                success=False,
                gas_fees=INCOMING_TOTAL_FEES,
                gas_used=INCOMING_TOTAL_FEES // 400,
                vm_steps=12,
                exit_code=FAILED_EXIT_CODE,
                exit_code_description="Cell underflow",
            )
            if failed
            else ComputePhase(
                skipped=False,
                success=True,
                gas_fees=INCOMING_TOTAL_FEES,
                gas_used=INCOMING_TOTAL_FEES // 400,
                vm_steps=61,
                exit_code=0,
                exit_code_description="Ok",
            )
        )
        tx = self._append(
            account,
            lt=lt,
            utime=now,
            in_msg=in_msg,
            out_msgs=out_msgs,
            balance_delta=credited - INCOMING_TOTAL_FEES,
            total_fees=INCOMING_TOTAL_FEES,
            success=not failed,
            compute_phase=compute,
            credit_phase=CreditPhase(fees_collected=0, credit=amount_nanoton),
            action_phase=None,
            bounce_phase=bounce_phase,
        )
        if hidden:
            self._hidden.add(tx.hash)
        logger.info(
            "tonapi emulator: %s nanoton to %s (comment=%r bounced=%s failed=%s) tx %s",
            amount_nanoton,
            account,
            comment,
            bounced,
            failed,
            tx.hash,
        )
        return tx.hash

    def send_outgoing(
        self,
        from_address: str,
        to_address: str,
        amount_nanoton: int,
        comment: str | None = None,
        *,
        failed: bool = False,
        utime: int | None = None,
    ) -> str:
        """Append an outgoing wallet transfer (external in, one internal out); return its hash."""
        if amount_nanoton < 0:
            raise ValueError("amount_nanoton must be >= 0")
        account = normalize_address(from_address)
        destination = normalize_address(to_address)
        lt = next(self._lt)
        now = int(self._clock()) if utime is None else utime
        in_msg = self._message(
            "ext_in_msg",
            lt=0,
            source=None,
            destination=account,
            value=0,
            comment=None,
            bounce=False,
            bounced=False,
            created_at=0,
            fwd_fee=0,
            op_code="0x7369676e",
        )
        out_msgs = (
            []
            if failed
            else [
                self._message(
                    "int_msg",
                    lt=lt + 1,
                    source=account,
                    destination=destination,
                    value=amount_nanoton,
                    comment=comment,
                    bounce=True,
                    bounced=False,
                    created_at=now,
                    fwd_fee=OUTGOING_FWD_FEE,
                )
            ]
        )
        tx = self._append(
            account,
            lt=lt,
            utime=now,
            in_msg=in_msg,
            out_msgs=out_msgs,
            balance_delta=-OUTGOING_TOTAL_FEES - (0 if failed else amount_nanoton),
            total_fees=OUTGOING_TOTAL_FEES,
            success=not failed,
            compute_phase=ComputePhase(
                skipped=False,
                success=not failed,
                gas_fees=OUTGOING_TOTAL_FEES - OUTGOING_FWD_FEE,
                gas_used=4_939,
                vm_steps=102,
                exit_code=33 if failed else 0,
                exit_code_description=None if failed else "Ok",
            ),
            credit_phase=None,
            action_phase=None
            if failed
            else ActionPhase(
                success=True,
                result_code=0,
                total_actions=1,
                skipped_actions=0,
                fwd_fees=OUTGOING_FWD_FEE,
                total_fees=OUTGOING_FWD_FEE // 3,
            ),
            bounce_phase=None,
        )
        logger.info(
            "tonapi emulator: %s nanoton from %s to %s tx %s",
            amount_nanoton,
            account,
            destination,
            tx.hash,
        )
        return tx.hash

    def reveal(self, tx_hash: str) -> None:
        """Show a transaction sent with ``hidden=True`` in its account's list from now on."""
        self._hidden.discard(tx_hash)

    def script_page(self, account: str, body: bytes) -> None:
        """Serve ``body`` as-is (status 200, JSON content type) to the next transaction-list
        request for ``account``, whatever its query; queued bodies are served in order.
        For feeding the client pages the builders cannot make: lone ``\\ud800`` escapes,
        duplicates, reordering, odd values."""
        self._scripted.setdefault(normalize_address(account), deque()).append(body)

    def set_rate(self, price: float, currency: str = "RUB") -> None:
        """Set the price of 1 TON in ``currency`` (as returned by ``/v2/rates``)."""
        self._rates[currency.upper()] = float(price)

    def fail_next(self, count: int = 1, status: int = 429, error: str | None = None) -> None:
        """Make the next ``count`` API requests answer ``status`` with ``{"error": ...}``."""
        if error is None:
            error = RATE_LIMIT_ERROR if status == 429 else SERVER_ERROR
        self._faults.extend(_Fault(status, error) for _ in range(count))

    def set_delay(self, seconds: float) -> None:
        """Slow mode: every API request waits ``seconds`` before being answered (0 = off)."""
        self._delay = max(float(seconds), 0.0)

    def transactions(self, account: str) -> list[dict[str, Any]]:
        """All transactions of an account as JSON-ready dicts, oldest first."""
        return msgspec.to_builtins(self._txs.get(normalize_address(account), []))

    def balance(self, account: str) -> int:
        return self._balances.get(normalize_address(account), 0)

    # -- building transactions --------------------------------------------------------------

    def _hash(self, *parts: object) -> str:
        seed = ":".join(str(p) for p in (*parts, next(self._seq), os.urandom(8).hex()))
        return hashlib.sha256(seed.encode()).hexdigest()

    def _message(
        self,
        msg_type: str,
        *,
        lt: int,
        source: str | None,
        destination: str,
        value: int,
        comment: str | None,
        bounce: bool,
        bounced: bool,
        created_at: int,
        fwd_fee: int,
        op_code: str | None = None,
    ) -> Message:
        message = Message(
            msg_type=msg_type,
            created_lt=lt,
            ihr_disabled=True,
            bounce=bounce,
            bounced=bounced,
            value=value,
            fwd_fee=fwd_fee,
            ihr_fee=0,
            import_fee=0,
            created_at=created_at,
            hash=self._hash("msg", lt, destination),
            destination=_wallet(destination),
            source=_wallet(source) if source is not None else None,
            op_code=op_code,
        )
        if comment is not None:
            message.op_code = TEXT_COMMENT_OP
            message.raw_body = _comment_body_hex(comment)
            message.decoded_op_name = "text_comment"
            message.decoded_body = TextComment(text=comment)
        return message

    def _append(
        self,
        account: str,
        *,
        lt: int,
        utime: int,
        in_msg: Message,
        out_msgs: list[Message],
        balance_delta: int,
        total_fees: int,
        success: bool,
        compute_phase: ComputePhase,
        credit_phase: CreditPhase | None,
        action_phase: ActionPhase | None,
        bounce_phase: str | None,
    ) -> Transaction:
        history = self._txs.setdefault(account, [])
        prev = history[-1] if history else None
        balance = max(self._balances.get(account, 0) + balance_delta, 0)
        self._balances[account] = balance
        tx_hash = self._hash("tx", account, lt)
        tx = Transaction(
            hash=tx_hash,
            lt=lt,
            account=_wallet(account),
            success=success,
            utime=utime,
            orig_status="active",
            end_status="active",
            total_fees=total_fees,
            end_balance=balance,
            transaction_type="TransOrd",
            state_update_old=prev.state_update_new if prev else self._hash("state", account),
            state_update_new=self._hash("state", account, lt),
            out_msgs=out_msgs,
            block=f"(0,8000000000000000,{40_000_000 + (lt - FIRST_LT) // LT_STEP})",
            aborted=not success,
            destroyed=False,
            raw="b5ee9c72" + self._hash("boc", tx_hash),
            in_msg=in_msg,
            prev_trans_hash=prev.hash if prev else None,
            prev_trans_lt=prev.lt if prev else None,
            compute_phase=compute_phase,
            storage_phase=StoragePhase(fees_collected=1, status_change="acst_unchanged"),
            credit_phase=credit_phase,
            action_phase=action_phase,
            bounce_phase=bounce_phase,
        )
        history.append(tx)
        self._by_hash[tx_hash] = tx
        return tx

    # -- HTTP: middleware -------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith(CONTROL_PREFIX):
            return await handler(request)
        started = time.monotonic()
        try:
            response = await self._serve_api(request, handler)
        except web.HTTPException as exc:
            response = _error(exc.status, exc.reason)
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                headers=dict(request.headers),
                status=response.status,
                at=time.time(),
            )
        )
        logger.debug(
            "tonapi emulator: %s %s -> %s in %.3fs",
            request.method,
            request.path_qs,
            response.status,
            time.monotonic() - started,
        )
        return response

    async def _serve_api(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self._delay:
            await asyncio.sleep(self._delay)
        if self._faults:
            fault = self._faults.popleft()
            return _error(fault.status, fault.error)
        if self.api_key is not None:
            expected = f"Bearer {self.api_key}"
            if request.headers.get("Authorization", "") != expected:
                return _error(401, UNAUTHORIZED_ERROR)
        return await handler(request)

    # -- HTTP: API --------------------------------------------------------------------------

    async def _get_account_transactions(self, request: web.Request) -> web.Response:
        try:
            account = normalize_address(request.match_info["account_id"])
        except ValueError as exc:
            return _error(400, str(exc))
        query = request.query
        try:
            after_lt = _int_param(query, "after_lt", 0, minimum=0)
            before_lt = _int_param(query, "before_lt", 0, minimum=0)
            limit = _int_param(query, "limit", DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
        except ValueError as exc:
            return _error(400, str(exc))
        scripted = self._scripted.get(account)
        if scripted:
            return web.Response(body=scripted.popleft(), content_type="application/json")
        sort_order = query.get("sort_order", "desc")
        if sort_order not in ("asc", "desc"):
            return _error(400, f'query: "sort_order": invalid value {sort_order!r}')
        upper = before_lt or (1 << 62)
        selected = [
            tx
            for tx in self._txs.get(account, [])
            if after_lt < tx.lt < upper and tx.hash not in self._hidden
        ]
        selected.sort(key=lambda tx: tx.lt, reverse=sort_order == "desc")
        return _json(Transactions(transactions=selected[:limit]))

    async def _get_transaction(self, request: web.Request) -> web.Response:
        tx = self._by_hash.get(request.match_info["transaction_id"].lower())
        if tx is None:
            return _error(404, "entity not found")
        return _json(tx)

    async def _get_rates(self, request: web.Request) -> web.Response:
        tokens = _csv(request.query.get("tokens", ""))
        currencies = _csv(request.query.get("currencies", ""))
        if not tokens:
            return _error(400, 'query: "tokens": field required')
        if not currencies:
            return _error(400, 'query: "currencies": field required')
        prices = dict(self._rates, TON=1.0)
        rates: dict[str, TokenRates] = {}
        for token in tokens:
            if token.upper() != "TON":
                continue
            known = [c.upper() for c in currencies if c.upper() in prices]
            rates["TON"] = TokenRates(
                prices={c: prices[c] for c in known},
                diff_24h={c: "+0.00%" for c in known},
                diff_7d={c: "+0.00%" for c in known},
                diff_30d={c: "+0.00%" for c in known},
            )
        return _json(Rates(rates=rates))

    # -- HTTP: controls ---------------------------------------------------------------------

    async def _ctl_send_ton(self, request: web.Request) -> web.Response:
        cmd = await _decode(request, SendTon)
        try:
            tx_hash = self.send_ton(
                cmd.to,
                cmd.amount,
                cmd.comment,
                cmd.sender,
                bounce=cmd.bounce,
                bounced=cmd.bounced,
                failed=cmd.failed,
                utime=cmd.utime,
                hidden=cmd.hidden,
            )
        except ValueError as exc:
            return _error(400, str(exc))
        return _json({"hash": tx_hash, "lt": self._by_hash[tx_hash].lt})

    async def _ctl_reveal(self, request: web.Request) -> web.Response:
        cmd = await _decode(request, Reveal)
        self.reveal(cmd.hash)
        return _json({"ok": True})

    async def _ctl_script_page(self, request: web.Request) -> web.Response:
        try:
            account = normalize_address(request.match_info["account_id"])
        except ValueError as exc:
            return _error(400, str(exc))
        self.script_page(account, await request.read())
        return _json({"ok": True})

    async def _ctl_send_outgoing(self, request: web.Request) -> web.Response:
        cmd = await _decode(request, SendOutgoing)
        try:
            tx_hash = self.send_outgoing(
                cmd.source, cmd.to, cmd.amount, cmd.comment, failed=cmd.failed, utime=cmd.utime
            )
        except ValueError as exc:
            return _error(400, str(exc))
        return _json({"hash": tx_hash, "lt": self._by_hash[tx_hash].lt})

    async def _ctl_set_rate(self, request: web.Request) -> web.Response:
        cmd = await _decode(request, SetRate)
        self.set_rate(cmd.price, cmd.currency)
        return _json({"ok": True})

    async def _ctl_fail(self, request: web.Request) -> web.Response:
        cmd = await _decode(request, FailNext)
        self.fail_next(cmd.count, cmd.status, cmd.error)
        return _json({"ok": True, "pending": len(self._faults)})

    async def _ctl_delay(self, request: web.Request) -> web.Response:
        cmd = await _decode(request, SetDelay)
        self.set_delay(cmd.seconds)
        return _json({"ok": True})

    async def _ctl_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return _json({"ok": True})

    async def _ctl_requests(self, request: web.Request) -> web.Response:
        return _json(self.requests)

    async def _ctl_txs(self, request: web.Request) -> web.Response:
        try:
            account = normalize_address(request.match_info["account_id"])
        except ValueError as exc:
            return _error(400, str(exc))
        return _json({"transactions": self._txs.get(account, []), "balance": self._balances.get(account, 0)})


# --- HTTP helpers ---------------------------------------------------------------------------


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(payload), status=status, content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


def _csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _int_param(query: Any, name: str, default: int, *, minimum: int, maximum: int | None = None) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f'query: "{name}": invalid integer {raw!r}') from None
    if value < minimum:
        raise ValueError(f'query: "{name}": value {value} less than minimum {minimum}')
    if maximum is not None and value > maximum:
        raise ValueError(f'query: "{name}": value {value} greater than maximum {maximum}')
    return value


async def _decode(request: web.Request, kind: type[_T]) -> _T:
    body = await request.read()
    try:
        return msgspec.json.decode(body or b"{}", type=kind)
    except msgspec.ValidationError as exc:
        raise web.HTTPBadRequest(
            text=msgspec.json.encode({"error": str(exc)}).decode(),
            content_type="application/json",
        ) from None
    except msgspec.DecodeError as exc:
        raise web.HTTPBadRequest(
            text=msgspec.json.encode({"error": f"bad JSON: {exc}"}).decode(),
            content_type="application/json",
        ) from None


# --- running alone --------------------------------------------------------------------------


async def serve(host: str, port: int, api_key: str | None, rub: float) -> None:
    emulator = TonapiEmulator(api_key=api_key)
    emulator.set_rate(rub, "RUB")
    await standalone.run_until_signal(host, [(emulator, port)])


def main(argv: list[str] | None = None) -> None:
    parser = standalone.arguments("Local tonapi.io v2 emulator", port=8091)
    parser.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY'")
    parser.add_argument("--rub", type=float, default=DEFAULT_RATES["RUB"], help="TON/RUB price")
    args = standalone.parse(parser, argv)
    asyncio.run(serve(args.host, args.port, args.api_key, args.rub))


if __name__ == "__main__":
    main()
