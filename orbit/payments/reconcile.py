"""Reconciliation with the outside record of money: every source compares what its
service says happened with our rows, fixes what can be fixed exactly once and
reports the rest (`orbit reconcile`, and the janitor on `RECONCILE_INTERVAL_SECONDS`).

One function per source returns a `Report`; running any of them twice in a row
changes nothing the second time (its report shows no credit and no reversal).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import asyncpg
from aiogram import Bot
from redis.asyncio import Redis

from orbit.i18n import Translator
from orbit.payments import cryptobot_reconcile, stars_reconcile, ton_reconcile
from orbit.payments.reconcile_report import Report
from orbit.settings import Settings

__all__ = ["ReconcileDeps", "Report", "reconcilers", "run_reconcilers"]

log = logging.getLogger(__name__)


Reconciler = Callable[[], Awaitable[Report]]


@dataclass(frozen=True, slots=True)
class ReconcileDeps:
    """What the reconcilers need; `bot` is None where no BOT_TOKEN is configured."""

    pool: asyncpg.Pool
    redis: Redis
    http: aiohttp.ClientSession
    translator: Translator
    settings: Settings
    bot: Bot | None


def reconcilers(deps: ReconcileDeps, *, from_start: bool = False) -> dict[str, Reconciler]:
    """One reconciler per configured way money enters, by source name."""
    found: dict[str, Reconciler] = {}
    bot = deps.bot
    if bot is not None:
        found["stars"] = lambda: stars_reconcile.reconcile_stars(
            deps.pool, deps.redis, deps.translator, deps.settings, bot, from_start=from_start
        )
    if deps.settings.cryptobot_token:
        found["cryptobot"] = lambda: cryptobot_reconcile.reconcile_cryptobot(
            deps.pool, deps.redis, deps.http, deps.translator, deps.settings
        )
    if deps.settings.ton_address:
        found["ton"] = lambda: _reconcile_ton(deps)
    return found


async def _reconcile_ton(deps: ReconcileDeps) -> Report:
    """The wallet re-read before the watcher's cursor, in the common report's terms."""
    ton = await ton_reconcile.reconcile_ton(
        deps.pool, deps.redis, deps.http, deps.settings, translator=deps.translator
    )
    fixed = []
    if ton.fixed:
        fixed.append(
            f"ton: {ton.fixed} transfer(s) the watcher missed between lt {ton.from_lt} and {ton.to_lt},"
            f" {ton.matched} credited ({ton.credited_kop / 100:.2f} RUB), {ton.unmatched} unmatched"
        )
    return Report(source="ton", checked=ton.read, credited=ton.matched, fixed=fixed)


async def run_reconcilers(reconcilers: dict[str, Reconciler]) -> list[Report]:
    """Every reconciler once, in order; one that fails is reported (its `error`) and
    the others still run."""
    reports = []
    for source, reconcile in reconcilers.items():
        started = time.monotonic()
        try:
            report = await reconcile()
        except Exception as exc:  # a source down must not stop the others; logged once here
            log.info("reconcile %s failed: %r", source, exc)
            report = Report(source=source, error=f"{type(exc).__name__}: {exc}")
        report.seconds = round(time.monotonic() - started, 3)
        log.info("reconcile %s in %.2fs", report.line(), report.seconds)
        reports.append(report)
    return reports
