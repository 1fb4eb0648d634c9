"""Fixtures for the outbox sender: a Telegram emulator, a Bot pointed at it, senders."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import aiohttp
import asyncpg
import pytest
from aiogram import Bot
from redis.asyncio import Redis

from orbit.bot_client import create_bot
from orbit.outbox.limiter import SendLimiter
from orbit.outbox.sender import OutboxSender
from orbit.sandbox.telegram import TelegramEmulator
from orbit.sandbox.telegram_control import TelegramControl
from orbit.settings import Settings

BOT_TOKEN = "123456:TEST-token"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def telegram() -> AsyncIterator[TelegramEmulator]:
    emulator = TelegramEmulator()
    await emulator.start()
    yield emulator
    await emulator.stop()


@pytest.fixture
def control(telegram: TelegramEmulator, http: aiohttp.ClientSession) -> TelegramControl:
    return TelegramControl(telegram.base_url, http)


@pytest.fixture
async def bot(telegram: TelegramEmulator, settings: Settings) -> AsyncIterator[Bot]:
    import msgspec

    bot = create_bot(
        msgspec.structs.replace(settings, bot_token=BOT_TOKEN, telegram_api_url=telegram.base_url)
    )
    yield bot
    await bot.session.close()


SenderFactory = Callable[..., OutboxSender]


@pytest.fixture
def make_sender(bot: Bot, db: asyncpg.Pool, redis: Redis) -> SenderFactory:
    def make(
        rate: float = 30.0,
        *,
        lanes: int = 6,
        stopping: asyncio.Event | None = None,
        chat_interval: float = 1.0,
    ) -> OutboxSender:
        limiter = SendLimiter(redis, rate, chat_interval=chat_interval)
        return OutboxSender(bot, db, limiter, stopping or asyncio.Event(), lanes=lanes)

    return make


async def add_users(db: asyncpg.Pool, control: TelegramControl, *user_ids: int) -> None:
    """Users known to both the database and the emulator (they wrote to the bot)."""
    await db.executemany(
        "INSERT INTO users (id) VALUES ($1) ON CONFLICT DO NOTHING", [(u,) for u in user_ids]
    )
    for user_id in user_ids:
        await control.unblock(user_id)


async def enqueue(db: asyncpg.Pool, chat_id: int, text: str, **columns: object) -> int:
    names = ["chat_id", "kind", "text", *columns]
    values = [chat_id, "test", text, *columns.values()]
    placeholders = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    return await db.fetchval(
        f"INSERT INTO outbox ({', '.join(names)}) VALUES ({placeholders}) RETURNING id", *values
    )
