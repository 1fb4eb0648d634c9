"""The janitor's periodic reconciliation (`orbit/payments/reconcile.py`): at most once
per `RECONCILE_INTERVAL_SECONDS` across every janitor, claimed with one Redis key."""

from __future__ import annotations

import logging

from redis.asyncio import Redis

from orbit import keys
from orbit.payments.reconcile import ReconcileDeps, reconcilers, run_reconcilers

log = logging.getLogger(__name__)


async def claim_run(redis: Redis, interval_seconds: int) -> bool:
    """True for the one janitor that runs reconciliation this interval."""
    return bool(await redis.set(keys.RECONCILE_CLAIM, "1", nx=True, ex=interval_seconds))


async def reconcile_due(deps: ReconcileDeps) -> int:
    """Run every reconciler if this interval's run is ours; how many things it fixed."""
    found = reconcilers(deps)
    if not found or not await claim_run(deps.redis, deps.settings.reconcile_interval_seconds):
        return 0
    reports = await run_reconcilers(found)
    for report in reports:
        for fixed in report.fixed:
            log.warning("reconcile %s fixed: %s", report.source, fixed)
        if report.unresolved or report.error:
            log.warning("reconcile %s", report.line())
    return sum(r.changed for r in reports)
