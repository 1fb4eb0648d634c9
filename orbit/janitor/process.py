"""The janitor process: periodic chores, each on its own interval and in its own task
(orbit/janitor/schedule.py); safe to run twice (claims, locks, keys, SKIP LOCKED).

The chores are one table: a name (shown by `orbit status`), what runs, how often.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from orbit import backup, clock, keys
from orbit.bot_client import create_bot
from orbit.i18n import Translator, create_translator
from orbit.janitor import chores, housekeeping, jobs, reconciliation
from orbit.janitor.schedule import Chore, ChoreFailed, Scheduler
from orbit.marzban.passwords import check_passwords
from orbit.marzban.provisioning import PanelDeps
from orbit.marzban.reconcile import reconcile_panels
from orbit.outbox.limiter import SendLimiter
from orbit.payments.reconcile import ReconcileDeps
from orbit.runtime import Context, Job, Worker
from orbit.subscriptions import expiry, traffic

if TYPE_CHECKING:
    from aiogram import Bot

log = logging.getLogger(__name__)

MINUTE = 60.0
HOUR = 3600.0


def backup_sender(bot: Bot, chat_id: int) -> backup.SendDocument:
    """Sends a backup file to `chat_id` (sendDocument, aiogram uploads it as multipart)."""
    from aiogram.types import FSInputFile

    async def send(path: Path) -> None:
        await bot.send_document(chat_id, FSInputFile(path), caption=path.name)

    return send


def chore_table(
    ctx: Context,
    deps: PanelDeps,
    reconcile_deps: ReconcileDeps,
    translator: Translator,
    send_backup: backup.SendDocument | None,
) -> tuple[Chore, ...]:
    settings = ctx.settings

    async def panels() -> int:
        return (await reconcile_panels(deps)).changed

    async def nightly() -> int:
        try:
            return await backup.nightly_backup(settings, ctx.redis, await clock.now(ctx.pool), send_backup)
        except (backup.BackupError, OSError) as exc:  # pg_dump refused, the disk is full, ...
            raise ChoreFailed(str(exc)) from None

    return (
        Chore("expired_payments", lambda: housekeeping.expire_pending_payments(ctx.pool), 30.0),
        Chore("deleted_payments", lambda: housekeeping.delete_closed_payments(ctx.pool), HOUR),
        Chore("deleted_ton_transfers", lambda: housekeeping.delete_reviewed_ton_transfers(ctx.pool), HOUR),
        Chore("purged_outbox", lambda: housekeeping.purge_old_outbox(ctx.pool), HOUR),
        Chore("renewed", lambda: chores.renew_subscriptions(deps, translator, ctx.plans), MINUTE),
        Chore("reminded", lambda: chores.send_reminders(deps, translator), 5 * MINUTE),
        Chore("repaired_configs", lambda: chores.repair_drift(deps), 30.0),
        Chore("resumed_broadcasts", lambda: chores.finish_broadcasts(deps), MINUTE),
        Chore("expired_configs", lambda: expiry.expire_chore(deps), MINUTE),
        Chore("retired_configs", lambda: expiry.retire_chore(deps), 5 * MINUTE),
        # One GET per 200 configs per panel: often enough for 90 % notices, cheap at scale.
        Chore(
            "read_usage",
            lambda: traffic.usage_chore(deps, chores.traffic_buttons(translator)),
            10 * MINUTE,
        ),
        # Its own claim keeps it to RECONCILE_INTERVAL_SECONDS; this only looks.
        Chore("reconciled", lambda: reconciliation.reconcile_due(reconcile_deps), MINUTE),
        Chore("reconciled_panels", panels, float(settings.panel_reconcile_interval_seconds), on_poke=False),
        Chore("backed_up", nightly, 5 * MINUTE),
    )


async def setup(ctx: Context, stack: AsyncExitStack) -> Job:
    await check_passwords(ctx.pool, ctx.settings)
    translator = create_translator()
    bot = None
    send_backup = None
    if ctx.settings.bot_token:  # Stars reconciliation reads Telegram's record
        bot = create_bot(ctx.settings)
        stack.push_async_callback(bot.session.close)
        if ctx.settings.backup_chat_id is not None:
            send_backup = backup_sender(bot, ctx.settings.backup_chat_id)
    reconcile_deps = ReconcileDeps(ctx.pool, ctx.redis, ctx.http, translator, ctx.settings, bot)
    deps = PanelDeps(ctx.pool, ctx.redis, ctx.http, ctx.settings, translator)
    table = chore_table(ctx, deps, reconcile_deps, translator, send_backup)
    scheduler = Scheduler(ctx.redis, table, ctx.stopping, ctx.metrics)

    async def poked() -> None:  # the sandbox moved the clock: time-driven chores run now
        scheduler.poke()

    # Long admin actions (drains, broadcasts) queued by the bot: their own loop, so a
    # broadcast followed for minutes never delays the chores (orbit/janitor/jobs.py).
    limiter = SendLimiter(ctx.redis, ctx.settings.outbox_rate_per_second)  # the bot's budget
    job_deps = jobs.JobDeps(ctx.pool, ctx.redis, ctx.settings, translator, deps, bot, ctx.stopping, limiter)

    async def serve() -> None:  # the chores and the jobs, each loop in its own task
        async with asyncio.TaskGroup() as group:
            group.create_task(scheduler.serve())
            group.create_task(jobs.serve(job_deps))

    return Job(tick=poked, serve=serve)


# The timer's tick only pokes (each chore keeps its own interval); pokes come from the
# sandbox's clock control.
WORKER = Worker(name="janitor", setup=setup, interval=3600.0, channels=(keys.JANITOR_POKE_CHANNEL,))
