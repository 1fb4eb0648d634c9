"""Fixtures for the bot-facing payment flows: users, a translator, a CryptoBot emulator
and the bot's HTTP app (with the webhook route) on a real port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import msgspec
import pytest
from aiohttp import web
from redis.asyncio import Redis

from orbit import ledger
from orbit.bot import http
from orbit.i18n import Translator, create_translator
from orbit.metrics import Metrics
from orbit.sandbox.cryptobot import CryptoBotEmulator
from orbit.settings import Settings

CRYPTOBOT_TOKEN = "12345:AAtest-cryptobot-token"

MakeUser = Callable[..., Awaitable[int]]


@pytest.fixture(scope="session")
def translator() -> Translator:
    return create_translator()


@pytest.fixture
async def cryptobot() -> AsyncIterator[CryptoBotEmulator]:
    emulator = CryptoBotEmulator(CRYPTOBOT_TOKEN, webhook_retry_delay=0.01)
    await emulator.start()
    yield emulator
    await emulator.stop()


@pytest.fixture
def settings(base_settings: Settings, cryptobot: CryptoBotEmulator) -> Settings:
    assert cryptobot.base_url is not None
    return msgspec.structs.replace(
        base_settings,
        cryptobot_token=CRYPTOBOT_TOKEN,
        cryptobot_api_url=cryptobot.base_url,
        telegram_stars_rate=1.35,
        referral_bonus=50,
        max_pending_payments=1000,  # many invoices per user here; the cap: tests/e2e/test_budgets.py
    )


@pytest.fixture
async def bot_http(
    db: asyncpg.Pool, redis: Redis, settings: Settings, translator: Translator, cryptobot: CryptoBotEmulator
) -> AsyncIterator[str]:
    """The bot's HTTP app on a free port; the emulator's webhooks go to it. Yields its base URL."""
    runner = web.AppRunner(http.create_app(db, redis, Metrics(), settings, translator))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    base = f"http://127.0.0.1:{port}"
    cryptobot.set_webhook_url(base + http.CRYPTOBOT_WEBHOOK_PATH)
    yield base
    await runner.cleanup()


@pytest.fixture
def make_user(db: asyncpg.Pool) -> MakeUser:
    async def make(user_id: int, *, language: str = "en", balance_kop: int = 0) -> int:
        await db.execute("INSERT INTO users (id, language) VALUES ($1, $2)", user_id, language)
        if balance_kop:
            async with db.acquire() as conn, conn.transaction():
                await ledger.credit(conn, user_id, balance_kop, "adjustment", f"test-seed:{user_id}")
        return user_id

    return make


async def balance(db: asyncpg.Pool, user_id: int) -> int:
    return await db.fetchval("SELECT balance_kop FROM users WHERE id = $1", user_id)
