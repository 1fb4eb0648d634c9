"""Draining a panel: move every config of an instance to the others.

For each config, under its lock: a panel user with the same username, expiry,
data limit and enabled state is made on the best other instance; then one
transaction points the row there, lists the old panel user for removal and
queues the user's message with the new link (outbox); then the old user is
deleted if the old panel answers (else the balancer retries it later, on the
disabled instance, until it is done).

Spread: the balancer's scores only see the moved users at its next refresh,
so the drain keeps its own tally (`DrainSpread`) and sends each config to the
target whose score, plus what this drain already put there, is lowest.

Resumable: the instance is disabled first, so nothing new lands on it; a
config already moved is skipped; a config whose move was cut short finds its
half-made user through `panel_removals` and finishes on that instance. It is
refused when no other active instance answers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import msgspec
from redis.exceptions import RedisError

from orbit import audit, keys, outbox
from orbit.configs import queries as configs_q
from orbit.configs.queries import ConfigRecord
from orbit.marzban import instances
from orbit.marzban.client import absolute_url
from orbit.marzban.errors import DrainRefused, InstanceNotFound, MarzbanError, PanelUserNotFound
from orbit.marzban.instances import Instance
from orbit.marzban.placement import InstanceHealth, instance_of, poke_balancer, read_health
from orbit.marzban.provisioning import (
    PanelDeps,
    config_lock,
    load_target,
    place_user,
    process_removals,
    remove_listed,
)
from orbit.marzban.scoring import adjust_for_priority, node_load

if TYPE_CHECKING:  # importing aiogram's i18n costs seconds; only the caller needs it
    from orbit.i18n import Translator

log = logging.getLogger(__name__)

MESSAGE_KIND = "config_moved"
POKE_EVERY = 25  # moves between balancer refreshes, so the scores see the new users
SOURCE_DOWN_AFTER = 3  # removals failed in a row before the drain stops trying them


class DrainReport(msgspec.Struct, kw_only=True):
    instance_id: str
    moved: int = 0
    deleted: int = 0  # configs that were being deleted: removed instead of moved
    skipped: int = 0  # already elsewhere (another drain, a concurrent move)
    failed: dict[int, str] = {}
    old_users_left: int = 0  # old panel users still listed for removal
    # Data-limited configs whose used traffic could not be read on the source, with
    # why: their new panel user starts the period from zero.
    usage_not_carried: dict[int, str] = {}

    @property
    def complete(self) -> bool:
        return not self.failed


class DrainSpread:
    """Which target the next moved config goes to.

    Starts from each target's best node score as the balancer last wrote it (0 for
    all when there are none) and adds, per config this drain puts there, what one
    more user adds to that score by the balancer's formula for a node of usage
    coefficient 1: 1 / usable nodes, lightened by the instance's priority
    (orbit/marzban/scoring.py). Without it every config of a large drain would go
    to the same instance until the balancer refreshed.
    """

    def __init__(self, scores: dict[str, float], steps: dict[str, float]) -> None:
        self.scores = scores
        self.steps = steps

    @classmethod
    async def load(cls, deps: PanelDeps, targets: list[Instance]) -> DrainSpread:
        best: dict[str, float] = {}
        health: dict[str, InstanceHealth | None] = {}
        try:
            ranked = await deps.redis.zrange(keys.BALANCER_SCORES, 0, -1, withscores=True)
            health = await read_health(deps.redis, [t.id for t in targets])
        except (RedisError, OSError) as exc:  # spread by priority alone
            log.warning("drain: balancer scores unreadable (%s): spreading evenly", exc)
            ranked = []
        for name, score in ranked:  # lowest first: the first seen is the best node
            best.setdefault(instance_of(name), float(score))
        steps = {}
        for target in targets:
            seen = health.get(target.id)
            nodes = max(1, seen.nodes_usable if seen is not None else 1)
            # The balancer's own formula (orbit/marzban/scoring.py): score with one more
            # user per node minus the score without.
            added = node_load(1 / nodes, usage_coefficient=1.0, traffic_bytes=0)
            empty = adjust_for_priority(0.0, target.priority)
            steps[target.id] = adjust_for_priority(added, target.priority) - empty
        scores = {t.id: best.get(t.id, 0.0) for t in targets}
        return cls(scores, steps)

    def pick(self) -> str | None:
        return min(self.scores, key=lambda i: (self.scores[i], i)) if self.scores else None

    def placed(self, instance_id: str) -> None:
        if instance_id in self.scores:
            self.scores[instance_id] += self.steps[instance_id]


async def healthy_instances(deps: PanelDeps, candidates: list[Instance]) -> list[Instance]:
    """The candidates whose panel answers `GET /api/system` right now."""

    async def answers(instance: Instance) -> bool:
        try:
            await deps.client(instance, retries=0).get_system()
        except MarzbanError as exc:
            log.warning("drain: instance %s is not healthy: %s", instance.id, exc)
            return False
        return True

    results = await asyncio.gather(*(answers(i) for i in candidates))
    return [i for i, ok in zip(candidates, results, strict=True) if ok]


async def drain_instance(
    deps: PanelDeps,
    instance_id: str,
    translator: Translator,
    *,
    actor: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> DrainReport:
    """Move every live config of `instance_id` elsewhere; see the module docstring.

    Raises `InstanceNotFound`, or `DrainRefused` when no other instance is
    healthy. Per-config failures are collected in the report; run it again to
    retry them. With an `actor` (the CLI) the start is audited (orbit.audit) in the
    transaction that disables the instance; a drain job's row was written when it was
    queued (orbit/bot/routers/admin.py). Each move is its own transaction.
    """
    started = time.monotonic()
    source = await instances.get_instance(deps.pool, instance_id)
    if source is None:
        raise InstanceNotFound(instance_id)
    others = [i for i in await instances.active_instances(deps.pool) if i.id != instance_id]
    healthy = await healthy_instances(deps, others)
    if not healthy:
        raise DrainRefused(
            f"no other instance is healthy ({len(others)} other active): nothing to move to"
        )
    async with deps.pool.acquire() as conn, conn.transaction():
        was_active = await instances.is_active_for_update(conn, instance_id)
        if was_active is None:
            raise InstanceNotFound(instance_id)
        if was_active:
            await instances.set_active(conn, instance_id, False)
        if actor is not None:
            configs = await instances.count_live_configs(conn, instance_id)
            await audit.record(
                conn,
                actor,
                "instance.drain",
                target=audit.instance_target(instance_id),
                before={"is_active": was_active, "configs": configs},
                after={"is_active": False},
            )
    if was_active:
        log.info("drain: instance %s disabled for new configs by %s", instance_id, actor or "a job")
    await poke_balancer(deps.redis)
    avoid = {instance_id} | {i.id for i in others if i not in healthy}
    healthy_ids = {i.id for i in healthy}

    spread = await DrainSpread.load(deps, healthy)
    report = DrainReport(instance_id=instance_id)
    config_ids = await configs_q.live_ids_on_instance(deps.pool, instance_id)
    failed_in_a_row = 0  # removals on the source that failed since the last success
    for config_id in config_ids:
        try:
            outcome, failed_in_a_row = await _move(
                deps, translator, config_id, source, avoid, healthy_ids, spread, failed_in_a_row,
                report,
            )  # fmt: skip
        except MarzbanError as exc:
            report.failed[config_id] = str(exc)
            log.warning("drain: config %d not moved: %s", config_id, exc)
            if progress:
                progress(f"config {config_id}: not moved: {exc}")
            continue
        if outcome == "moved":
            report.moved += 1
            if report.moved % POKE_EVERY == 0:
                await poke_balancer(deps.redis)
        elif outcome == "deleted":
            report.deleted += 1
        else:
            report.skipped += 1
        if progress:
            progress(f"config {config_id}: {outcome}")
    # Stops at the first failure; whatever is left, the balancer keeps retrying.
    await process_removals(deps, instance_ids=[instance_id], limit=10_000)
    report.old_users_left = await configs_q.count_removals(deps.pool, instance_id)
    await poke_balancer(deps.redis)
    log.info(
        "drain of %s: %d moved, %d deleted, %d skipped, %d failed, %d old users left,"
        " %d without their usage carried, in %.1fs",
        instance_id, report.moved, report.deleted, report.skipped, len(report.failed),
        report.old_users_left, len(report.usage_not_carried), time.monotonic() - started,
    )  # fmt: skip
    return report


async def _used_on_source(
    deps: PanelDeps,
    source: Instance,
    config: ConfigRecord,
    failed_in_a_row: int,
    report: DrainReport,
) -> int | None:
    """What the config has used this period, counting its user on the source; None
    (and the reason in the report) when the source cannot tell."""
    if failed_in_a_row >= SOURCE_DOWN_AFTER:
        report.usage_not_carried[config.id] = "the source panel is down"
        return None
    try:
        used = (await deps.client(source, retries=0).get_user(config.panel_username)).used_traffic
    except PanelUserNotFound:
        used = 0
    except MarzbanError as exc:
        report.usage_not_carried[config.id] = f"used traffic unreadable: {exc}"
        log.warning("drain: config %d: usage not carried: %s", config.id, exc)
        return None
    return config.usage_carried_bytes + used


async def _move(
    deps: PanelDeps,
    translator: Translator,
    config_id: int,
    source: Instance,
    avoid: set[str],
    healthy_ids: set[str],
    spread: DrainSpread,
    failed_in_a_row: int,
    report: DrainReport,
) -> tuple[str, int]:
    """Move one config; returns its outcome and how many removals on the source
    failed in a row. One failed DELETE (a 500 for one user) does not stop the
    others; after SOURCE_DOWN_AFTER in a row the source is taken as down and its
    old users are left to the final pass and the balancer.

    Marzban has no call that sets a user's used traffic, so a data-limited
    config carries what its old user used as `usage_carried_bytes`: the new
    user's limit is what remains (provisioning.remaining_limit)."""
    source_id = source.id
    async with config_lock(deps.pool, config_id) as conn:
        target = await load_target(conn, config_id)
        config = target.config
        if config.instance_id != source_id:
            return "skipped", failed_in_a_row
        if config.status in ("deleting", "deleted"):
            async with conn.transaction():
                await configs_q.mark_deleted(conn, config_id)
                await configs_q.insert_removal(conn, source_id, config.panel_username, config_id)
            return "deleted", failed_in_a_row
        # A move cut short left its user listed on the instance it was going to.
        half_made = [
            i
            for i in await configs_q.removal_instances_of_config(conn, config_id)
            if i in healthy_ids
        ]
        carried = None
        if config.data_limit_bytes and config.status != "pending":
            carried = await _used_on_source(deps, source, config, failed_in_a_row, report)
            if carried is not None:
                fresh = msgspec.structs.replace(config, usage_carried_bytes=carried)
                target = msgspec.structs.replace(target, config=fresh)
        instance, user = await place_user(
            deps, conn, target, avoid=avoid, prefer=half_made[0] if half_made else spread.pick()
        )
        spread.placed(instance.id)
        url = absolute_url(instance.link_base, user.subscription_url)
        async with conn.transaction():
            record = await configs_q.mark_placed(
                conn, config_id, instance.id, url, source_id, usage_carried_bytes=carried
            )
            if record is None:
                return "skipped", failed_in_a_row
            await configs_q.delete_removal(conn, instance.id, config.panel_username)
            await configs_q.insert_removal(conn, source_id, config.panel_username, config_id)
            notify = config.status != "pending"  # a pending config's owner has no link yet
            if notify:
                text = translator(
                    target.language,
                    "marzban-config-moved",
                    name=config.name,
                    url=url,
                )
                await outbox.enqueue(conn, config.user_id, MESSAGE_KIND, text)
        if notify:
            await outbox.wake_sender(deps.redis)
        if failed_in_a_row < SOURCE_DOWN_AFTER:
            removed = await remove_listed(deps, conn, source_id, config.panel_username)
            failed_in_a_row = 0 if removed else failed_in_a_row + 1
    log.info("drain: config %d moved %s -> %s", config_id, source_id, instance.id)
    return "moved", failed_in_a_row
