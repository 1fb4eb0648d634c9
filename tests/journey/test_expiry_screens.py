"""What a user sees of expiry, through the real dispatcher and an emulated panel, with
the one clock (and the panel's) moved forward: the configs show expired with a
renew button; buying inside the grace shows them active again with the same link."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg
import msgspec
import pytest
from redis.asyncio import Redis

from orbit import clock
from orbit.marzban import instances
from orbit.marzban.instances import Instance
from orbit.marzban.provisioning import PanelDeps
from orbit.sandbox.marzban import MarzbanEmulator
from orbit.settings import Settings
from orbit.subscriptions import expiry
from tests.support.bot_harness import BotHarness, running_bot
from tests.support.journey import fund

USER = 5_300_001
DAY = 86400.0


class Shift:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
async def world(
    db: asyncpg.Pool, redis: Redis, settings: Settings
) -> AsyncIterator[tuple[BotHarness, MarzbanEmulator, Shift, PanelDeps]]:
    await clock.reset(db)
    shift = Shift()
    settings = msgspec.structs.replace(settings, rate_limit_scale=0.001, marzban_timeout_seconds=2)
    async with MarzbanEmulator(clock=shift) as panel, aiohttp.ClientSession() as http:
        assert panel.base_url is not None
        await instances.insert_instance(
            db, Instance(id="s1", name="panel", base_url=panel.base_url, username="admin", password="admin")
        )
        async with running_bot(settings, db, redis, http) as harness:
            yield harness, panel, shift, PanelDeps(db, redis, http, settings)


async def _last(harness: BotHarness):  # type: ignore[no-untyped-def]
    return (await harness.control.messages(USER))[-1]


async def test_an_ended_subscription_shows_expired_configs_and_a_renewal_brings_them_back(
    world: tuple[BotHarness, MarzbanEmulator, Shift, PanelDeps], db: asyncpg.Pool
) -> None:
    harness, panel, shift, deps = world
    await harness.send(USER, "/start", first_name="Ann")
    until = datetime.now(UTC) + timedelta(days=1)
    await db.execute("UPDATE users SET subscription_until = $1 WHERE id = $2", until, USER)
    await harness.press(USER, "cfg:new:0")
    link, username = await db.fetchrow(
        "SELECT subscription_url, panel_username FROM configs WHERE user_id = $1", USER
    )
    assert link
    await harness.press(USER, "m:configs")
    shown = await _last(harness)
    assert "✅ active" in (shown.text or ""), shown.text

    await clock.advance(db, 2 * DAY)
    shift.offset += 2 * DAY
    assert (await expiry.expire_configs(deps)).changed == 1
    assert panel.user(username)["status"] == "expired"
    await harness.press(USER, "m:configs")
    shown = await _last(harness)
    assert "⌛ expired" in (shown.text or "") and "no active subscription" in (shown.text or "")
    assert shown.button("🛒 Buy a plan").callback_data == "m:buy"

    # Renewed inside the grace: active again at once, with the same link.
    await fund(db, USER, 100_000)
    await harness.press(USER, "plan:1m")
    confirm = next(b for row in (await _last(harness)).buttons for b in row if b.text.startswith("✅"))
    assert confirm.callback_data is not None
    await harness.press(USER, confirm.callback_data)
    await harness.press(USER, "m:configs")
    shown = await _last(harness)
    assert "✅ active" in (shown.text or ""), shown.text
    assert panel.user(username)["status"] == "active"
    assert await db.fetchval("SELECT subscription_url FROM configs WHERE user_id = $1", USER) == link
    assert harness.handler_errors() == []
