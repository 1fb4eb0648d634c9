"""The outbox sender: the bot process's `tick`, woken by `orbit:outbox` and a timer.

Each message goes: global slot (shared Redis limiter, all bot processes) →
claim one row (`FOR UPDATE SKIP LOCKED`, committed as `sending`) → the chat's
own 1-per-interval slot → `sendMessage` → mark `sent`. Several lanes do this
concurrently so the rate holds even when Telegram answers slowly.

Exactly-once delivery is impossible against an API without idempotency keys;
we choose **at most once**. A row is sent again only when we know Telegram did
not deliver it: it answered with an error (429, 5xx, ...) or the connection was
never made. When the outcome is unknown — the request timed out or the process
died between claiming and marking — the row becomes `failed` with the reason,
never resent: a lost notification is visible to admins (status and
`last_error`), a duplicate one (or a duplicate broadcast to 10,000 users) would
not be undone. The window is small: the slot is taken before the claim, so a
row is `sending` only for one request. (A kill -9 mid-send leaves the row
`sending`; the next tick after `STALE_AFTER` fails it.)

The limits are `orbit/outbox/limiter.py`, one budget shared with the bot's replies
(which go first; notifications before broadcasts): a pace of `OUTBOX_RATE_PER_SECOND`, a
window that never lets 31 sends arrive within one of Telegram's seconds whatever
the latency, one message a second per chat, and a shared pause after a 429.

- 429: every sender pauses for `retry_after` (the limiter's pause key), the row is
  deferred without counting an attempt.
- 403: the user blocked the bot: `users.blocked_at` is set and their queued rows
  are `skipped` (rows of already blocked users are skipped at each tick).
- 400: the message itself is wrong (too long, bad HTML, no such chat): `failed` at once.
- Anything else Telegram answers: retried with backoff, `failed` after `MAX_ATTEMPTS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields
from typing import Protocol, TypeVar

import aiohttp
import asyncpg
from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramRetryAfter,
)
from aiogram.types import InlineKeyboardMarkup
from pydantic import ValidationError
from redis.exceptions import RedisError

from orbit.outages import dependency_down
from orbit.outbox import queries
from orbit.outbox.limiter import BROADCAST, NOTIFY, SendLimiter
from orbit.outbox.queries import OutboxRow
from orbit.users.queries import mark_blocked

log = logging.getLogger(__name__)

_T = TypeVar("_T")

LANES = 6  # concurrent sends per process; enough for 30/s at ~200 ms per Telegram call
MAX_ATTEMPTS = 5
BACKOFF_SECONDS = (5.0, 30.0, 120.0, 600.0)  # after attempt 1, 2, 3, 4
# Seconds. A send cut off by the shutdown grace instead ends the same way: `sending`, then failed.
SEND_TIMEOUT = 10
STALE_AFTER = 120.0  # a row `sending` for this long lost its sender
HORIZON = 3.0  # a tick waits for rows due within this instead of returning to the timer
IDLE_PAUSE = 0.2  # rows are due but none could be claimed (another sender holds them)
# Telegram answered, Postgres is away (restarting): keep trying to record the outcome
# this long, well before STALE_AFTER would fail the row as "delivery unknown".
RECORD_PATIENCE = 60.0


class Counters(Protocol):
    def inc(self, name: str, amount: int = 1, **labels: str) -> None: ...


@dataclass
class TickStats:
    sent: int = 0
    retried: int = 0
    deferred: int = 0
    failed: int = 0
    skipped: int = 0

    def total(self) -> int:
        return sum(getattr(self, f.name) for f in fields(self))


def backoff(attempts: int) -> float:
    return BACKOFF_SECONDS[min(attempts, len(BACKOFF_SECONDS)) - 1]


def _never_sent(exc: TelegramNetworkError) -> bool:
    """The connection was never made, so Telegram cannot have the message."""
    return isinstance(exc.__cause__, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)


class OutboxSender:
    def __init__(
        self,
        bot: Bot,
        pool: asyncpg.Pool,
        limiter: SendLimiter,
        stopping: asyncio.Event,
        *,
        lanes: int = LANES,
        metrics: Counters | None = None,
        gate: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.bot = bot
        self.pool = pool
        self.limiter = limiter
        self.stopping = stopping
        self.lanes = lanes
        self.metrics = metrics
        self.gate = gate  # the bot's replies' local line, while Redis was away (send_budget.py)

    async def tick(self) -> None:
        """Deliver everything due now (and what falls due within `HORIZON`), then return."""
        started = time.monotonic()
        stats = TickStats()
        stale = await queries.fail_stale(self.pool, STALE_AFTER)
        if stale:
            log.warning("outbox rows %s were mid-send when their sender stopped: failed, not resent", stale)
            stats.failed += len(stale)
        while not self.stopping.is_set():
            # Also catches users who blocked the bot during this tick (the claim passes them over).
            stats.skipped += await queries.skip_blocked(self.pool)
            due = await queries.next_due(self.pool)
            if due is None or due > HORIZON:
                break
            if due > 0 and await self._sleep(due):
                break
            before = stats.total()
            # Every lane finishes before the tick ends, also when one failed (an outage).
            results = await asyncio.gather(
                *(self._lane(stats) for _ in range(self.lanes)), return_exceptions=True
            )
            for result in results:
                if isinstance(result, BaseException):
                    raise result
            if stats.total() == before and await self._sleep(IDLE_PAUSE):
                break
        if self.metrics is not None:
            for f in fields(stats):
                if getattr(stats, f.name):
                    self.metrics.inc("outbox_messages_total", getattr(stats, f.name), outcome=f.name)
        if stats.total():
            log.info(
                "outbox: sent %d, retried %d, deferred %d, failed %d, skipped %d in %.2fs",
                stats.sent,
                stats.retried,
                stats.deferred,
                stats.failed,
                stats.skipped,
                time.monotonic() - started,
            )

    async def _sleep(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True if the process is stopping."""
        try:
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)
        except TimeoutError:
            return False
        return True

    async def _lane(self, stats: TickStats) -> None:
        while True:
            # Notifications ask the budget before broadcasts, and both after the
            # replies queued by the bot's send budget (orbit/bot/send_budget.py).
            if self.gate is not None:
                await self.gate()
            notification = await queries.notification_due(self.pool)
            ticket = await self.limiter.slot(self.stopping, NOTIFY if notification else BROADCAST)
            if ticket is None:
                return
            try:
                row = await queries.claim(self.pool, broadcasts=not notification)
            except BaseException:
                with contextlib.suppress(RedisError, OSError):
                    await self.limiter.release(ticket)  # else it counts as in flight for 30 s
                raise
            if row is None:
                await self.limiter.release(ticket)
                return
            try:
                wait = await self.limiter.take_chat(row.chat_id)
            except (RedisError, OSError):
                # Redis went away after the claim: not sent, so back to the queue (else the
                # row would sit `sending` until it is failed as "delivery unknown").
                await self._record(row, lambda: queries.defer(self.pool, row.id, 1.0))  # noqa: B023
                raise
            if wait > 0:
                with contextlib.suppress(RedisError, OSError):
                    await self.limiter.release(ticket)
                # Not sent: it must get back to `pending` even across a Postgres restart.
                await self._record(row, lambda: queries.defer(self.pool, row.id, wait))  # noqa: B023
                stats.deferred += 1
                continue
            await self.deliver(row, stats, ticket)

    async def _send(self, row: OutboxRow, ticket: str) -> None:
        markup = InlineKeyboardMarkup.model_validate(row.reply_markup) if row.reply_markup else None
        try:
            await self.bot.send_message(
                row.chat_id, row.text, reply_markup=markup, request_timeout=SEND_TIMEOUT
            )
        except TelegramRetryAfter as exc:
            await self.limiter.pause(exc.retry_after)  # first: before another sender is let through
            raise
        finally:
            # The answer is in: the window's second starts now, before our own bookkeeping.
            try:
                await self.limiter.done(ticket, row.chat_id)
            except (RedisError, OSError) as exc:  # the ticket then counts as in flight until it expires
                log.warning("outbox: limiter not told that row %d was answered: %s", row.id, exc)

    async def deliver(self, row: OutboxRow, stats: TickStats, ticket: str) -> None:
        """Send one claimed row on a granted `ticket` and record the outcome (see the module docstring)."""
        pool = self.pool
        try:
            await self._send(row, ticket)
        except TelegramRetryAfter as exc:
            after, reason = exc.retry_after, f"429: retry after {exc.retry_after}"
            await self._record(row, lambda: queries.defer(pool, row.id, after, reason))
            stats.deferred += 1
            if self.metrics is not None:
                self.metrics.inc("telegram_retry_after_total", outcome="outbox_deferred")
            log.warning("outbox: 429, every sender pauses %ss (row %d)", exc.retry_after, row.id)
        except TelegramForbiddenError as exc:
            reason = f"403: {exc.message}"
            skipped = await self._record(row, lambda: self._blocked(row, reason))
            stats.skipped += skipped
            log.info("outbox: chat %d blocked the bot; %d rows skipped", row.chat_id, skipped)
        except (TelegramBadRequest, TelegramMigrateToChat, ValidationError) as exc:
            reason = f"400: {exc}"[:500]
            await self._record(row, lambda: queries.fail(pool, row.id, reason))
            stats.failed += 1
            log.warning("outbox: row %d (%s) refused for good: %s", row.id, row.kind, exc)
        except TelegramNetworkError as exc:
            if _never_sent(exc):
                await self._retry(row, stats, f"network: {exc.message}")
            else:
                reason = f"delivery unknown, not resent: {exc.message}"[:500]
                await self._record(row, lambda: queries.fail(pool, row.id, reason))
                stats.failed += 1
                log.warning("outbox: row %d outcome unknown (%s): failed, not resent", row.id, exc.message)
        except TelegramAPIError as exc:  # 5xx, 401, anything Telegram answered with an error
            await self._retry(row, stats, f"{type(exc).__name__}: {exc.message}")
        except Exception as exc:
            # A bug or an unexpected failure: the outcome is unknown, so never resend.
            log.exception("outbox: row %d failed unexpectedly", row.id)
            reason = f"unexpected: {exc!r}"[:500]
            await self._record(row, lambda: queries.fail(pool, row.id, reason))
            stats.failed += 1
        else:
            await self._record(row, lambda: queries.mark_sent(pool, row.id))
            stats.sent += 1

    async def _blocked(self, row: OutboxRow, reason: str) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            await mark_blocked(conn, row.chat_id)
            return await queries.skip_chat(conn, row.chat_id, row.id, reason)

    async def _record(self, row: OutboxRow, write: Callable[[], Awaitable[_T]]) -> _T:
        """Write the outcome of a send; while Postgres is away, keep trying for a while.

        Telegram has answered, so the outcome is known: losing it to a restart of
        Postgres would leave the row `sending` until it is failed as "delivery unknown"
        (a message that arrived, marked failed). Each write is a conditional update of
        the row (`status = 'sending'`), so repeating one is harmless."""
        deadline = time.monotonic() + RECORD_PATIENCE
        delay = 0.25
        while True:
            try:
                return await write()
            except Exception as exc:
                if dependency_down(exc) is None or time.monotonic() + delay > deadline:
                    raise
                log.warning("outbox: row %d answered, outcome not recorded yet (%r); retrying", row.id, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _retry(self, row: OutboxRow, stats: TickStats, error: str) -> None:
        pool = self.pool
        if row.attempts >= MAX_ATTEMPTS:
            reason = f"gave up after {row.attempts} attempts: {error}"[:500]
            await self._record(row, lambda: queries.fail(pool, row.id, reason))
            stats.failed += 1
            log.warning("outbox: row %d failed after %d attempts: %s", row.id, row.attempts, error)
            return
        delay = backoff(row.attempts)
        await self._record(row, lambda: queries.retry(pool, row.id, delay, error[:500]))
        stats.retried += 1
        log.info("outbox: row %d attempt %d failed (%s); retry in %.0fs", row.id, row.attempts, error, delay)
