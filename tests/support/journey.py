"""Helpers for the user-journey tests: waiting on rows, funding a balance."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

from orbit import ledger

T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T]], timeout: float = 10.0) -> T:
    """The first truthy result of `probe`, polled until `timeout` (then AssertionError)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still {value!r} after {timeout}s")
        await asyncio.sleep(0.05)


async def fund(db: asyncpg.Pool, user_id: int, amount_kop: int, key: str | None = None) -> None:
    """Credit a balance the way a confirmed top-up does (a ledger entry)."""
    async with db.acquire() as conn, conn.transaction():
        await ledger.credit(conn, user_id, amount_kop, "topup", key or f"test-topup:{user_id}:{amount_kop}")
