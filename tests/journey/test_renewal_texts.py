"""What the screens say about auto-renewal, through the real dispatcher."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg
import msgspec
import pytest
from redis.asyncio import Redis

from orbit.settings import Settings
from tests.support.bot_harness import BotHarness, running_bot
from tests.support.journey import fund

USER = 5_200_001
RENEWS = "🔁 Auto-renewal is on"


@pytest.fixture
async def harness(db: asyncpg.Pool, redis: Redis, settings: Settings) -> AsyncIterator[BotHarness]:
    settings = msgspec.structs.replace(settings, rate_limit_scale=0.001, free_trial_days=7)
    async with aiohttp.ClientSession() as http, running_bot(settings, db, redis, http) as bot:
        yield bot


async def _shown(harness: BotHarness) -> str:
    return (await harness.control.messages(USER))[-1].text or ""


async def test_the_purchase_screen_says_auto_renewal_is_on_and_how_to_switch_it_off(
    harness: BotHarness, db: asyncpg.Pool
) -> None:
    await harness.send(USER, "/start", first_name="Ann")
    await fund(db, USER, 50_000)
    await harness.press(USER, "plan:1m")
    text = await _shown(harness)
    assert RENEWS in text and "📅 Subscription" in text, text
    await harness.press(USER, "renew:0")
    await harness.press(USER, "plan:1m")
    assert RENEWS not in await _shown(harness)
    assert harness.handler_errors() == []


async def test_a_trial_is_not_said_to_buy_the_same_plan_again(
    harness: BotHarness, db: asyncpg.Pool
) -> None:
    await harness.send(USER, "/start", first_name="Ann")
    await harness.press(USER, "trial")
    await harness.press(USER, "m:sub")
    text = await _shown(harness)
    assert "Free trial until" in text
    assert "same plan" not in text, text
    assert "A trial is not renewed" in text
    # A buyer is told what renews and when.
    until = datetime.now(UTC) + timedelta(days=10)
    await db.execute(
        "INSERT INTO purchases (user_id, plan_id, days, price_kop, starts_at, ends_at)"
        " VALUES ($1, '1m', 30, 10000, now(), $2)", USER, until,
    )
    await db.execute("UPDATE users SET subscription_until = $1 WHERE id = $2", until, USER)
    await harness.press(USER, "m:main")
    await harness.press(USER, "m:sub")
    assert "before the subscription ends, the same plan is bought again" in await _shown(harness)
