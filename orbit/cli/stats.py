"""`orbit stats`: users, revenue by window and method, payments still pending."""

from __future__ import annotations

import argparse
from datetime import UTC

import msgspec

from orbit.admin.queries import Revenue
from orbit.admin.stats import InstanceLoad, Stats, collect_stats
from orbit.connections import create_pool, create_redis
from orbit.migrate import require_schema
from orbit.money import format_rub
from orbit.settings import Settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("stats", help="users, trials, churn, revenue, pending payments, instances")
    parser.add_argument("--json", action="store_true", help="machine-readable output (amounts in kopecks)")
    parser.set_defaults(func=run)


def _row(name: str, r: Revenue) -> str:
    cells = (format_rub(v) for v in (r.today, r.week, r.month, r.total))
    return f"{name:<18}" + "".join(f"{c:>14}" for c in cells) + f"{r.count:>9}"


def render(stats: Stats) -> list[str]:
    u = stats.users
    return [
        f"as of {stats.at.astimezone(UTC):%Y-%m-%d %H:%M} UTC (today = since 00:00 UTC)",
        f"users: {u.total} total, {u.new_today} new today, {u.active} subscribed,"
        f" {u.blocked} blocked the bot, {u.banned} banned",
        "",
        f"{'revenue, RUB':<18}{'today':>14}{'7 days':>14}{'30 days':>14}{'all time':>14}{'count':>9}",
        _row("plans bought", stats.purchases),
        _row("top-ups, all", stats.topups_total),
        *(_row(f"  {r.source}", r) for r in stats.topups),
        "",
        f"pending payments: {stats.pending_payments} ({format_rub(stats.pending_kop)} RUB)",
        f"unmatched TON transfers: {stats.unmatched_ton}",
        "",
        *_growth(stats),
        "",
        "instances (configs, panel users, nodes usable, balancer scores: lowest wins):",
        *(_instance(i) for i in stats.instances),
    ]


def _growth(stats: Stats) -> list[str]:
    g = stats.growth
    conversion = "-" if g.conversion is None else f"{g.conversion:.1%}"
    plans = ", ".join(f"{p.plan} {p.count}" for p in stats.active_by_plan) or "none"
    return [
        f"new users: {g.new_1d} in 1 day, {g.new_7d} in 7 days, {g.new_30d} in 30 days",
        f"trials started: {g.trials_1d} / {g.trials_7d} / {g.trials_30d} (1/7/30 days),"
        f" {g.trials_total} ever; trial to paid: {g.trials_converted} of {g.trials_total} ({conversion})",
        f"active subscriptions by plan: {plans}",
        f"churn (ended, not renewed): {g.churned_7d} in 7 days, {g.churned_30d} in 30 days",
    ]


def _instance(i: InstanceLoad) -> str:
    health = "no balancer data" if i.status is None else i.status + ("" if i.fresh else " (stale)")
    scores = ", ".join(f"{s.node} {s.score:.3f}" for s in i.scores) or "-"
    state = "" if i.is_active else " (disabled)"
    return (
        f"  {i.id}{state}: {i.configs} configs, {i.users_active} panel users,"
        f" {i.nodes_usable}/{i.nodes_total} nodes, {health}; scores: {scores}"
    )


async def run(args: argparse.Namespace, settings: Settings) -> int:
    pool = await create_pool(settings, max_size=1)
    redis = create_redis(settings)
    try:
        await require_schema(pool)
        stats = await collect_stats(pool, redis)  # without Redis: no balancer columns
    finally:
        await redis.aclose()
        await pool.close()
    if args.json:
        print(msgspec.json.encode(stats).decode())  # noqa: T201
    else:
        for line in render(stats):
            print(line)  # noqa: T201
    return 0
