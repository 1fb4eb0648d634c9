"""A Bot API answer that is not Telegram's JSON (a reverse proxy's HTML 502 page):
wherever a Bot API failure is tolerated, this one is too."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import msgspec
import pytest
from aiogram.exceptions import ClientDecodeError
from redis.asyncio import Redis

from orbit.bot.commands import set_commands
from orbit.bot.process import check_token
from orbit.bot_client import create_bot
from orbit.connections import StartupError
from orbit.i18n import create_translator
from orbit.sandbox.telegram import TelegramEmulator
from orbit.sandbox.telegram_control import TelegramControl
from orbit.settings import Settings
from tests.support.bot_harness import BotHarness, running_bot
from tests.support.processes import spawn

USER = 5_300_001
TOKEN = "123456:TEST-token"


@pytest.fixture
async def emulator() -> AsyncIterator[tuple[str, TelegramControl]]:
    emulator = TelegramEmulator()
    url = await emulator.start()
    async with aiohttp.ClientSession() as http:
        yield url, TelegramControl(url, http)
    await emulator.stop()


async def test_the_emulator_answers_a_method_with_an_html_502(
    emulator: tuple[str, TelegramControl],
) -> None:
    url, control = emulator
    bot = create_bot(Settings(bot_token=TOKEN, telegram_api_url=url))
    try:
        await control.set_bad_gateway("getMe")
        with pytest.raises(ClientDecodeError):
            await bot.get_me()
        await bot.get_my_commands()  # other methods still answer
        await control.set_bad_gateway("getMe", on=False)
        assert (await bot.get_me()).id == 123456
    finally:
        await bot.session.close()


async def test_check_token_makes_it_the_one_line_startup_error(
    emulator: tuple[str, TelegramControl],
) -> None:
    url, control = emulator
    settings = Settings(bot_token=TOKEN, telegram_api_url=url)
    bot = create_bot(settings)
    await control.set_bad_gateway("getMe")
    try:
        with pytest.raises(StartupError) as caught:
            await check_token(bot, settings)
    finally:
        await bot.session.close()
    message = str(caught.value)
    assert "\n" not in message and "<html>" not in message and url in message, message


async def test_the_bot_process_exits_3_with_one_line(
    emulator: tuple[str, TelegramControl], base_env: dict[str, str], log_dir: Path
) -> None:
    url, control = emulator
    await control.set_bad_gateway("getMe")
    worker = await spawn("bot", {**base_env, "BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": url}, log_dir)
    code = await asyncio.wait_for(worker.proc.wait(), timeout=30)
    output = worker.output()
    assert code == 3, output
    assert "Traceback" not in output and "<html>" not in output, output


async def test_set_my_commands_failing_is_logged_not_fatal(
    emulator: tuple[str, TelegramControl], caplog: pytest.LogCaptureFixture
) -> None:
    url, control = emulator
    bot = create_bot(Settings(bot_token=TOKEN, telegram_api_url=url))
    await control.set_bad_gateway("setMyCommands")
    try:
        with caplog.at_level(logging.WARNING, logger="orbit.bot.commands"):
            await set_commands(bot, create_translator())
    finally:
        await bot.session.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "orbit.bot.commands"]
    assert lines and all("setMyCommands" in line and "\n" not in line for line in lines), lines


@pytest.fixture
async def gated(db: asyncpg.Pool, redis: Redis, settings: Settings) -> AsyncIterator[BotHarness]:
    settings = msgspec.structs.replace(
        settings, rate_limit_scale=0.001, free_trial_days=7, required_channel="@orbit_news"
    )
    async with aiohttp.ClientSession() as http, running_bot(settings, db, redis, http) as bot:
        yield bot


async def test_the_channel_gate_lets_the_user_through_and_counts_it(
    gated: BotHarness, db: asyncpg.Pool
) -> None:
    await gated.send(USER, "/start", first_name="Ann")
    await gated.control.set_bad_gateway("getChatMember")
    answer = await gated.press(USER, "trial")
    assert answer.answered and not answer.show_alert
    assert await db.fetchval("SELECT trial_used_at FROM users WHERE id = $1", USER) is not None
    assert gated.metrics.value("channel_gate_errors_total") == 1
    assert gated.handler_errors() == []
