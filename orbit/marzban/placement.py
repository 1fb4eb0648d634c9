"""Where a new config goes: the instance of the lowest node score.

`choose_instance` makes one Redis round trip (the balancer's `balancer:scores`
and `balancer:refreshed_at`, pipelined) and never calls a panel. When the
scores are missing or stale (the balancer is down) it falls back to the active
instance with the highest priority and logs a warning.
"""

from __future__ import annotations

import logging
import time

import asyncpg
import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from orbit import keys
from orbit.marzban import instances
from orbit.marzban.errors import NoInstanceAvailable

log = logging.getLogger(__name__)

BALANCER_INTERVAL = 60.0
# Scores older than three missed refreshes are not trusted. The balancer also
# gives the keys this TTL, so a dead balancer's scores disappear by themselves.
STALE_AFTER = 3 * BALANCER_INTERVAL


def member(instance_id: str, node: str) -> str:
    """A `balancer:scores` member. Instance ids cannot contain ':', node names may."""
    return f"{instance_id}:{node}"


def instance_of(member_name: str) -> str:
    return member_name.split(":", 1)[0]


async def choose_instance(
    redis: Redis,
    pool: asyncpg.Pool | asyncpg.Connection,
    *,
    exclude: frozenset[str] = frozenset(),
) -> str:
    """The id of the instance to put a new panel user on.

    `exclude` names instances already tried. Raises `NoInstanceAvailable` when
    fresh scores leave nothing, or when no active instance is registered.
    `pool` is only used by the fallback (a connection works too).
    """
    try:
        async with redis.pipeline(transaction=False) as pipe:
            pipe.zrange(keys.BALANCER_SCORES, 0, -1, withscores=True)
            pipe.get(keys.BALANCER_REFRESHED_AT)
            ranked, refreshed_at = await pipe.execute()
    except (RedisError, OSError) as exc:
        return await _fallback(pool, exclude, f"Redis is unreachable ({exc})")
    age = None if refreshed_at is None else time.time() - float(refreshed_at)
    if age is None or age > STALE_AFTER:
        reason = "no scores" if age is None else f"scores are {age:.0f}s old"
        return await _fallback(pool, exclude, f"{reason}: is the balancer running?")
    for name, _score in ranked:  # lowest score first
        instance_id = instance_of(name)
        if instance_id not in exclude:
            return instance_id
    raise NoInstanceAvailable(
        "no healthy instance left" + (f" (tried {', '.join(sorted(exclude))})" if exclude else "")
    )


async def _fallback(pool: asyncpg.Pool | asyncpg.Connection, exclude: frozenset[str], reason: str) -> str:
    instance_id = await instances.top_priority_instance(pool, exclude)
    if instance_id is None:
        tried = f" (tried {', '.join(sorted(exclude))})" if exclude else ""
        raise NoInstanceAvailable(f"no active instance left{tried}")
    log.warning("placement without scores (%s): using %s, the top-priority instance", reason, instance_id)
    return instance_id


async def poke_balancer(redis: Redis) -> None:
    """Ask the balancer for a refresh now (a panel failed during a request)."""
    try:
        await redis.publish(keys.channel(redis, keys.BALANCER_POKE_CHANNEL), "1")
    except (RedisError, OSError) as exc:  # its timer refreshes anyway
        log.warning("balancer poke not published: %s", exc)


class InstanceHealth(msgspec.Struct, frozen=True, kw_only=True):
    """`balancer:instance:{id}` as the balancer writes it."""

    status: str  # up, down, disabled
    error: str = ""
    checked_at: float = 0.0
    last_ok_at: float | None = None
    down_since: float | None = None
    nodes_usable: int = 0
    nodes_total: int = 0
    users_active: int = 0

    @property
    def fresh(self) -> bool:
        return time.time() - self.checked_at <= STALE_AFTER

    @property
    def healthy(self) -> bool:
        return self.status == "up" and self.fresh


async def read_health(redis: Redis, instance_ids: list[str]) -> dict[str, InstanceHealth | None]:
    """Each instance's last health as the balancer saw it (None: never seen)."""
    async with redis.pipeline(transaction=False) as pipe:
        for instance_id in instance_ids:
            pipe.hgetall(keys.balancer_instance(instance_id))
        raw = await pipe.execute()
    health: dict[str, InstanceHealth | None] = {}
    for instance_id, fields in zip(instance_ids, raw, strict=True):
        if not fields or "status" not in fields:
            health[instance_id] = None
            continue
        health[instance_id] = msgspec.convert(
            {k: v for k, v in fields.items() if v != ""}, InstanceHealth, strict=False
        )
    return health
