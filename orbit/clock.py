"""The one clock: Postgres's `orbit_now()` (now() plus a movable offset).

Code that compares with the present (expiry, reminders, grace, payment windows)
uses `orbit_now()` in SQL, or `now(conn)` when Python needs the instant, never the
host's clock, so tests and the sandbox can move time forward without sleeping.
Production never moves it: the offset is 0 and `orbit_now()` is `now()`.
Pacing against outside limits (Telegram's send rate, HTTP timeouts) is real time
and stays on the host's monotonic clock.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

Executor = asyncpg.Pool | asyncpg.Connection


async def now(db: Executor) -> datetime:
    """The present as the database sees it (with the offset), timezone-aware."""
    return await db.fetchval("SELECT orbit_now()")


async def offset(db: Executor) -> float:
    """Seconds the clock runs ahead of the real time."""
    value = await db.fetchval("SELECT offset_seconds FROM clock WHERE singleton")
    return float(value or 0.0)


async def advance(db: Executor, seconds: float) -> float:
    """Move the clock forward (never back: rows written meanwhile stay in order); the new offset."""
    if not seconds >= 0:  # also refuses NaN
        raise ValueError("the clock only moves forward")
    return await db.fetchval(
        "INSERT INTO clock (singleton, offset_seconds) VALUES (true, $1)"
        " ON CONFLICT (singleton) DO UPDATE SET offset_seconds = clock.offset_seconds + $1"
        " RETURNING offset_seconds",
        float(seconds),
    )


async def reset(db: Executor) -> None:
    """Back to real time (a fresh sandbox; tests)."""
    await db.execute("UPDATE clock SET offset_seconds = 0 WHERE singleton")
