"""Marzban instances as the admin panel shows them (health, configs, the balancer's
node scores); switching one on or off, excluding or including a node, asking the
balancer for a refresh now. The bot's panel and `orbit instances` call these, so
both write the same audit rows.

Draining is `orbit.marzban.drain.drain_instance`, run as a job from the bot."""

from __future__ import annotations

import logging

import asyncpg
import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from orbit import audit, keys
from orbit.admin.errors import InvalidNode
from orbit.marzban import instances
from orbit.marzban.errors import InstanceNotFound
from orbit.marzban.instances import Instance
from orbit.marzban.placement import InstanceHealth, instance_of, poke_balancer, read_health
from orbit.text import clean_text

NODE_NAME_MAX = 128


class NodeScore(msgspec.Struct, frozen=True):
    node: str
    score: float  # the balancer's load score: lowest wins


log = logging.getLogger(__name__)


class InstanceLine(msgspec.Struct, frozen=True, kw_only=True):
    instance: Instance
    configs: int  # live configs on it
    health: InstanceHealth | None  # as the balancer last saw it; None: never, or Redis is down
    scores: list[NodeScore] = []  # usable nodes, lowest score first; none when down or stale


async def _health(redis: Redis, ids: list[str]) -> dict[str, InstanceHealth | None]:
    try:
        return await read_health(redis, ids)
    except (RedisError, OSError) as exc:  # the list is still worth showing without it
        log.warning("instance health unreadable: %s", exc)
        return dict.fromkeys(ids)


async def read_scores(redis: Redis) -> dict[str, list[NodeScore]]:
    """`balancer:scores` by instance, lowest score first."""
    ranked = await redis.zrange(keys.BALANCER_SCORES, 0, -1, withscores=True)
    found: dict[str, list[NodeScore]] = {}
    for name, score in ranked:
        found.setdefault(instance_of(name), []).append(NodeScore(name.split(":", 1)[1], float(score)))
    return found


async def _scores(redis: Redis) -> dict[str, list[NodeScore]]:
    try:
        return await read_scores(redis)
    except (RedisError, OSError) as exc:
        log.warning("balancer scores unreadable: %s", exc)
        return {}


async def instance_overview(pool: asyncpg.Pool, redis: Redis) -> list[InstanceLine]:
    registry = await instances.list_instances(pool)
    counts = await instances.live_config_counts(pool)
    health = await _health(redis, [i.id for i in registry])
    scores = await _scores(redis)
    return [
        InstanceLine(
            instance=i, configs=counts.get(i.id, 0), health=health[i.id], scores=scores.get(i.id, [])
        )
        for i in registry
    ]


def check_node(name: str) -> str:
    node = clean_text(name, NODE_NAME_MAX + 1).strip()
    if not node or len(node) > NODE_NAME_MAX:
        raise InvalidNode(node[:40])
    return node


async def exclude_node(
    pool: asyncpg.Pool, redis: Redis, instance_id: str, node: str, *, actor: str
) -> Instance:
    """Stop scoring `node` of the instance (new configs avoid the panel if it was its best)."""
    return await _set_node_excluded(pool, redis, instance_id, check_node(node), True, actor)


async def include_node(
    pool: asyncpg.Pool, redis: Redis, instance_id: str, node: str, *, actor: str
) -> Instance:
    """Score an excluded node again; refuses a node that is not excluded."""
    return await _set_node_excluded(pool, redis, instance_id, node, False, actor)


async def _set_node_excluded(
    pool: asyncpg.Pool, redis: Redis, instance_id: str, node: str, exclude: bool, actor: str
) -> Instance:
    async with pool.acquire() as conn, conn.transaction():
        before = await instances.get_instance(conn, instance_id)
        if before is None:
            raise InstanceNotFound(instance_id)
        if exclude:
            updated = await instances.exclude_node(conn, instance_id, node)
        elif node not in before.excluded_node_names:
            raise InvalidNode(node[:40])
        else:
            updated = await instances.include_node(conn, instance_id, node)
        assert updated is not None
        await audit.record(
            conn,
            actor,
            "instance.exclude_node" if exclude else "instance.include_node",
            target=audit.instance_target(instance_id),
            before={"excluded_node_names": list(before.excluded_node_names)},
            after={"excluded_node_names": list(updated.excluded_node_names)},
        )
    await poke_balancer(redis)
    return updated


async def refresh_balancer(pool: asyncpg.Pool, redis: Redis, *, actor: str) -> None:
    """Ask the balancer to score every instance now (it also does every minute)."""
    async with pool.acquire() as conn, conn.transaction():
        await audit.record(conn, actor, "balancer.refresh")
        # A failed publish rolls the audit row back.
        await redis.publish(keys.channel(redis, keys.BALANCER_POKE_CHANNEL), "1")


async def set_instance_active(
    pool: asyncpg.Pool, redis: Redis, instance_id: str, active: bool, *, actor: str
) -> InstanceLine:
    """Let new configs go to the instance, or stop them (existing configs stay)."""
    async with pool.acquire() as conn, conn.transaction():
        was = await instances.is_active_for_update(conn, instance_id)
        updated = await instances.set_active(conn, instance_id, active)
        if was is None or updated is None:
            raise InstanceNotFound(instance_id)
        if was != active:
            await audit.record(
                conn,
                actor,
                "instance.enable" if active else "instance.disable",
                target=audit.instance_target(instance_id),
                before={"is_active": was},
                after={"is_active": active},
            )
        configs = await instances.count_live_configs(conn, instance_id)
    log.info("instance %s %s by %s", instance_id, "enabled" if active else "disabled", actor)
    await poke_balancer(redis)
    health = await _health(redis, [instance_id])
    return InstanceLine(instance=updated, configs=configs, health=health[instance_id])
