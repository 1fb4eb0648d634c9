"""Matching the wallet's incoming TON transfers to payments (the `ton_watcher`'s work).

A page of transactions is one Postgres transaction: the rows (unique by hash),
the confirmations with their ledger credits and notifications, and the cursor
(the page's highest lt). A crash anywhere inside rolls all of it back and the
next run fetches the same page again; a crash after the commit finds the cursor
past it. Either way each transfer is credited exactly once, and the hash and
ledger keys make a transfer tonapi delivers twice harmless.

Rules (docs/payments.md): a transfer is credited at the payment's fixed rate
for what actually arrived, so under- and over-payments credit what was paid
and a payment after expiry is still credited; a further transfer with the
comment of a paid payment is credited too (key `ton:{hash}`); an unknown or
missing comment is stored `unmatched` for the admins; failed and bounced ones
are stored `ignored`, outgoing ones are skipped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec
from redis.asyncio import Redis

from orbit import ledger, outbox
from orbit.i18n import Translator
from orbit.money import format_rub
from orbit.payments import queries, service
from orbit.payments.queries import PaymentRow
from orbit.payments.ton import credited_for, normalize_comment
from orbit.payments.tonapi import TonapiClient, Transaction
from orbit.settings import Settings

log = logging.getLogger(__name__)

PAGE_SIZE = 100
# Slack between the chain's clock and ours when telling old history from payments.
HISTORY_MARGIN = timedelta(hours=1)


class PageResult(msgspec.Struct):
    fetched: int = 0
    new: int = 0  # stored now (not seen before)
    matched: int = 0
    unmatched: int = 0
    ignored: int = 0
    credited_kop: int = 0
    last_lt: int = 0

    def add(self, other: PageResult) -> None:
        for field in ("fetched", "new", "matched", "unmatched", "ignored", "credited_kop"):
            setattr(self, field, getattr(self, field) + getattr(other, field))
        self.last_lt = max(self.last_lt, other.last_lt)


def cursor_name(address: str) -> str:
    return f"ton:{address}"


def ton_tx_key(tx_hash: str) -> str:
    """Ledger key of a further transfer to an already paid payment."""
    return f"ton:{tx_hash}"


async def process_transactions(
    conn: asyncpg.Connection,
    translator: Translator,
    settings: Settings,
    cursor: str,
    txs: list[Transaction],
    earliest_payment: datetime | None,
) -> PageResult:
    """Store, match and credit one page of the wallet's transactions and move the
    cursor past it, inside the caller's transaction."""
    if not conn.is_in_transaction():
        raise RuntimeError("process_transactions must run inside the caller's transaction")
    result = PageResult(fetched=len(txs), last_lt=max((tx.lt for tx in txs), default=0))
    incoming = sorted((tx for tx in txs if tx.is_incoming), key=lambda tx: tx.lt)
    comments = {tx.hash: normalize_comment(tx.in_msg.comment if tx.in_msg else None) for tx in incoming}
    wanted = sorted({c for tx in incoming if tx.credits_us and (c := comments[tx.hash])})
    payments = {p.comment: p for p in await queries.lock_ton_by_comments(conn, wanted)} if wanted else {}
    history_before = earliest_payment - HISTORY_MARGIN if earliest_payment else None

    statuses: dict[str, tuple[str, int | None]] = {}
    for tx in incoming:
        payment = payments.get(comments[tx.hash] or "")
        if not tx.credits_us:
            statuses[tx.hash] = ("ignored", None)
        elif payment is not None:
            amount = tx.in_msg.value if tx.in_msg else 0
            status = "matched" if credited_for(payment, amount) > 0 else "ignored"
            statuses[tx.hash] = (status, payment.id)
        elif history_before is None or datetime.fromtimestamp(tx.utime, UTC) < history_before:
            statuses[tx.hash] = ("ignored", None)  # before any TON payment existed
        else:
            statuses[tx.hash] = ("unmatched", None)

    inserted = set()
    if incoming:
        records = await conn.fetch(
            queries.INSERT_TON_TRANSACTIONS,
            [tx.hash for tx in incoming],
            [tx.lt for tx in incoming],
            [tx.in_msg.source.address if tx.in_msg and tx.in_msg.source else None for tx in incoming],
            [tx.in_msg.value if tx.in_msg else 0 for tx in incoming],
            [tx.in_msg.comment if tx.in_msg else None for tx in incoming],
            [statuses[tx.hash][0] for tx in incoming],
            [statuses[tx.hash][1] for tx in incoming],
            [tx.utime for tx in incoming],
        )
        inserted = {r["hash"] for r in records}

    for tx in incoming:
        if tx.hash not in inserted:
            continue  # seen before: already handled in the transaction that stored it
        result.new += 1
        status = statuses[tx.hash][0]
        if status == "unmatched":
            result.unmatched += 1
            log.warning("TON tx %s: %d nanoton with unknown comment %r kept for the admins",
                        tx.hash, tx.in_msg.value if tx.in_msg else 0, comments[tx.hash])
            continue
        if status == "ignored":
            result.ignored += 1
            continue
        key = comments[tx.hash] or ""
        payment = payments[key]
        amount = tx.in_msg.value if tx.in_msg else 0
        credited = credited_for(payment, amount)
        if payment.status in service.CONFIRMABLE:
            confirmation = await service.confirm_payment(
                conn,
                translator,
                payment.id,
                credited_kop=credited,
                external_id=tx.hash,
                note=f"TON {amount} nanoton, tx {tx.hash}",
                settings=settings,
            )
            payments[key] = confirmation.payment
        else:
            payments[key] = await _credit_further_transfer(conn, translator, payment, tx.hash, credited)
        result.matched += 1
        result.credited_kop += credited

    if result.last_lt:
        await queries.advance_cursor(conn, cursor, result.last_lt)
    return result


