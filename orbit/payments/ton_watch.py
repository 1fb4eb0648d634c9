"""Matching the wallet's incoming TON transfers to payments (the `ton_watcher`'s work).

A page of transactions is one Postgres transaction: the rows (unique by hash),
the confirmations with their ledger credits and notifications, and the cursor
(the page's highest lt). A crash anywhere inside rolls all of it back and the
next run fetches the same page again; a crash after the commit finds the cursor
past it. Either way each transfer is credited exactly once, and the hash and
ledger keys make a transfer tonapi delivers twice (in two pages or in one) harmless.

Outside text (comments, addresses) is cleaned before it is stored or matched
(`orbit.text.clean_text`), and no single transfer can stop a page: one that fails
is stored `rejected` with the reason, logged and counted, and the cursor moves on.

Rules (docs/payments.md): a transfer is credited at the payment's fixed rate
for what actually arrived, so under- and over-payments credit what was paid
and a payment after expiry is still credited (after the window plus
`TON_LATE_GRACE_MINUTES`, at the lower of that rate and today's); a further
transfer with the comment of a paid payment is credited too (key `ton:{hash}`);
an unknown or missing comment is stored `unmatched` for the admins; failed and
bounced ones are stored `ignored`, outgoing ones are skipped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec
from redis.asyncio import Redis

from orbit import ledger, metrics, outbox
from orbit.i18n import Translator
from orbit.money import format_rub
from orbit.payments import queries, service
from orbit.payments.queries import PaymentRow
from orbit.payments.ton import credited_for, kopecks_at_rate, normalize_comment, ton_rate
from orbit.payments.tonapi import TonapiClient, Transaction
from orbit.settings import Settings
from orbit.text import clean_text

log = logging.getLogger(__name__)

PAGE_SIZE = 100
# Slack between the chain's clock and ours when telling old history from payments.
HISTORY_MARGIN = timedelta(hours=1)


# What is kept of outside text (a text comment may span cells; tonapi sends it whole).
COMMENT_LIMIT = 1024
ADDRESS_LIMIT = 128
REASON_LIMIT = 300
_BIGINT_MAX = 2**63 - 1
_UTIME_MAX = 2**37  # year ~6325: beyond what Postgres' to_timestamp takes comfortably

# Errors of the connection or of concurrency, not of one transfer: the page is retried
# whole (the next tick) rather than the transfer blamed for them (`_is_transient`).
_TRANSIENT = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.TransactionRollbackError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.PostgresSystemError,
)


def _is_transient(exc: Exception) -> bool:
    # asyncpg's client-side DataError (a value a column cannot take) is an InterfaceError
    # and a ValueError: that one is the transfer's fault.
    return isinstance(exc, _TRANSIENT) and not isinstance(exc, ValueError)


class PageResult(msgspec.Struct):
    fetched: int = 0
    new: int = 0  # stored now (not seen before)
    matched: int = 0
    unmatched: int = 0
    ignored: int = 0
    rejected: int = 0  # could not be processed: stored `rejected` with the reason
    duplicates: int = 0  # listed more than once in a page (processed once)
    credited_kop: int = 0
    last_lt: int = 0

    def add(self, other: PageResult) -> None:
        for field in (
            "fetched", "new", "matched", "unmatched", "ignored", "rejected", "duplicates", "credited_kop"
        ):
            setattr(self, field, getattr(self, field) + getattr(other, field))
        self.last_lt = max(self.last_lt, other.last_lt)


class Transfer(msgspec.Struct, frozen=True):
    """One incoming transaction as it is stored: outside text cleaned and bounded,
    numbers Postgres cannot hold replaced by a `problem`."""

    hash: str
    lt: int
    source: str | None
    amount: int  # nanotons (0 when the real value did not fit: see `problem`)
    comment: str | None
    key: str | None  # the comment as matched (`normalize_comment`)
    utime: int
    credits_us: bool
    problem: str | None


def cursor_name(address: str) -> str:
    return f"ton:{address}"


def ton_tx_key(tx_hash: str) -> str:
    """Ledger key of a further transfer to an already paid payment."""
    return f"ton:{tx_hash}"


def to_transfer(tx: Transaction) -> Transfer:
    msg = tx.in_msg
    raw_comment = msg.comment if msg else None
    comment = None if raw_comment is None else clean_text(raw_comment, COMMENT_LIMIT, keep_newlines=True)
    source = msg.source.address if msg and msg.source else None
    amount, utime, problem = (msg.value if msg else 0), tx.utime, tx.problem
    if not 0 <= amount <= _BIGINT_MAX:
        problem, amount = f"amount out of range: {amount} nanoton", 0
    if not 0 <= utime <= _UTIME_MAX:
        problem, utime = problem or f"utime out of range: {utime}", 0
    return Transfer(
        hash=clean_text(tx.hash, ADDRESS_LIMIT),
        lt=tx.lt,
        source=None if source is None else clean_text(source, ADDRESS_LIMIT),
        amount=amount,
        comment=comment,
        key=normalize_comment(comment),
        utime=utime,
        credits_us=tx.credits_us,
        problem=None if problem is None else clean_text(problem, REASON_LIMIT),
    )


def transfer_credit(
    payment: PaymentRow, transfer: Transfer, settings: Settings, rate_rub: float | None
) -> int:
    """Kopecks a transfer to `payment` is worth: at the payment's fixed rate; for one that
    arrived after the payment window plus `TON_LATE_GRACE_MINUTES`, the smaller of that
    and its value at `rate_rub` (the rate now), so waiting for TON to fall does not pay."""
    credited = credited_for(payment, transfer.amount)
    if rate_rub is not None and is_late(payment, transfer, settings):
        credited = min(credited, kopecks_at_rate(transfer.amount, rate_rub))
    return credited


def is_late(payment: PaymentRow, transfer: Transfer, settings: Settings) -> bool:
    """The chain's time of the transfer is past the payment window plus the grace."""
    deadline = payment.expires_at + timedelta(minutes=settings.ton_late_grace_minutes)
    return transfer.utime > deadline.timestamp()


