"""Fixtures for the payments core: users, a translator, a tonapi emulator, a TON shop."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import asyncpg
import pytest
from redis.asyncio import Redis

from orbit.i18n import Translator, create_translator
from orbit.payments import ton
from orbit.payments.ton_watch import PAGE_SIZE, PageResult, poll_wallet
from orbit.payments.tonapi import TonapiClient
from orbit.sandbox.tonapi import TonapiEmulator
from orbit.settings import Settings
from tests.support.cli import orbit

TON_WALLET = "0:" + "ab" * 32
TONAPI_KEY = "test-tonapi-key"


@pytest.fixture(scope="session")
def translator() -> Translator:
    return create_translator()


@pytest.fixture
def settings(base_settings: Settings, tonapi: TonapiEmulator) -> Settings:
    import msgspec

    return msgspec.structs.replace(
        base_settings,
        ton_address=TON_WALLET,
        tonapi_url=tonapi.base_url,
        tonapi_key=TONAPI_KEY,
        referral_bonus=50,
        # These tests open many invoices for one user; the cap has its own tests
        # (test_pending_cap.py, tests/e2e/test_budgets.py).
        max_pending_payments=1000,
    )


@pytest.fixture
async def tonapi() -> AsyncIterator[TonapiEmulator]:
    emulator = TonapiEmulator(api_key=TONAPI_KEY)
    await emulator.start()
    yield emulator
    await emulator.stop()


@pytest.fixture
def make_user(db: asyncpg.Pool) -> Callable[..., Awaitable[int]]:
    async def make(user_id: int, *, language: str = "en", referrer: int | None = None) -> int:
        await db.execute("INSERT INTO users (id, language) VALUES ($1, $2)", user_id, language)
        if referrer is not None:
            await db.execute(
                "INSERT INTO referrals (referee_id, referrer_id) VALUES ($1, $2)", user_id, referrer
            )
        return user_id

    return make


async def orbit_cli(env: dict[str, str], *args: str) -> tuple[int, str]:
    """Run `orbit ARGS...` as an operator would; return (exit code, stdout then stderr)."""
    code, out, err = await orbit(env, *args)
    return code, out + err


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def tonapi_client(http: aiohttp.ClientSession, tonapi: TonapiEmulator, **kw: object) -> TonapiClient:
    kw.setdefault("base_delay", 0.01)
    return TonapiClient(http, tonapi.base_url or "", TONAPI_KEY, **kw)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Shop:
    """TON top-ups as the bot creates them and the watcher matches them."""

    db: asyncpg.Pool
    redis: Redis
    http: aiohttp.ClientSession
    tonapi: TonapiEmulator
    translator: Translator
    settings: Settings

    async def invoice(self, user: int, rub: int, settings: Settings | None = None) -> ton.TonInvoice:
        return await ton.create_ton_payment(
            self.db, self.redis, self.http, settings or self.settings, user, rub * 100
        )

    async def paid_in_full(self, user: int, rub: int, count: int) -> list[ton.TonInvoice]:
        """`count` invoices of `rub` each, every one paid exactly, with its comment."""
        invoices = [await self.invoice(user, rub) for _ in range(count)]
        for invoice in invoices:
            self.tonapi.send_ton(TON_WALLET, invoice.nanotons, invoice.comment)
        return invoices

    async def poll(self, *, page_size: int = PAGE_SIZE) -> PageResult:
        client = tonapi_client(self.http, self.tonapi)
        return await poll_wallet(
            self.db, self.redis, client, self.translator, self.settings, page_size=page_size
        )


@pytest.fixture
def shop(
    db: asyncpg.Pool,
    redis: Redis,
    http: aiohttp.ClientSession,
    tonapi: TonapiEmulator,
    translator: Translator,
    settings: Settings,
) -> Shop:
    return Shop(db, redis, http, tonapi, translator, settings)