async def _credit_further_transfer(
    conn: asyncpg.Connection, translator: Translator, payment: PaymentRow, tx_hash: str, credited_kop: int
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
        async with pool.acquire() as conn, conn.transaction():
            page = await process_transactions(conn, translator, settings, name, txs, earliest)
        if page.matched:
            await outbox.wake_sender(redis)
        log.info(
            "TON page after lt %d: %d fetched, %d new, %d matched (%s RUB), %d unmatched, %d ignored"
            " in %.3fs",
            cursor,
            page.fetched,
            page.new,
            page.matched,
            format_rub(page.credited_kop),
            page.unmatched,
            page.ignored,
            time.monotonic() - started,
        )
        total.add(page)
        cursor = page.last_lt
        if len(txs) < page_size or should_stop():
            break
    return total


# --- transfers nobody could match: the admins' side (`orbit ton`) -----------------------------


class UnmatchedTransfer(msgspec.Struct, frozen=True):
    hash: str
    lt: int
    source: str | None
    amount_nanoton: int
    comment: str | None
    utime: datetime


class TransferNotUnmatched(service.PaymentError):
    """No such transfer, or it was already matched or ignored."""


async def list_unmatched(conn: asyncpg.Connection | asyncpg.Pool, limit: int = 50) -> list[UnmatchedTransfer]:
    """The newest incoming transfers whose comment matched no payment."""
    return [UnmatchedTransfer(**dict(r)) for r in await conn.fetch(queries.UNMATCHED_TON_TRANSACTIONS, limit)]


async def credit_unmatched(
    conn: asyncpg.Connection, translator: Translator, tx_hash: str, user_id: int, amount_kop: int
) -> ledger.Entry:
    """An admin found whose unmatched transfer this is: credit `amount_kop` to `user_id`
    (ledger key `ton:{hash}`, so at most once per transfer), mark it `matched`, tell the
    user. Inside the caller's transaction. Raises `TransferNotUnmatched`,
    `ledger.UnknownUser`, `ValueError` for a non-positive amount."""
    if not conn.is_in_transaction():
        raise RuntimeError("credit_unmatched must run inside the caller's transaction")
    row = await conn.fetchrow(queries.LOCK_TON_TRANSACTION, tx_hash)
    if row is None or row["status"] != "unmatched":
        raise TransferNotUnmatched(tx_hash)
    entry = await ledger.credit(
        conn, user_id, amount_kop, "topup", ton_tx_key(tx_hash), note=f"unmatched TON transfer {tx_hash}"
    )
    await conn.execute(queries.MARK_TON_TRANSACTION_MATCHED, tx_hash)
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
