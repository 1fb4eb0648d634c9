"""The janitor process: periodic chores; safe to run twice (locks, keys, SKIP LOCKED)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack

from orbit import keys
from orbit.i18n import create_translator
from orbit.janitor import chores, housekeeping, jobs, reconciliation
from orbit.marzban.passwords import check_passwords
from orbit.marzban.provisioning import PanelDeps
from orbit.outages import dependency_down
from orbit.outbox.limiter import SendLimiter
from orbit.payments.reconcile import ReconcileDeps
from orbit.runtime import Context, Job, Worker

log = logging.getLogger(__name__)


async def setup(ctx: Context, stack: AsyncExitStack) -> Job:
    await check_passwords(ctx.pool, ctx.settings)
    translator = create_translator()
    bot = None
    if ctx.settings.bot_token:  # Stars reconciliation reads Telegram's record
        from orbit.bot.process import create_bot

        bot = create_bot(ctx.settings)
        stack.push_async_callback(bot.session.close)
    reconcile_deps = ReconcileDeps(ctx.pool, ctx.redis, ctx.http, translator, ctx.settings, bot)
    deps = PanelDeps(ctx.pool, ctx.redis, ctx.http, ctx.settings, translator)
    work: dict[str, Callable[[], Awaitable[int]]] = {
        "expired_payments": lambda: housekeeping.expire_pending_payments(ctx.pool),
        "purged_outbox": lambda: housekeeping.purge_old_outbox(ctx.pool),
        "renewed": lambda: chores.renew_subscriptions(deps, translator, ctx.plans),
        "reminded": lambda: chores.send_reminders(deps, translator),
        "repaired_configs": lambda: chores.repair_drift(deps),
        "resumed_broadcasts": lambda: chores.finish_broadcasts(deps),
        "reconciled": lambda: reconciliation.reconcile_due(reconcile_deps),
    }

    async def tick() -> None:
        done: dict[str, int] = {}
        for name, chore in work.items():
            if ctx.stopping.is_set():
                break
            started = time.monotonic()
            try:
                done[name] = await chore()
            except Exception as exc:
                ctx.metrics.inc("janitor_chore_failures_total", chore=name)
                if dependency_down(exc):
                    # Postgres or Redis is away: the other chores would fail the same way.
                    # The runtime logs one line and retries the unit within seconds.
                    raise
                log.exception("chore %s failed", name)  # one broken chore must not starve the others
            else:
                ctx.metrics.inc("janitor_chore_items_total", done[name], chore=name)
            finally:
                ctx.metrics.inc("janitor_chore_runs_total", chore=name)
                ctx.metrics.observe("janitor_chore_duration_seconds", time.monotonic() - started, chore=name)
        log.info("chores: %s", " ".join(f"{k}={v}" for k, v in done.items()))

    # Long admin actions (drains, broadcasts) queued by the bot: their own loop, so a
    # broadcast followed for minutes never delays the chores (orbit/janitor/jobs.py).
    limiter = SendLimiter(ctx.redis, ctx.settings.outbox_rate_per_second)  # the bot's budget
    job_deps = jobs.JobDeps(ctx.pool, ctx.redis, ctx.settings, translator, deps, bot, ctx.stopping, limiter)
    return Job(tick=tick, serve=lambda: jobs.serve(job_deps))


WORKER = Worker(name="janitor", setup=setup, interval=60.0, channels=(keys.JANITOR_POKE_CHANNEL,))
