"""Test harness: the real Postgres and Redis, isolated per run and per test.

Each test run creates its own database (migrated to head) and takes a Redis
database number of its own (a lease in db 0, so concurrent runs on one machine
do not collide). Tests that touch state ask for `db` (a pool on freshly
truncated tables) and `redis` (a flushed Redis db).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from orbit.connections import create_pool
from orbit.migrate import upgrade
from orbit.settings import Settings
from tests.support.processes import ROOT

# Hypothesis profiles, chosen by HYPOTHESIS_PROFILE: "ci" (the default) keeps every test
# at hypothesis' usual 100 examples so the tests marked `fuzz` together stay under two
# minutes; "fuzz" (`make fuzz`) runs many more. No deadline: examples that touch Postgres
# vary with the machine's load, which is not what these tests look for. "ci" is
# derandomized: the same examples every run, so a red run is a change's doing and
# reproducible; exploring new inputs is `make fuzz`'s job (random, many more).
hypothesis_settings.register_profile("ci", max_examples=100, deadline=None, derandomize=True)
hypothesis_settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "3000")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

ADMIN_DSN = os.environ.get("ORBIT_TEST_ADMIN_DSN", "postgresql://orbit:orbit@127.0.0.1:5432/postgres")
REDIS_BASE = os.environ.get("ORBIT_TEST_REDIS", "redis://127.0.0.1:6379")
TEST_BOT_TOKEN = "123456:TEST-token"


def _dsn_for(name: str) -> str:
    base, _, _ = ADMIN_DSN.rpartition("/")
    return f"{base}/{name}"


async def create_database(name: str) -> str:
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return _dsn_for(name)


async def drop_database(name: str) -> None:
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def run_id() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
async def database_url(run_id: str) -> AsyncIterator[str]:
    name = f"orbit_test_{run_id}"
    dsn = await create_database(name)
    await asyncio.to_thread(upgrade, dsn)
    yield dsn
    await drop_database(name)


@pytest.fixture(scope="session")
def redis_url(run_id: str) -> Iterator[str]:
    """A Redis db number (1-15) leased for this run."""
    lock_client = SyncRedis.from_url(f"{REDIS_BASE}/0")
    for number in range(1, 16):
        key = f"orbit-test:db-lease:{number}"
        if lock_client.set(key, run_id, nx=True, ex=3600):
            break
    else:
        pytest.exit("no free Redis db for this test run (15 concurrent runs?)", returncode=3)
    url = f"{REDIS_BASE}/{number}"
    SyncRedis.from_url(url).flushdb()
    try:
        yield url
    finally:
        SyncRedis.from_url(url).flushdb()
        if lock_client.get(key) == run_id.encode():
            lock_client.delete(key)
        lock_client.close()


@pytest.fixture(scope="session")
def base_settings(database_url: str, redis_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        plans_file=str(ROOT / "plans.json"),
        heartbeat_ttl_seconds=6,
        lease_ttl_seconds=3,
        shutdown_grace_seconds=5.0,
    )


@pytest.fixture
def settings(base_settings: Settings) -> Settings:
    return base_settings


@pytest.fixture(scope="session")
def base_env(database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for a real worker process of this run."""
    return {
        "BACKUP_DIR": str(tmp_path_factory.mktemp("backups")),  # a janitor's nightly backup
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "PLANS_FILE": str(ROOT / "plans.json"),
        "HEARTBEAT_TTL_SECONDS": "6",
        "LEASE_TTL_SECONDS": "3",
        "SHUTDOWN_GRACE_SECONDS": "5",
        "LOG_LEVEL": "INFO",
    }


@pytest.fixture(scope="session")
async def pool(database_url: str, base_settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(base_settings)
    yield pool
    await pool.close()


@pytest.fixture
async def db(pool: asyncpg.Pool) -> asyncpg.Pool:
    """The run's pool, on tables emptied for this test."""
    tables = await pool.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
    )
    names = ", ".join(f'"{t["tablename"]}"' for t in tables)
    await pool.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    return pool


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, decode_responses=True)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    path = tmp_path / "logs"
    path.mkdir()
    return path
