"""Fixtures for the configs and promo business tests: two emulated panels over real
HTTP, registered as instances p1 (preferred) and p2, and users with or without a
subscription."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg
import msgspec
import pytest
from redis.asyncio import Redis

from orbit import ledger
from orbit.marzban.provisioning import PanelDeps
from orbit.plans import Plans, load_plans
from orbit.sandbox.marzban import MarzbanEmulator
from orbit.settings import Settings


class Panels:
    def __init__(self) -> None:
        self.p1 = MarzbanEmulator()
        self.p2 = MarzbanEmulator()
        self.by_id = {"p1": self.p1, "p2": self.p2}

    def users(self) -> dict[str, list[str]]:
        """Panel id -> the usernames it holds."""
        return {pid: sorted(panel.usernames) for pid, panel in self.by_id.items()}

    def holder(self, username: str) -> str | None:
        held = [pid for pid, panel in self.by_id.items() if panel.user(username) is not None]
        assert len(held) <= 1, f"{username} is on {held}"
        return held[0] if held else None


@pytest.fixture
async def panels(db: asyncpg.Pool) -> AsyncIterator[Panels]:
    group = Panels()
    for priority, (panel_id, panel) in zip((20, 10), group.by_id.items(), strict=True):
        url = await panel.start()
        await db.execute(
            "INSERT INTO marzban_instances (id, name, base_url, username, password, priority)"
            " VALUES ($1, $1, $2, $3, $4, $5)",
            panel_id, url, panel.admin_username, panel.admin_password, priority,
        )  # fmt: skip
    yield group
    for panel in group.by_id.values():
        await panel.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def deps(
    db: asyncpg.Pool, redis: Redis, http: aiohttp.ClientSession, settings: Settings, panels: Panels
) -> PanelDeps:
    # A panel that does not answer fails fast here.
    fast = msgspec.structs.replace(settings, marzban_timeout_seconds=0.5)
    return PanelDeps(db, redis, http, fast)


@pytest.fixture
def plans(settings: Settings) -> Plans:
    return load_plans(settings)


async def add_user(
    db: asyncpg.Pool, user_id: int, *, days: int | None = 30, balance_kop: int = 0
) -> datetime | None:
    """A user whose subscription ends in `days` (None: never had one; negative: ended)."""
    until = None if days is None else (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0)
    await db.execute(
        "INSERT INTO users (id, subscription_until) VALUES ($1, $2)", user_id, until
    )
    if balance_kop:
        async with db.acquire() as conn, conn.transaction():
            await ledger.credit(conn, user_id, balance_kop, "adjustment", f"test:{user_id}")
    return until
