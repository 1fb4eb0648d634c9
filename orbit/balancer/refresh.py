"""One balancer refresh: probe every active instance in parallel, score its
nodes, and replace `balancer:scores` and each `balancer:instance:{id}` at once.

An instance that fails (unreachable, timeout, 5xx, refused login, not a sudo
admin, inbounds it cannot read) is marked down with its error and has no members in the scores until a
later refresh succeeds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import aiohttp
import msgspec
from redis.asyncio import Redis

from orbit import keys
from orbit.marzban.client import DEFAULT_RETRIES, MarzbanClient
from orbit.marzban.errors import MarzbanError
from orbit.marzban.instances import Instance
from orbit.marzban.passwords import PanelPasswords
from orbit.marzban.placement import STALE_AFTER
from orbit.marzban.scoring import TRAFFIC_WINDOW_HOURS, InstanceScores, score_instance

log = logging.getLogger(__name__)


class Probe(msgspec.Struct, frozen=True, kw_only=True):
    instance_id: str
    scores: InstanceScores | None = None
    error: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.scores is not None


class RefreshResult(msgspec.Struct, frozen=True, kw_only=True):
    probes: list[Probe]
    members: dict[str, float]
    disabled: list[str]

    @property
    def up(self) -> list[str]:
        return [p.instance_id for p in self.probes if p.ok]

    @property
    def down(self) -> list[str]:
        return [p.instance_id for p in self.probes if not p.ok]


async def probe(client: MarzbanClient, now: datetime) -> Probe:
    """Nodes, node traffic and system stats of one panel, scored."""
    started = time.monotonic()
    instance = client.instance
    results = await asyncio.gather(
        client.get_system(),
        client.get_nodes(),
        client.get_nodes_usage(start=now - timedelta(hours=TRAFFIC_WINDOW_HOURS)),
        # Every create reads the inbounds: a panel whose inbounds we cannot read
        # cannot take a config, so it must not look healthy.
        client.get_inbounds(),
        return_exceptions=True,
    )
    seconds = time.monotonic() - started
    for result in results:
        if isinstance(result, MarzbanError):
            return Probe(instance_id=instance.id, error=str(result), seconds=seconds)
        if isinstance(result, BaseException):
            log.error("panel %s: probe crashed: %r", instance.id, result)
            return Probe(instance_id=instance.id, error=repr(result), seconds=seconds)
    system, nodes, usages, _inbounds = results
    scores = score_instance(instance, system, nodes, usages)  # type: ignore[arg-type]
    return Probe(instance_id=instance.id, scores=scores, seconds=seconds)


async def refresh(
    redis: Redis,
    http: aiohttp.ClientSession,
    registry: Sequence[Instance],
    *,
    timeout: float,
    retries: int = DEFAULT_RETRIES,
    passwords: PanelPasswords | None = None,
) -> RefreshResult:
    """Probe the active instances of `registry` and publish their scores and health."""
    active = [i for i in registry if i.is_active]
    now = datetime.now(UTC).replace(tzinfo=None)
    clients = [
        MarzbanClient(http, redis, i, timeout=timeout, retries=retries, passwords=passwords)
        for i in active
    ]
    probes = await asyncio.gather(*(probe(client, now) for client in clients))
    members: dict[str, float] = {}
    for p in probes:
        if p.scores is not None:
            members.update(p.scores.members())
    disabled = [i.id for i in registry if not i.is_active]
    await publish(redis, probes, members, disabled)
    return RefreshResult(probes=list(probes), members=members, disabled=disabled)


async def publish(
    redis: Redis, probes: Sequence[Probe], members: dict[str, float], disabled: Sequence[str]
) -> None:
    """Replace the scores and write each instance's health in one MULTI/EXEC."""
    now = time.time()
    ttl = int(STALE_AFTER)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(keys.BALANCER_SCORES)
        if members:
            pipe.zadd(keys.BALANCER_SCORES, members)
            pipe.expire(keys.BALANCER_SCORES, ttl)
        pipe.set(keys.BALANCER_REFRESHED_AT, repr(now), ex=ttl)
        for p in probes:
            key = keys.balancer_instance(p.instance_id)
            if p.scores is not None:
                pipe.hset(
                    key,
                    mapping={
                        "status": "up",
                        "error": "",
                        "checked_at": repr(now),
                        "last_ok_at": repr(now),
                        "nodes_usable": len(p.scores.nodes),
                        "nodes_total": p.scores.nodes_total,
                        "users_active": p.scores.users_active,
                    },
                )
                pipe.hdel(key, "down_since")
            else:
                down = {"status": "down", "error": p.error, "checked_at": repr(now), "nodes_usable": 0}
                pipe.hset(key, mapping=down)
                pipe.hsetnx(key, "down_since", repr(now))
        for instance_id in disabled:
            key = keys.balancer_instance(instance_id)
            pipe.hset(key, mapping={"status": "disabled", "error": "", "checked_at": repr(now)})
            pipe.hdel(key, "down_since")
        await pipe.execute()
