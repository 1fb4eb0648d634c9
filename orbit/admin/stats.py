"""The numbers an operator looks at first: users, revenue, money still in flight."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import msgspec

from orbit.admin import queries
from orbit.admin.queries import Revenue, UserCounts
from orbit.payments.service import METHODS

PURCHASES = "purchases"


class Stats(msgspec.Struct, frozen=True, kw_only=True):
    at: datetime
    users: UserCounts
    purchases: Revenue  # plans bought (from the balance, auto-renewal)
    topups: list[Revenue]  # confirmed top-ups, one per payment method, every method listed
    pending_payments: int
    pending_kop: int  # what the pending payments asked for
    unmatched_ton: int  # TON transfers no payment claimed: an admin looks at them

    @property
    def topups_total(self) -> Revenue:
        return Revenue(
            source="all",
            today=sum(r.today for r in self.topups),
            week=sum(r.week for r in self.topups),
            month=sum(r.month for r in self.topups),
            total=sum(r.total for r in self.topups),
            count=sum(r.count for r in self.topups),
        )


def _empty(source: str) -> Revenue:
    return Revenue(source=source, today=0, week=0, month=0, total=0, count=0)


async def collect_stats(pool: asyncpg.Pool, *, now: datetime | None = None) -> Stats:
    """Everything in one read-only snapshot, so the numbers agree with each other.

    `now` pins the moment the windows end at (tests); "today" starts at 00:00 UTC.
    """
    at = now or datetime.now(UTC)
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        users = await queries.user_counts(conn, at)
        revenue = {r.source: r for r in await queries.revenue(conn, at)}
        pending, pending_kop = await queries.pending_payments(conn)
        unmatched = await queries.unmatched_ton(conn)
    methods = [*METHODS, *sorted(set(revenue) - {PURCHASES, *METHODS})]
    return Stats(
        at=at,
        users=users,
        purchases=revenue.get(PURCHASES) or _empty(PURCHASES),
        topups=[revenue.get(m) or _empty(m) for m in methods],
        pending_payments=pending,
        pending_kop=pending_kop,
        unmatched_ton=unmatched,
    )
