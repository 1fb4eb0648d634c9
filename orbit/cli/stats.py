"""`orbit stats`: users, revenue by window and method, payments still pending."""

from __future__ import annotations

import argparse
from datetime import UTC

import msgspec

from orbit.admin.queries import Revenue
from orbit.admin.stats import Stats, collect_stats
from orbit.connections import create_pool
from orbit.migrate import require_schema
from orbit.money import format_rub
from orbit.settings import Settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("stats", help="users, revenue, pending payments")
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
    ]


async def run(args: argparse.Namespace, settings: Settings) -> int:
    pool = await create_pool(settings, max_size=1)
    try:
        await require_schema(pool)
        stats = await collect_stats(pool)
    finally:
        await pool.close()
    if args.json:
        print(msgspec.json.encode(stats).decode())  # noqa: T201
    else:
        for line in render(stats):
            print(line)  # noqa: T201
    return 0