async def process_transactions(
    conn: asyncpg.Connection,
    translator: Translator,
    settings: Settings,
    cursor: str | None,
    txs: list[Transaction],
    earliest_payment: datetime | None,
    *,
    rate_rub: float | None = None,
) -> PageResult:
    """Store, match and credit one page of the wallet's transactions and move the
    cursor past it (unless `cursor` is None), inside the caller's transaction.

    A transaction listed twice is processed once. No single transfer can stop the page:
    if the page fails on one (a value, a text, a bug), it is redone transfer by
    transfer, each in a savepoint, and the one that fails is stored `rejected` with
    the error as its reason, logged and counted; the cursor moves on. Errors of the
    connection or of concurrency still fail the page (it is fetched again).
    `rate_rub` is today's TON rate for late transfers (`transfer_credit`); without it
    every transfer is credited at its payment's rate.
    """
    if not conn.is_in_transaction():
        raise RuntimeError("process_transactions must run inside the caller's transaction")
    result = PageResult(fetched=len(txs), last_lt=max((tx.lt for tx in txs), default=0))
    unique: dict[str, Transaction] = {}
    for tx in txs:
        unique.setdefault(tx.hash, tx)
    result.duplicates = len(txs) - len(unique)
    if result.duplicates:
        log.warning("TON page: %d transaction(s) listed more than once, processed once", result.duplicates)
    transfers = [
        to_transfer(tx)
        for tx in sorted(unique.values(), key=lambda tx: tx.lt)
        if tx.is_incoming or tx.problem is not None
    ]
    history_before = earliest_payment - HISTORY_MARGIN if earliest_payment else None
    try:
        async with conn.transaction():  # a savepoint: a bad transfer costs only a redo
            page = await _store_and_credit(conn, translator, settings, transfers, history_before, rate_rub)
        result.add(page)
    except Exception as exc:  # one transfer broke the page: find it, keep the others
        if _is_transient(exc):
            raise
        log.warning("TON page after lt %d failed (%s: %.200s); redoing its %d transfers one by one",
                    min((t.lt for t in transfers), default=0), type(exc).__name__, exc, len(transfers))
        for transfer in transfers:
            result.add(await _one_by_one(conn, translator, settings, transfer, history_before, rate_rub))
    if cursor is not None and result.last_lt:
        await queries.advance_cursor(conn, cursor, result.last_lt)
    return result


async def _one_by_one(
    conn: asyncpg.Connection,
    translator: Translator,
    settings: Settings,
    transfer: Transfer,
    history_before: datetime | None,
    rate_rub: float | None,
) -> PageResult:
    try:
        async with conn.transaction():
            return await _store_and_credit(conn, translator, settings, [transfer], history_before, rate_rub)
    except Exception as exc:
        if _is_transient(exc):
            raise
        reason = clean_text(f"{type(exc).__name__}: {exc}", REASON_LIMIT)
    rejected = msgspec.structs.replace(transfer, problem=reason)
    stored = await _insert(conn, [rejected], {transfer.hash: ("rejected", None, None)})
    log.warning("TON tx %s rejected: %s", transfer.hash, reason)
    return PageResult(new=len(stored), rejected=len(stored))


