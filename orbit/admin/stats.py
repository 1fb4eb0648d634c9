"""The numbers an operator looks at first: users and their growth, trials and how many
become paying, subscriptions by plan and churn, revenue, money still in flight, and
each instance's configs and load as the balancer scores it."""

from __future__ import annotations

from datetime import datetime

import asyncpg
import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from orbit import clock
from orbit.admin import queries
from orbit.admin.panels import NodeScore, read_scores
from orbit.admin.queries import Growth, PlanCount, Revenue, UserCounts
from orbit.marzban import instances
from orbit.marzban.placement import read_health
from orbit.payments.service import METHODS

PURCHASES = "purchases"


class InstanceLoad(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    is_active: bool
    configs: int  # live configs
    status: str | None  # the balancer's health: up, down, disabled; None: never seen
    fresh: bool  # that health is recent (a live balancer)
    users_active: int  # as the panel reports them
    nodes_usable: int
    nodes_total: int
    scores: list[NodeScore]  # lowest first; empty when the balancer has none


class Stats(msgspec.Struct, frozen=True, kw_only=True):
    at: datetime
    users: UserCounts
    growth: Growth
    active_by_plan: list[PlanCount]
    purchases: Revenue  # plans bought (from the balance, auto-renewal)
    topups: list[Revenue]  # confirmed top-ups, one per payment method, every method listed
    pending_payments: int
    pending_kop: int  # what the pending payments asked for
    unmatched_ton: int  # TON transfers no payment claimed: an admin looks at them
    instances: list[InstanceLoad]

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


async def instance_loads(pool: asyncpg.Pool | asyncpg.Connection, redis: Redis | None) -> list[InstanceLoad]:
    """Each instance with its configs and the balancer's view (none when Redis is away)."""
    registry = await instances.list_instances(pool)
    counts = await instances.live_config_counts(pool)
    health: dict = dict.fromkeys(i.id for i in registry)
    scores: dict[str, list[NodeScore]] = {}
    if redis is not None:
        try:
            health = await read_health(redis, [i.id for i in registry])
            scores = await read_scores(redis)
        except (RedisError, OSError):  # the database's numbers are still worth showing
            pass
    loads = []
    for i in registry:
        h = health.get(i.id)
        loads.append(
            InstanceLoad(
                id=i.id,
                is_active=i.is_active,
                configs=counts.get(i.id, 0),
                status=None if h is None else h.status,
                fresh=h is not None and h.fresh,
                users_active=0 if h is None else h.users_active,
                nodes_usable=0 if h is None else h.nodes_usable,
                nodes_total=0 if h is None else h.nodes_total,
                scores=scores.get(i.id, []),
            )
        )
    return loads


async def collect_stats(
    pool: asyncpg.Pool, redis: Redis | None = None, *, now: datetime | None = None
) -> Stats:
    """Everything from Postgres in one read-only snapshot, so the numbers agree with each other.

    `now` pins the moment the windows end at (tests); by default the one clock's
    (`orbit_now()`); "today" starts at 00:00 UTC.
    """
    at = now or await clock.now(pool)
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        users = await queries.user_counts(conn, at)
        growth = await queries.growth(conn, at)
        by_plan = await queries.active_by_plan(conn, at)
        revenue = {r.source: r for r in await queries.revenue(conn, at)}
        pending, pending_kop = await queries.pending_payments(conn)
        unmatched = await queries.unmatched_ton(conn)
        loads = await instance_loads(conn, redis)
    methods = [*METHODS, *sorted(set(revenue) - {PURCHASES, *METHODS})]
    return Stats(
        at=at,
        users=users,
        growth=growth,
        active_by_plan=by_plan,
        purchases=revenue.get(PURCHASES) or _empty(PURCHASES),
        topups=[revenue.get(m) or _empty(m) for m in methods],
        pending_payments=pending,
        pending_kop=pending_kop,
        unmatched_ton=unmatched,
        instances=loads,
    )
