"""Factories for the Postgres pool and the Redis client, called from `run()`."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
from redis.asyncio import Redis
from redis.asyncio.sentinel import Sentinel

from orbit import redact, redis_url
from orbit.settings import Settings


class StartupError(Exception):
    """A dependency is unreachable or not in the state this code needs."""


class OrbitConnection(asyncpg.Connection):
    """A pooled connection that can skip the pool's reset on its next release.

    asyncpg resets every released connection with one more round trip (`SELECT
    pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;`). A use that ran a
    single statement outside a transaction leaves nothing to reset, so the hot
    path (`fetch_pristine`: the user rows of every update) skips it.
    """

    _skip_reset = False

    def skip_next_reset(self) -> None:
        self._skip_reset = True

    def take_skip_reset(self) -> bool:
        skip, self._skip_reset = self._skip_reset, False
        return skip


async def _reset_connection(conn: asyncpg.Connection) -> None:
    # The pool has already rolled back any open transaction (`Connection._reset`).
    if isinstance(conn, OrbitConnection) and conn.take_skip_reset():
        return
    query = conn.get_reset_query()
    if query:
        await conn.execute(query)


async def fetchrow_pristine(pool: asyncpg.Pool, query: str, *args: object) -> asyncpg.Record | None:
    """`pool.fetchrow` for one plain read: one round trip, no reset on release.

    Only for a single statement that leaves no session state behind (no SET,
    LISTEN, advisory lock, cursor or transaction).
    """
    async with pool.acquire() as conn:
        record = await conn.fetchrow(query, *args)
        _skip_next_reset(conn)
        return record


async def fetch_pristine(pool: asyncpg.Pool, query: str, *args: object) -> list[asyncpg.Record]:
    """`pool.fetch` for one plain read, on the same terms as `fetchrow_pristine`."""
    async with pool.acquire() as conn:
        records = await conn.fetch(query, *args)
        _skip_next_reset(conn)
        return records


def _skip_next_reset(conn: asyncpg.Connection) -> None:
    skip = getattr(conn, "skip_next_reset", None)  # absent on a pool not made here
    if skip is not None:
        skip()


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb columns come back as Python objects, not strings.
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(settings: Settings, *, max_size: int | None = None) -> asyncpg.Pool:
    try:
        pool = await asyncpg.create_pool(
            settings.dsn,
            min_size=settings.database_pool_min,
            max_size=max_size or settings.database_pool_max,
            init=_init_connection,
            connection_class=OrbitConnection,
            reset=_reset_connection,
            command_timeout=30,
            timeout=10,
        )
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        where = redact.location(settings.dsn)
        raise StartupError(f"Postgres is unreachable at {where}: {settings.scrub(str(exc))}") from None
    assert pool is not None
    return pool


_CLIENT_OPTIONS: dict[str, Any] = {
    "decode_responses": True,
    "socket_connect_timeout": 5,
    "socket_timeout": 10,
    "health_check_interval": 30,
}


def create_redis(settings: Settings) -> Redis:
    """A client of REDIS_URL; for `redis+sentinel://` one of the master the sentinels name,
    which finds the new master after a failover (orbit/redis_url.py)."""
    if redis_url.is_sentinel(settings.redis_url):
        target = redis_url.parse_sentinel(settings.redis_url)
        sentinel = Sentinel(
            list(target.sentinels),
            sentinel_kwargs={"socket_connect_timeout": 5, "socket_timeout": 5},
        )
        return sentinel.master_for(
            target.service,
            redis_class=Redis,
            db=target.db,
            username=target.username,
            password=target.password,
            **_CLIENT_OPTIONS,
        )
    return Redis.from_url(settings.redis_url, **_CLIENT_OPTIONS)


async def check_redis(redis: Redis, settings: Settings) -> None:
    try:
        await redis.ping()
    except Exception as exc:  # OSError, TimeoutError and redis.exceptions.*, which share no base
        where = redact.mask_url(settings.redis_url)
        raise StartupError(f"Redis is unreachable at {where}: {settings.scrub(str(exc))}") from None