async def _insert(
    conn: asyncpg.Connection,
    transfers: list[Transfer],
    decisions: dict[str, tuple[str, int | None, int | None]],
) -> set[str]:
    """Store the transfers not seen before; return their hashes."""
    if not transfers:
        return set()
    records = await conn.fetch(
        queries.INSERT_TON_TRANSACTIONS,
        [t.hash for t in transfers],
        [t.lt for t in transfers],
        [t.source for t in transfers],
        [t.amount for t in transfers],
        [t.comment for t in transfers],
        [decisions[t.hash][0] for t in transfers],
        [decisions[t.hash][1] for t in transfers],
        [t.utime for t in transfers],
        [decisions[t.hash][2] for t in transfers],
        [t.problem for t in transfers],
    )
    return {r["hash"] for r in records}


async def _store_and_credit(
    conn: asyncpg.Connection,
    translator: Translator,
    settings: Settings,
    transfers: list[Transfer],
    history_before: datetime | None,
    rate_rub: float | None,
) -> PageResult:
    result = PageResult()
    wanted = sorted({t.key for t in transfers if t.credits_us and t.key and t.problem is None})
    payments = {p.comment: p for p in await queries.lock_ton_by_comments(conn, wanted)} if wanted else {}

    # hash -> (status, payment id, kopecks it credits)
    decisions: dict[str, tuple[str, int | None, int | None]] = {}
    for t in transfers:
        payment = payments.get(t.key or "")
        if t.problem is not None:
            decisions[t.hash] = ("rejected", None, None)
        elif not t.credits_us:
            decisions[t.hash] = ("ignored", None, None)
        elif payment is not None:
            credited = transfer_credit(payment, t, settings, rate_rub)
            status = "matched" if credited > 0 else "ignored"  # less than a kopeck credits nothing
            decisions[t.hash] = (status, payment.id, credited if credited > 0 else None)
        elif history_before is None or datetime.fromtimestamp(t.utime, UTC) < history_before:
            decisions[t.hash] = ("ignored", None, None)  # before any TON payment existed
        else:
            decisions[t.hash] = ("unmatched", None, None)

    inserted = await _insert(conn, transfers, decisions)
    for t in transfers:
        if t.hash not in inserted:
            continue  # seen before: already handled in the transaction that stored it
        inserted.discard(t.hash)  # and never twice here
        result.new += 1
        status, _, credited = decisions[t.hash]
        if status == "rejected":
            result.rejected += 1
            log.warning("TON tx %s rejected: %s", t.hash, t.problem)
            continue
        if status == "unmatched":
            result.unmatched += 1
            log.warning("TON tx %s: %d nanoton with unknown comment %r kept for the admins",
                        t.hash, t.amount, t.key)
            continue
        if status == "ignored":
            result.ignored += 1
            continue
        assert credited is not None
        key = t.key or ""
        payment = payments[key]
        late_rate = rate_rub if rate_rub is not None and is_late(payment, t, settings) else None
        if payment.status in service.CONFIRMABLE:
            confirmation = await service.confirm_payment(
                conn,
                translator,
                payment.id,
                credited_kop=credited,
                external_id=t.hash,
                note=f"TON {t.amount} nanoton, tx {t.hash}",
                settings=settings,
                late_note=_late_rate_note(settings, late_rate),
            )
            payments[key] = confirmation.payment
        else:
            payments[key] = await _credit_further_transfer(
                conn, translator, settings, payment, t.hash, credited
            )
        result.matched += 1
        result.credited_kop += credited
    return result


def _late_rate_note(settings: Settings, rate_rub: float | None) -> tuple[str, dict[str, str]] | None:
    if rate_rub is None:
        return None
    return "ton-late-rate-note", {
        "grace": str(settings.ton_late_grace_minutes),
        "rate": f"{rate_rub:.2f}",
    }


async def _credit_further_transfer(
    conn: asyncpg.Connection,
    translator: Translator,
    settings: Settings,
    payment: PaymentRow,
    tx_hash: str,
    credited_kop: int,
) -> PaymentRow:
    """Another transfer with the comment of a payment already paid: the money arrived, credit it."""
    entry = await ledger.credit(
        conn,
        payment.user_id,
        credited_kop,
        "topup",
        ton_tx_key(tx_hash),
        payment_id=payment.id,
        note=f"further TON transfer {tx_hash}",
    )
    if entry.replayed:
        return payment
    updated = await queries.add_credited(conn, payment.id, credited_kop)
    metrics.count("payments_credited_kopecks_total", credited_kop, method=payment.method)
    language = await queries.user_language(conn, payment.user_id)
    await outbox.enqueue(
        conn,
        payment.user_id,
        "payment_confirmed",
        translator(
            language,
            "payment-extra-transfer",
            credited=format_rub(credited_kop),
            balance=format_rub(entry.balance_after_kop),
        ),
        dedup_key=f"ton-extra:{tx_hash}",
    )
    await service.claim_referral_bonus(conn, translator, updated, settings)
    log.info("payment %d: further TON transfer %s credited %d kop", payment.id, tx_hash, credited_kop)
    return updated


