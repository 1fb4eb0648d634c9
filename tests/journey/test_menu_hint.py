"""Unknown commands and free text outside a flow get a short hint to /menu, at most
one per user per interval however many messages a flood holds."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import msgspec
import pytest
from redis.asyncio import Redis

from orbit.settings import Settings
from tests.support.bot_harness import BotHarness, running_bot

ANN, BOB = 5_400_001, 5_400_002
HINT = "I did not understand that. Open the menu: /menu"
HINT_RU = "Не понял сообщение. Откройте меню: /menu"


@pytest.fixture
async def harness(db: asyncpg.Pool, redis: Redis, settings: Settings) -> AsyncIterator[BotHarness]:
    # Real rate limits: the hint's interval is what keeps a flood from being answered.
    settings = msgspec.structs.replace(settings, rate_limit_scale=1.0)
    async with aiohttp.ClientSession() as http, running_bot(settings, db, redis, http) as bot:
        yield bot


async def _texts(harness: BotHarness, user_id: int) -> list[str]:
    return [m.text or "" for m in await harness.control.messages(user_id) if m.from_bot]


async def test_free_text_and_unknown_commands_get_one_hint_per_interval(harness: BotHarness) -> None:
    await harness.send(ANN, "/start", first_name="Ann")
    before = len(await _texts(harness, ANN))
    await harness.send(ANN, "hello?")
    assert (await _texts(harness, ANN))[before:] == [HINT]
    for text in ("/frobnicate", "hello??", "/admin", "x" * 4000):
        await harness.send(ANN, text)
    assert (await _texts(harness, ANN)).count(HINT) == 1
    # Another user, in Russian, even one who never pressed /start.
    await harness.send(BOB, "/wat", first_name="Bob", language_code="ru")
    assert await _texts(harness, BOB) == [HINT_RU]
    assert harness.handler_errors() == []


async def test_text_inside_a_flow_is_the_flows(harness: BotHarness, db: asyncpg.Pool) -> None:
    await harness.send(ANN, "/start", first_name="Ann")
    await harness.press(ANN, "m:promo")
    before = len(await _texts(harness, ANN))
    await harness.send(ANN, "NOSUCHCODE")
    shown = (await _texts(harness, ANN))[before:]
    assert shown and HINT not in shown
    assert await db.fetchval("SELECT count(*) FROM promocode_activations") == 0
