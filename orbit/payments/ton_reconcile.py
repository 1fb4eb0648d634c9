"""TON reconciliation: re-read the wallet's history behind the cursor and credit, exactly
once, whatever the watcher missed.

The cursor promises that everything below it was seen; tonapi's indexer can break the
promise (a transaction listed only after later ones were served). Re-reading a window
before the cursor through the watcher's own page processing fixes that: stored rows are
unique by hash, so a known transfer is skipped and a missed one is stored, matched and
credited once. Running it again changes nothing. It never moves the cursor.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg
import msgspec
from redis.asyncio import Redis

from orbit.i18n import Translator, create_translator
from orbit.money import format_rub
from orbit.payments import queries, service
from orbit.payments.ton_watch import PAGE_SIZE, PageResult, cursor_name, process_page
from orbit.payments.tonapi import TonapiClient
from orbit.settings import Settings

log = logging.getLogger(__name__)

# The highest stored transfer older than the look-back: where the re-reading starts.
START_LT = "SELECT coalesce(max(lt), 0) FROM ton_transactions WHERE utime < $1"


class ReconcileReport(msgspec.Struct, kw_only=True):
    """What one reconciliation read and fixed (the counts of `orbit reconcile`)."""

    method: str = "ton"
    from_lt: int = 0  # exclusive
    to_lt: int = 0  # the cursor when it started (inclusive)
    read: int = 0  # transactions read in that range
    fixed: int = 0  # missed by the watcher: stored now
    matched: int = 0  # of those, credited to a payment
    unmatched: int = 0
    ignored: int = 0
    rejected: int = 0
    credited_kop: int = 0
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return self.fixed > 0


async def reconcile_ton(
    pool: asyncpg.Pool,
    redis: Redis,
    http: aiohttp.ClientSession,
    settings: Settings,
    *,
    translator: Translator | None = None,
    client: TonapiClient | None = None,
    lookback: timedelta | None = None,
    clock: Callable[[], float] = time.time,
    page_size: int = PAGE_SIZE,
) -> ReconcileReport:
    """Re-read the wallet from `lookback` (default `TON_RECONCILE_LOOKBACK_HOURS`) before
    now, by the stored transfers' chain time, up to the cursor, and process what is not
    stored yet. Logs one line; returns the counts. Raises `service.MethodNotConfigured`
    without `TON_ADDRESS`, `TonapiError` when tonapi cannot be read (nothing half-done:
    each page is its own transaction)."""
    address = settings.ton_address
    if not address:
        raise service.MethodNotConfigured("ton")
    started = time.monotonic()
    client = client or TonapiClient(http, settings.tonapi_url, settings.tonapi_key)
    translator = translator or create_translator()
    window = lookback if lookback is not None else timedelta(hours=settings.ton_reconcile_lookback_hours)
    cursor = int(await queries.get_cursor(pool, cursor_name(address)) or 0)
    since = datetime.fromtimestamp(clock(), UTC) - window
    after = min(int(await pool.fetchval(START_LT, since)), cursor)
    report = ReconcileReport(from_lt=after, to_lt=cursor)
    earliest = await pool.fetchval(queries.EARLIEST_TON_PAYMENT)
    total = PageResult()
    while after < cursor:
        fetched = await client.transactions(address, after, page_size)
        in_range = [tx for tx in fetched if after < tx.lt <= cursor]
        if in_range:
            total.add(
                await process_page(pool, redis, client, translator, settings, None, in_range, earliest)
            )
        if len(fetched) < page_size or len(in_range) < len(fetched) or not fetched:
            break
        after = max(tx.lt for tx in fetched)
    report.read = total.fetched
    report.fixed = total.new
    report.matched = total.matched
    report.unmatched = total.unmatched
    report.ignored = total.ignored
    report.rejected = total.rejected
    report.credited_kop = total.credited_kop
    report.seconds = round(time.monotonic() - started, 3)
    log.log(
        logging.WARNING if report.changed else logging.INFO,
        "TON reconcile lt %d..%d: %d read, %d missed and stored now (%d matched, %s RUB credited,"
        " %d unmatched, %d ignored, %d rejected) in %.3fs",
        report.from_lt,
        report.to_lt,
        report.read,
        report.fixed,
        report.matched,
        format_rub(report.credited_kop),
        report.unmatched,
        report.ignored,
        report.rejected,
        report.seconds,
    )
    return report
