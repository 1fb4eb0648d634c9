"""The one clock: orbit_now() follows the offset; it moves forward only."""

from __future__ import annotations

import math

import asyncpg
import pytest

from orbit import clock


async def test_orbit_now_follows_the_offset(db: asyncpg.Pool) -> None:
    before = await clock.now(db)
    assert abs((before - await db.fetchval("SELECT now()")).total_seconds()) < 5
    assert await clock.advance(db, 3 * 86400) == 3 * 86400
    assert await clock.advance(db, 60) == 3 * 86400 + 60
    moved = await clock.now(db)
    assert 3 * 86400 + 60 <= (moved - before).total_seconds() < 3 * 86400 + 65
    assert await clock.offset(db) == 3 * 86400 + 60
    await clock.reset(db)
    assert await clock.offset(db) == 0


@pytest.mark.parametrize("seconds", [-1.0, math.nan])
async def test_the_clock_never_moves_back(db: asyncpg.Pool, seconds: float) -> None:
    with pytest.raises(ValueError):
        await clock.advance(db, seconds)
    assert await clock.offset(db) == 0


async def test_an_index_still_serves_a_comparison_with_orbit_now(db: asyncpg.Pool) -> None:
    async with db.acquire() as conn:
        await conn.execute("SET enable_seqscan = off")
        rows = await conn.fetch(
            "EXPLAIN SELECT id FROM payments WHERE status = 'pending' AND expires_at < orbit_now()"
        )
        await conn.execute("RESET enable_seqscan")
    plan = "\n".join(row[0] for row in rows)
    assert "Seq Scan" not in plan, plan