async def poll_wallet(
    pool: asyncpg.Pool,
    redis: Redis,
    client: TonapiClient,
    translator: Translator,
    settings: Settings,
    *,
    page_size: int = PAGE_SIZE,
    should_stop: Callable[[], bool] = lambda: False,
) -> PageResult:
    """Fetch everything new on the wallet since the cursor, page by page, each page
    processed in its own transaction. Stops early (between pages) when `should_stop()`."""
    address = settings.ton_address
    if not address:
        raise service.MethodNotConfigured("ton")
    name = cursor_name(address)
    cursor = int(await queries.get_cursor(pool, name) or 0)
    earliest = await pool.fetchval(queries.EARLIEST_TON_PAYMENT)
    total = PageResult(last_lt=cursor)
    while True:
        txs = [tx for tx in await client.transactions(address, cursor, page_size) if tx.lt > cursor]
        if not txs:
            break
        started = time.monotonic()
        page = await process_page(pool, redis, client, translator, settings, name, txs, earliest)
        log.info("TON page after lt %d: %s in %.3fs", cursor, describe(page), time.monotonic() - started)
        total.add(page)
        cursor = page.last_lt
        if len(txs) < page_size or should_stop():
            break
    return total


async def process_page(
    pool: asyncpg.Pool,
    redis: Redis,
    client: TonapiClient,
    translator: Translator,
    settings: Settings,
    cursor: str | None,
    txs: list[Transaction],
    earliest_payment: datetime | None,
) -> PageResult:
    """`process_transactions` in a transaction of its own, with today's TON rate for late
    transfers (read before the transaction: no HTTP while holding it), then the outbox woken."""
    rate = await ton_rate(redis, client.http, settings) if any(tx.credits_us for tx in txs) else None
    async with pool.acquire() as conn, conn.transaction():
        page = await process_transactions(
            conn, translator, settings, cursor, txs, earliest_payment, rate_rub=rate
        )
    if page.matched:
        await outbox.wake_sender(redis)
    return page


def describe(page: PageResult) -> str:
    return (
        f"{page.fetched} fetched, {page.new} new,"
        f" {page.matched} matched ({format_rub(page.credited_kop)} RUB),"
        f" {page.unmatched} unmatched, {page.ignored} ignored, {page.rejected} rejected,"
        f" {page.duplicates} duplicates"
    )


# --- transfers nobody could match: the admins' side (`orbit ton`) -----------------------------


class UnmatchedTransfer(msgspec.Struct, frozen=True):
    hash: str
    lt: int
    source: str | None
    amount_nanoton: int
    comment: str | None
    utime: datetime
    status: str = "unmatched"  # or `rejected`: it could not be processed (see `reason`)
    reason: str | None = None


class TransferNotUnmatched(service.PaymentError):
    """No such transfer, or it was already matched or ignored."""


async def list_unmatched(conn: asyncpg.Connection | asyncpg.Pool, limit: int = 50) -> list[UnmatchedTransfer]:
    """The newest incoming transfers whose comment matched no payment, and those that could
    not be processed at all (`rejected`, with the reason)."""
    return [UnmatchedTransfer(**dict(r)) for r in await conn.fetch(queries.UNMATCHED_TON_TRANSACTIONS, limit)]


async def credit_unmatched(
    conn: asyncpg.Connection, translator: Translator, tx_hash: str, user_id: int, amount_kop: int
) -> ledger.Entry:
    """An admin found whose unmatched (or rejected) transfer this is: credit `amount_kop` to `user_id`
    (ledger key `ton:{hash}`, so at most once per transfer), mark it `matched`, tell the
    user. Inside the caller's transaction. Raises `TransferNotUnmatched`,
    `ledger.UnknownUser`, `ValueError` for a non-positive amount."""
    if not conn.is_in_transaction():
        raise RuntimeError("credit_unmatched must run inside the caller's transaction")
    row = await conn.fetchrow(queries.LOCK_TON_TRANSACTION, tx_hash)
    if row is None or row["status"] not in ("unmatched", "rejected"):
        raise TransferNotUnmatched(tx_hash)
    entry = await ledger.credit(
        conn, user_id, amount_kop, "topup", ton_tx_key(tx_hash), note=f"unmatched TON transfer {tx_hash}"
    )
    await conn.execute(queries.MARK_TON_TRANSACTION_MATCHED, tx_hash, amount_kop)
    language = await queries.user_language(conn, user_id)
    await outbox.enqueue(
        conn,
        user_id,
        "payment_confirmed",
        translator(
            language,
            "payment-ton-matched-by-support",
            credited=format_rub(amount_kop),
            balance=format_rub(entry.balance_after_kop),
        ),
        dedup_key=f"ton-unmatched:{tx_hash}",
    )
    log.info("unmatched TON tx %s credited to user %d: %d kop", tx_hash, user_id, amount_kop)
    return entry
