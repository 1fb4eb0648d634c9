"""`orbit reconcile`: compare Telegram's and Crypto Pay's records of money with ours,
once, and print what was fixed.

    orbit reconcile [--json] [--from-start]
    orbit reconcile --issues [--json]

Each configured source (Stars with BOT_TOKEN, Crypto Pay with CRYPTOBOT_TOKEN)
runs once: money that arrived without being credited is credited, refunds made
outside the bot are reversed, and what cannot be fixed is recorded and sent to
the admins. Running it again changes nothing. `--issues` lists what is still
open. Exit code 1 when a source could not be read.
"""

from __future__ import annotations

import argparse
import logging
import sys

import aiohttp
import asyncpg
import msgspec

from orbit.connections import check_redis, create_pool, create_redis
from orbit.i18n import create_translator
from orbit.migrate import require_schema
from orbit.payments import issues
from orbit.payments.reconcile_report import Report
from orbit.settings import Settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("reconcile", help="reconcile payments with Telegram and Crypto Pay")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--issues", action="store_true", help="list open issues instead of reconciling")
    parser.add_argument(
        "--from-start", action="store_true", help="re-read every Star transaction, not just the new ones"
    )
    parser.set_defaults(func=run)


def _out(line: str) -> None:
    print(line)  # noqa: T201


def _logs_to_stderr() -> None:
    """This command's stdout is its report (`--json` for scripts); the log lines a fix or
    a refusal writes on the way go to stderr."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
            handler.setStream(sys.stderr)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    _logs_to_stderr()
    pool = await create_pool(settings, max_size=2)
    try:
        await require_schema(pool)
        if args.issues:
            found = await issues.open_issues(pool)
            if args.json:
                _out(msgspec.json.encode(found).decode())
            for issue in [] if args.json else found:
                when = f"{issue.created_at:%Y-%m-%d %H:%M}Z"
                _out(f"#{issue.id} {when} {issue.source} {issue.kind} {issue.subject}: {issue.detail}")
            if not args.json and not found:
                _out("no open issues")
            return 0
        reports = await _reconcile(settings, pool, from_start=args.from_start)
    finally:
        await pool.close()
    if args.json:
        _out(msgspec.json.encode(reports).decode())
    else:
        if not reports:
            _out("nothing to reconcile: neither BOT_TOKEN nor CRYPTOBOT_TOKEN is set")
        for report in reports:
            _out(report.line())
            for fixed in report.fixed:
                _out(f"  fixed: {fixed}")
    return 1 if any(r.error for r in reports) else 0


async def _reconcile(settings: Settings, pool: asyncpg.Pool, *, from_start: bool) -> list[Report]:
    # aiogram's import costs seconds: every other `orbit` command stays without it.
    from orbit.bot_client import create_bot
    from orbit.payments.reconcile import ReconcileDeps, reconcilers, run_reconcilers

    redis = create_redis(settings)
    bot = create_bot(settings) if settings.bot_token else None
    try:
        await check_redis(redis, settings)
        async with aiohttp.ClientSession() as http:
            deps = ReconcileDeps(pool, redis, http, create_translator(), settings, bot)
            return await run_reconcilers(reconcilers(deps, from_start=from_start))
    finally:
        if bot is not None:
            await bot.session.close()
        await redis.aclose()
