"""Fixtures for the Marzban tests: three emulated panels over real HTTP on
127.0.0.1, registered as instances a, b and c; users and configs rows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg
import msgspec
import pytest
from cryptography.fernet import Fernet
from redis.asyncio import Redis

from orbit.balancer.refresh import RefreshResult, refresh
from orbit.configs import queries as configs_q
from orbit.configs.queries import ConfigRecord
from orbit.marzban import instances
from orbit.marzban.instances import Instance
from orbit.marzban.provisioning import PanelDeps, new_panel_username
from orbit.sandbox.marzban import MarzbanEmulator, NodeSpec
from orbit.settings import Settings

TIMEOUT = 0.5  # per panel request in these tests


class Panels:
    """Three panels: a (2 nodes), b (1 node), c (no nodes: its core counts)."""

    def __init__(self) -> None:
        self.a = MarzbanEmulator(nodes=[NodeSpec(name="a-de"), NodeSpec(name="a-nl")])
        self.b = MarzbanEmulator(nodes=[NodeSpec(name="b-fi")])
        self.c = MarzbanEmulator()
        self.by_id = {"a": self.a, "b": self.b, "c": self.c}

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.by_id.items())

    def holders(self, username: str) -> list[str]:
        """Which panels have a user by that name."""
        return [i for i, p in self if p.user(username) is not None]


@pytest.fixture
async def panels() -> AsyncIterator[Panels]:
    group = Panels()
    for _, panel in group:
        await panel.start()
    yield group
    for _, panel in group:
        await panel.stop()


@pytest.fixture
def marzban_settings(settings: Settings) -> Settings:
    return msgspec.structs.replace(
        settings,
        marzban_timeout_seconds=TIMEOUT,
        marzban_password_key=Fernet.generate_key().decode(),  # panel passwords stored encrypted
    )


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def deps(
    db: asyncpg.Pool, redis: Redis, http: aiohttp.ClientSession, marzban_settings: Settings
) -> PanelDeps:
    return PanelDeps(db, redis, http, marzban_settings)


def instance_for(instance_id: str, panel: MarzbanEmulator, **fields: object) -> Instance:
    assert panel.base_url is not None
    values: dict[str, object] = {
        "name": f"panel {instance_id}",
        "base_url": panel.base_url,
        "username": panel.admin_username,
        "password": panel.admin_password,
        **fields,
    }
    return Instance(id=instance_id, **values)  # type: ignore[arg-type]


@pytest.fixture
async def registered(db: asyncpg.Pool, panels: Panels) -> Panels:
    """Panels a, b, c registered as active instances (priorities 0)."""
    for instance_id, panel in panels:
        assert await instances.insert_instance(db, instance_for(instance_id, panel))
    return panels


async def refresh_scores(deps: PanelDeps) -> RefreshResult:
    registry = await instances.list_instances(deps.pool)
    return await refresh(deps.redis, deps.http, registry, timeout=TIMEOUT)


async def add_user(
    db: asyncpg.Pool, user_id: int, *, days: int = 30, language: str = "en"
) -> datetime:
    until = (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0)
    await db.execute(
        "INSERT INTO users (id, language, subscription_until) VALUES ($1, $2, $3)",
        user_id,
        language,
        until,
    )
    return until


async def pending_config(
    db: asyncpg.Pool,
    user_id: int,
    instance_id: str,
    *,
    name: str = "phone",
    data_limit_bytes: int = 0,
) -> ConfigRecord:
    return await configs_q.insert_pending(
        db, user_id, instance_id, new_panel_username(user_id), name, data_limit_bytes
    )
