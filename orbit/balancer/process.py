"""The balancer process: single-active; refreshes Marzban node scores.

Each tick (every 60 s, and at once on `orbit:balancer:poke`): probe every
active instance in parallel and publish node scores and instance health
(orbit/balancer/refresh.py, formula in orbit/balancer/scoring.py), then remove
listed panel users that no config points at any more on the instances that
answered (orbit/marzban/provisioning.py: `process_removals`).
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack

from orbit import keys
from orbit.balancer.refresh import refresh
from orbit.marzban.instances import ensure_legacy_instance, list_instances
from orbit.marzban.placement import BALANCER_INTERVAL
from orbit.marzban.provisioning import PanelDeps, process_removals
from orbit.runtime import Context, Job, Worker

log = logging.getLogger(__name__)

REMOVALS_PER_TICK = 50


async def setup(ctx: Context, stack: AsyncExitStack) -> Job:
    await ensure_legacy_instance(ctx.pool, ctx.settings)
    deps = PanelDeps(ctx.pool, ctx.redis, ctx.http, ctx.settings)

    async def tick() -> None:
        registry = await list_instances(ctx.pool)
        result = await refresh(
            ctx.redis, ctx.http, registry, timeout=ctx.settings.marzban_timeout_seconds
        )
        for probe in result.probes:
            if not probe.ok:
                log.warning("instance %s is down: %s", probe.instance_id, probe.error)
        removals = None
        if result.up:
            removals = await process_removals(
                deps, instance_ids=result.up, limit=REMOVALS_PER_TICK
            )
        log.info(
            "refreshed %d instances (%d up, %d down, %d disabled): %d node scores; "
            "%d old panel users removed",
            len(result.probes), len(result.up), len(result.down), len(result.disabled),
            len(result.members), removals.removed if removals else 0,
        )  # fmt: skip

    return Job(tick=tick)


WORKER = Worker(
    name="balancer",
    setup=setup,
    interval=BALANCER_INTERVAL,
    channels=(keys.BALANCER_POKE_CHANNEL,),
    lease=True,
)
