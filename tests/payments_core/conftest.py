"""Fixtures for the payments core: users, a translator, a tonapi emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from orbit.i18n import Translator, create_translator
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
