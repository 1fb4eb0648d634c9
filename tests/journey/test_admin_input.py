"""What an admin types is echoed back escaped (the fuzz test found it was not)."""

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


@pytest.fixture
async def harness(db: asyncpg.Pool, redis: Redis, settings: Settings) -> AsyncIterator[BotHarness]:
    settings = msgspec.structs.replace(settings, admin_ids=(ADMIN,), rate_limit_scale=0.001)
    async with aiohttp.ClientSession() as http, running_bot(settings, db, redis, http) as bot:
        yield bot


@pytest.mark.parametrize(
    ("line", "echoed"),
    [("</i> balance 5", None), ("A <b>bold</b> 5", "<b>bold</b>"), ("CODE balance <x>", "<x>")],
)
async def test_a_refused_promo_line_is_shown_escaped(
    harness: BotHarness, db: asyncpg.Pool, line: str, echoed: str | None
) -> None:
    await harness.send(ADMIN, "/start", first_name="Admin")
    await harness.press(ADMIN, "adm:promo_new")
    await harness.send(ADMIN, line)
    assert harness.handler_errors() == []
    shown = (await harness.control.messages(ADMIN))[-1].text or ""
    assert shown.startswith("❌") and (echoed is None or echoed in shown), shown
    assert await db.fetchval("SELECT count(*) FROM promocodes") == 0


async def _confirm(harness: BotHarness, prefix: str) -> None:
    shown = (await harness.control.messages(ADMIN))[-1]
    buttons = [b.callback_data or "" for row in shown.buttons for b in row]
    data = next(d for d in buttons if d.startswith(prefix))
    await harness.press(ADMIN, data)


async def test_a_reason_and_a_broadcast_with_a_nul_are_stored_cleaned(
    harness: BotHarness, db: asyncpg.Pool
) -> None:
    await harness.send(ADMIN, "/start", first_name="Admin")
    await harness.press(ADMIN, f"admu:adjust:{ADMIN}")
    await harness.send(ADMIN, "+5")
    await harness.send(ADMIN, "goodwill\x00 \u202egift")
    await _confirm(harness, "admadj:")
    assert await db.fetchval("SELECT note FROM ledger") == f"admin {ADMIN}: goodwill gift"
    await harness.press(ADMIN, "adm:bc")
    await harness.press(ADMIN, "admbc:aud:all:0")
    await harness.send(ADMIN, "News\x00 today")
    await harness.press(ADMIN, "admbc:nobutton::0")
    await _confirm(harness, "admbc:send:")
    assert await db.fetchval("SELECT text FROM broadcasts") == "News today"
    assert harness.handler_errors() == []
