"""The TON watcher process: single-active; matches wallet transactions to payments.

Every 30 s, and at once when a user presses "I paid" (`orbit:ton:poke`), it
fetches the wallet's transactions after the cursor kept in Postgres and
credits the payments they pay (`orbit.payments.ton_watch`). At start and then
every `TON_RECONCILE_INTERVAL_MINUTES` the same tick also re-reads the history
behind the cursor (`orbit.payments.ton_reconcile`): it owns the tonapi client
and holds the lease, so the two never race another watcher.
"""

from __future__ import annotations

import logging
import time
from contextlib import AsyncExitStack

from orbit import keys
from orbit.i18n import create_translator
from orbit.payments.ton_reconcile import reconcile_ton
from orbit.payments.ton_watch import poll_wallet
from orbit.payments.tonapi import TonapiClient, TonapiError
from orbit.runtime import Context, Job, Worker

log = logging.getLogger(__name__)


async def setup(ctx: Context, stack: AsyncExitStack) -> Job:
    settings = ctx.settings
    if not settings.ton_address:
        log.warning("TON_ADDRESS is not set: TON payments are off, the watcher idles")
        return Job()
    client = TonapiClient(ctx.http, settings.tonapi_url, settings.tonapi_key)
    translator = create_translator()
    reconcile_every = settings.ton_reconcile_interval_minutes * 60.0
    next_reconcile = time.monotonic()  # the first tick reconciles: whatever happened while down

    async def tick() -> None:
        nonlocal next_reconcile, caught_up_at
        polled = await poll_wallet(
            ctx.pool, ctx.redis, client, translator, settings, should_stop=ctx.stopping.is_set
        )
        ctx.metrics.set("ton_cursor_lt", polled.last_lt)
        for outcome in ("matched", "unmatched", "ignored", "rejected"):
            ctx.metrics.inc("ton_transactions_total", getattr(polled, outcome), outcome=outcome)
        if not ctx.stopping.is_set():  # it read pages until the wallet had nothing newer
            caught_up_at = time.time()
            ctx.metrics.set("ton_caught_up_timestamp_seconds", caught_up_at)
        if not reconcile_every or time.monotonic() < next_reconcile or ctx.stopping.is_set():
            return
        next_reconcile = time.monotonic() + reconcile_every
        try:
            await reconcile_ton(
                ctx.pool, ctx.redis, ctx.http, settings, translator=translator, client=client
            )
        except TonapiError as exc:  # tried again at the next interval
            log.warning("TON reconcile skipped: %s", exc)

    caught_up_at = time.time()

    async def lag() -> None:  # grows while tonapi fails or the lease is elsewhere
        ctx.metrics.set("ton_lag_seconds", time.time() - caught_up_at)

    ctx.metrics.on_scrape(lag)
    log.info("watching TON wallet %s via %s", settings.ton_address, settings.tonapi_url)
    return Job(tick=tick)


WORKER = Worker(
    name="ton_watcher",
    setup=setup,
    interval=30.0,
    channels=(keys.TON_POKE_CHANNEL,),
    lease=True,
)
