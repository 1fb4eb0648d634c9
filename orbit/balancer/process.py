"""The balancer process: single-active; refreshes Marzban node scores.

Each tick (every 60 s, and at once on `orbit:balancer:poke`): probe every
active instance in parallel and publish node scores and instance health
(orbit/balancer/refresh.py, formula in orbit/marzban/scoring.py), then remove
listed panel users that no config points at any more on the instances that
answered and on the disabled ones, drained panels included
(orbit/marzban/provisioning.py: `process_removals`).
"""

from __future__ import annotations

import logging
import time
from contextlib import AsyncExitStack

from orbit import keys
from orbit.balancer.refresh import RefreshResult, refresh
from orbit.marzban.instances import ensure_legacy_instance, list_instances
from orbit.marzban.passwords import check_passwords
from orbit.marzban.placement import BALANCER_INTERVAL
from orbit.marzban.provisioning import PanelDeps, RemovalReport, process_removals
from orbit.metrics import Metrics
from orbit.runtime import Context, Job, Worker

log = logging.getLogger(__name__)

REMOVALS_PER_TICK = 50


async def balance(deps: PanelDeps) -> tuple[RefreshResult, RemovalReport]:
    """One tick: refresh every active instance's scores, then remove listed panel
    users on the instances that answered and on the disabled ones (a drained panel
    still holds its old users until each is removed; process_removals gives up on
    an instance for this tick at its first failure)."""
    registry = await list_instances(deps.pool)
    result = await refresh(
        deps.redis,
        deps.http,
        registry,
        timeout=deps.settings.marzban_timeout_seconds,
        passwords=deps.passwords,
    )
    for probe in result.probes:
        if not probe.ok:
            log.warning("instance %s is down: %s", probe.instance_id, probe.error)
    removals = RemovalReport()
    targets = [*result.up, *result.disabled]
    if targets:
        removals = await process_removals(deps, instance_ids=targets, limit=REMOVALS_PER_TICK)
    return result, removals


def publish_gauges(metrics: Metrics, result: RefreshResult) -> None:
    """Node scores and panel health as the last refresh left them (gone nodes disappear)."""
    scores: dict[tuple[str, ...], float] = {}
    for probe in result.probes:
        metrics.set("panel_up", 1 if probe.scores is not None else 0, instance=probe.instance_id)
        nodes = probe.scores.nodes if probe.scores is not None else []
        metrics.set("panel_nodes_usable", len(nodes), instance=probe.instance_id)
        scores.update({(probe.instance_id, node.node): node.score for node in nodes})
    metrics.replace("balancer_node_score", scores)
    metrics.set("balancer_refresh_timestamp_seconds", time.time())


async def setup(ctx: Context, stack: AsyncExitStack) -> Job:
    await check_passwords(ctx.pool, ctx.settings)
    await ensure_legacy_instance(ctx.pool, ctx.settings)
    deps = PanelDeps(ctx.pool, ctx.redis, ctx.http, ctx.settings)

    async def tick() -> None:
        result, removals = await balance(deps)
        publish_gauges(ctx.metrics, result)
        log.info(
            "refreshed %d instances (%d up, %d down, %d disabled): %d node scores; "
            "%d old panel users removed, %d not yet",
            len(result.probes), len(result.up), len(result.down), len(result.disabled),
            len(result.members), removals.removed, removals.failed,
        )  # fmt: skip

    return Job(tick=tick)


WORKER = Worker(
    name="balancer",
    setup=setup,
    interval=BALANCER_INTERVAL,
    channels=(keys.BALANCER_POKE_CHANNEL,),
    lease=True,
)
