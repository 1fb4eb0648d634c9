"""Fixtures for fault tests: a PRIVATE Postgres cluster and redis-server (restartable),
and the environment of a worker process pointed at them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from redis.asyncio import Redis

from orbit.connections import create_pool
from orbit.migrate import upgrade
from orbit.settings import Settings
from tests.support.private_deps import PrivatePostgres, PrivateRedis
from tests.support.processes import ROOT


@pytest.fixture(scope="session")
def private_pg() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
async def private_database_url(private_pg: PrivatePostgres) -> str:
    dsn = await private_pg.create_database("orbit")
    await asyncio.to_thread(upgrade, dsn)
    return dsn


@pytest.fixture(scope="session")
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def private_settings(private_database_url: str, private_redis: PrivateRedis) -> Settings:
    return Settings(
        database_url=private_database_url,
        redis_url=private_redis.url,
        plans_file=str(ROOT / "plans.json"),
        heartbeat_ttl_seconds=6,
        lease_ttl_seconds=3,
        shutdown_grace_seconds=5.0,
    )


@pytest.fixture
def private_env(
    private_database_url: str, private_redis: PrivateRedis, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    return {
        "BACKUP_DIR": str(tmp_path_factory.mktemp("backups")),  # a janitor's nightly backup
        "DATABASE_URL": private_database_url,
        "REDIS_URL": private_redis.url,
        "PLANS_FILE": str(ROOT / "plans.json"),
        "HEARTBEAT_TTL_SECONDS": "6",
        "LEASE_TTL_SECONDS": "3",
        "SHUTDOWN_GRACE_SECONDS": "5",
        "LOG_LEVEL": "INFO",
    }


@pytest.fixture
async def pdb(private_settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the private cluster, tables emptied. Its own connections die at each
    restart too; the pool replaces them."""
    pool = await create_pool(private_settings)
    tables = await pool.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
    )
    await pool.execute(
        "TRUNCATE " + ", ".join(f'"{t["tablename"]}"' for t in tables) + " RESTART IDENTITY CASCADE"
    )
    yield pool
    await pool.close()


@pytest.fixture
async def predis(private_redis: PrivateRedis) -> AsyncIterator[Redis]:
    client = Redis.from_url(private_redis.url, decode_responses=True)
    await client.flushdb()
    yield client
    await client.aclose()
