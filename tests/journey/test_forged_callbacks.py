"""Forged button data through the real dispatcher: out-of-range numbers are refused
where the data is unpacked, before any handler or query sees them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import msgspec
import pytest
from redis.asyncio import Redis

from orbit.settings import Settings
from tests.support.bot_harness import BotHarness, running_bot

ADMIN = 900_000_001
USER = 5_000_001
STALE = "This button is out of date. Open the menu again: /menu"


@pytest.fixture
async def harness(db: asyncpg.Pool, redis: Redis, settings: Settings) -> AsyncIterator[BotHarness]:
    settings = msgspec.structs.replace(settings, admin_ids=(ADMIN,), rate_limit_scale=0.001)
    async with aiohttp.ClientSession() as http, running_bot(settings, db, redis, http) as bot:
        yield bot


@pytest.mark.parametrize(
    "data",
    [
        "tonpaid:9223372036854775808",  # 2**63: one past Postgres' bigint
        "cbchk:9223372036854775808",
        "cbchk:" + "9" * 40,
        "tonpaid:-1",
        "cfg:show:9223372036854775808",
        "cfg:new:18446744073709551616",
        "pm:ton:9223372036854775808",
        "tu:99999999999999999999",
        "admbc:progress::9223372036854775808",
    ],
)
async def test_a_number_out_of_range_reads_as_an_out_of_date_button(
    harness: BotHarness, db: asyncpg.Pool, data: str
) -> None:
    await harness.send(USER, "/start", first_name="Mallory")
    answer = await harness.press(USER, data)
    assert (answer.text, answer.show_alert) == (STALE, True)
    assert harness.handler_errors() == []
    assert await db.fetchval("SELECT count(*) FROM payments") == 0


async def test_the_admin_user_card_refuses_an_id_out_of_range(harness: BotHarness) -> None:
    await harness.send(ADMIN, "/start", first_name="Admin")
    for data in ("admu:show:9223372036854775808", "admu:ban:9223372036854775808"):
        answer = await harness.press(ADMIN, data)
        assert (answer.text, answer.show_alert) == (STALE, True)
    assert harness.handler_errors() == []
