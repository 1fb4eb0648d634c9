"""Marzban instances as the admin panel shows them; switching one on or off.

Draining is `orbit.marzban.drain.drain_instance`, called as is."""

from __future__ import annotations

import logging

import asyncpg
import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from orbit import audit
from orbit.marzban import instances
from orbit.marzban.errors import InstanceNotFound
from orbit.marzban.instances import Instance
from orbit.marzban.placement import InstanceHealth, poke_balancer, read_health

log = logging.getLogger(__name__)


class InstanceLine(msgspec.Struct, frozen=True, kw_only=True):
    instance: Instance
    configs: int  # live configs on it
    health: InstanceHealth | None  # as the balancer last saw it; None: never, or Redis is down


async def _health(redis: Redis, ids: list[str]) -> dict[str, InstanceHealth | None]:
    try:
        return await read_health(redis, ids)
    except (RedisError, OSError) as exc:  # the list is still worth showing without it
        log.warning("instance health unreadable: %s", exc)
        return dict.fromkeys(ids)


async def instance_overview(pool: asyncpg.Pool, redis: Redis) -> list[InstanceLine]:
    registry = await instances.list_instances(pool)
    counts = await instances.live_config_counts(pool)
    health = await _health(redis, [i.id for i in registry])
    return [InstanceLine(instance=i, configs=counts.get(i.id, 0), health=health[i.id]) for i in registry]


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
                target=f"instance:{instance_id}",
                before={"is_active": was},
                after={"is_active": active},
            )
        configs = await instances.count_live_configs(conn, instance_id)
    log.info("instance %s %s by %s", instance_id, "enabled" if active else "disabled", actor)
    await poke_balancer(redis)
    health = await _health(redis, [instance_id])
    return InstanceLine(instance=updated, configs=configs, health=health[instance_id])
