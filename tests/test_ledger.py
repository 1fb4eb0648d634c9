"""Ledger primitives against the real database."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from orbit import ledger


async def _user(db: asyncpg.Pool, user_id: int = 1) -> None:
    await db.execute("INSERT INTO users (id) VALUES ($1)", user_id)


async def test_credit_is_idempotent(db: asyncpg.Pool) -> None:
    await _user(db)
    async with db.acquire() as conn, conn.transaction():
        first = await ledger.credit(conn, 1, 10_000, "topup", "pay:1")
    async with db.acquire() as conn, conn.transaction():
        again = await ledger.credit(conn, 1, 10_000, "topup", "pay:1")
    assert not first.replayed and again.replayed
    assert again.id == first.id
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 1") == 10_000
    assert await db.fetchval("SELECT count(*) FROM ledger") == 1


async def test_debit_never_goes_negative(db: asyncpg.Pool) -> None:
    await _user(db)
    async with db.acquire() as conn, conn.transaction():
        await ledger.credit(conn, 1, 500, "topup", "pay:1")
    with pytest.raises(ledger.InsufficientFunds) as info:
        async with db.acquire() as conn, conn.transaction():
            await ledger.debit(conn, 1, 800, "purchase", "buy:1")
    assert info.value.missing_kop == 300
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 1") == 500


async def test_unknown_user_and_zero_amounts(db: asyncpg.Pool) -> None:
    async with db.acquire() as conn, conn.transaction():
        with pytest.raises(ledger.UnknownUser):
            await ledger.credit(conn, 99, 100, "topup", "x")
        with pytest.raises(ValueError):
            await ledger.debit(conn, 99, -5, "purchase", "y")


async def test_racing_debits_for_one_balance(db: asyncpg.Pool) -> None:
    await _user(db)
    async with db.acquire() as conn, conn.transaction():
        await ledger.credit(conn, 1, 1000, "topup", "pay:1")

    async def buy(n: int) -> bool:
        try:
            async with db.acquire() as conn, conn.transaction():
                await ledger.debit(conn, 1, 1000, "purchase", f"buy:{n}")
        except ledger.InsufficientFunds:
            return False
        return True

    results = await asyncio.gather(*(buy(n) for n in range(5)))
    assert sorted(results) == [False, False, False, False, True]
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 1") == 0


async def test_same_key_racing_credits_once(db: asyncpg.Pool) -> None:
    await _user(db)

    async def pay() -> ledger.Entry:
        async with db.acquire() as conn, conn.transaction():
            return await ledger.credit(conn, 1, 700, "topup", "pay:same")

    entries = await asyncio.gather(*(pay() for _ in range(5)))
    assert sum(not e.replayed for e in entries) == 1
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 1") == 700
