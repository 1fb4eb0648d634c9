"""The TON watcher process: single-active; matches wallet transactions to payments.

Every 30 s, and at once when a user presses "I paid" (`orbit:ton:poke`), it
fetches the wallet's transactions after the cursor kept in Postgres and
credits the payments they pay (`orbit.payments.ton_watch`).
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack

from orbit import keys
from orbit.i18n import create_translator
from orbit.payments.ton_watch import poll_wallet
from orbit.payments.tonapi import TonapiClient
from orbit.runtime import Context, Job, Worker

log = logging.getLogger(__name__)


async def setup(ctx: Context, stack: AsyncExitStack) -> Job:
    settings = ctx.settings
    if not settings.ton_address:
        log.warning("TON_ADDRESS is not set: TON payments are off, the watcher idles")
        return Job()
    client = TonapiClient(ctx.http, settings.tonapi_url, settings.tonapi_key)
    translator = create_translator()

    async def tick() -> None:
        await poll_wallet(
            ctx.pool, ctx.redis, client, translator, settings, should_stop=ctx.stopping.is_set
        )

    log.info("watching TON wallet %s via %s", settings.ton_address, settings.tonapi_url)
    return Job(tick=tick)


WORKER = Worker(
    name="ton_watcher",
    setup=setup,
    interval=30.0,
    channels=(keys.TON_POKE_CHANNEL,),
    lease=True,
)
