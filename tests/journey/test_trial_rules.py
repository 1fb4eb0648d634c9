"""The trial button as a subscriber sees it, through the real dispatcher."""

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

USER = 5_100_001


@pytest.fixture
async def harness(db: asyncpg.Pool, redis: Redis, settings: Settings) -> AsyncIterator[BotHarness]:
    settings = msgspec.structs.replace(settings, rate_limit_scale=0.001, free_trial_days=7)
    async with aiohttp.ClientSession() as http, running_bot(settings, db, redis, http) as bot:
        yield bot


async def test_a_subscriber_is_neither_offered_nor_given_the_trial(
    harness: BotHarness, db: asyncpg.Pool
) -> None:
    await harness.send(USER, "/start", first_name="Payer")
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=20)
    await db.execute("UPDATE users SET subscription_until = $1 WHERE id = $2", until, USER)
    await harness.send(USER, "/menu")
    menu = (await harness.control.messages(USER))[-1]
    assert "🎁 Free trial" not in menu.button_texts
    answer = await harness.press(USER, "trial")
    assert answer.show_alert
    assert answer.text == "The free trial is for new users: you already have a subscription."
    row = await db.fetchrow("SELECT subscription_until, trial_used_at FROM users WHERE id = $1", USER)
    assert (row["subscription_until"], row["trial_used_at"]) == (until, None)
    assert harness.handler_errors() == []
