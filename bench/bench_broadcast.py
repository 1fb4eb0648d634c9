"""Broadcast fan-out: queueing one outbox row per recipient, and what it does to the
notifications queued while the broadcast goes out.

*orbit* is `orbit.admin.broadcasts.create_broadcast` (one `INSERT ... SELECT` per
batch of users, each batch its own transaction, rows spread over time at 80 % of
the sender's rate). *per recipient* calls `outbox.enqueue` once per user, each in
its own transaction (what a loop over users in a handler does). Every run is
checked: exactly one row per reachable user (blocked and banned users skipped).

*Rows ahead of a notification*: a payment confirmation queued the moment the
fan-out is done; how many broadcast rows the sender claims before it (the
claim order is `next_attempt_at, id`), and so how long it waits at 29.4/s.
Without the spreading (*plain FIFO*: every row due at once) it waits behind the
whole broadcast.

    .venv/bin/python -m bench.bench_broadcast [--users 100000] [--write]

Needs Postgres (ORBIT_TEST_ADMIN_DSN, default postgresql://orbit:orbit@127.0.0.1:5432/postgres;
a database of its own is created, migrated and dropped) and Redis (REDIS_URL,
default redis://127.0.0.1:6379/15; only `orbit:outbox` is published to).
`--write` replaces this benchmark's section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import msgspec
from redis.asyncio import Redis

from bench import report
from orbit import outbox
from orbit.admin.broadcasts import RATE_SHARE, create_broadcast
from orbit.connections import create_pool
from orbit.migrate import upgrade
from orbit.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "BENCHMARKS.md"
SECTION = "## Broadcast fan-out: batched INSERT ... SELECT vs one enqueue per recipient"
COMMAND = ".venv/bin/python -m bench.bench_broadcast --write"
ADMIN_DSN = os.environ.get("ORBIT_TEST_ADMIN_DSN", "postgresql://orbit:orbit@127.0.0.1:5432/postgres")
RATE = 29.4  # the sender's default OUTBOX_RATE_PER_SECOND
NAIVE_USERS = 20_000  # one transaction per row is slow: measured on fewer users

# Rows a sender claims before the notification: the claim's own order.
AHEAD = """
SELECT count(*) FROM outbox
WHERE status = 'pending' AND broadcast_id IS NOT NULL
  AND (next_attempt_at, id) < (SELECT next_attempt_at, id FROM outbox WHERE id = $1)
"""


class Result(msgspec.Struct):
    way: str
    users: int
    rows: int
    seconds: float
    ahead: int | None = None  # broadcast rows claimed before a notification queued after the fan-out


def _dsn_for(name: str) -> str:
    return f"{ADMIN_DSN.rpartition('/')[0]}/{name}"


async def _fill(pool: asyncpg.Pool, users: int) -> int:
    """`users` users, every 20th blocked the bot, every 100th banned; returns the reachable count."""
    await pool.execute("TRUNCATE users, outbox, broadcasts RESTART IDENTITY CASCADE")
    await pool.execute(
        "INSERT INTO users (id, created_at, blocked_at, is_banned)"
        " SELECT g, now() - interval '1 day', CASE WHEN g % 20 = 0 THEN now() END, g % 100 = 1"
        " FROM generate_series(1, $1::bigint) g",
        users,
    )
    return int(await pool.fetchval("SELECT count(*) FROM users WHERE blocked_at IS NULL AND NOT is_banned"))


async def _notification_now(pool: asyncpg.Pool) -> int:
    """Queue a notification the moment the fan-out is done; its claim position."""
    row_id = await pool.fetchval(
        "INSERT INTO outbox (chat_id, kind, text) VALUES (2, 'payment', 'paid') RETURNING id"
    )
    return int(await pool.fetchval(AHEAD, row_id))


async def _orbit(pool: asyncpg.Pool, redis: Redis, users: int, batch: int) -> Result:
    reachable = await _fill(pool, users)
    started = time.perf_counter()
    done = await create_broadcast(
        pool,
        redis,
        "Hello",
        created_by=1,
        action_key=uuid.uuid4().hex,
        rate_per_second=RATE,
        batch_size=batch,
    )
    seconds = time.perf_counter() - started
    assert done.queued == reachable, (done.queued, reachable)
    ahead = await _notification_now(pool)
    return Result(f"orbit, batches of {batch}", users, done.queued, seconds, ahead)


async def _plain_fifo(pool: asyncpg.Pool, redis: Redis, users: int) -> Result:
    """The orbit fan-out with every row due at once (as if not spread)."""
    reachable = await _fill(pool, users)
    started = time.perf_counter()
    done = await create_broadcast(
        pool, redis, "Hello", created_by=1, action_key=uuid.uuid4().hex, rate_per_second=1e9, batch_size=1000
    )
    seconds = time.perf_counter() - started
    assert done.queued == reachable
    ahead = await _notification_now(pool)
    return Result("plain FIFO (no spreading)", users, done.queued, seconds, ahead)


async def _per_recipient(pool: asyncpg.Pool, redis: Redis, users: int) -> Result:
    reachable = await _fill(pool, users)
    started = time.perf_counter()
    broadcast_id = await pool.fetchval(
        "INSERT INTO broadcasts (text, created_by) VALUES ('Hello', 1) RETURNING id"
    )
    ids = [r["id"] for r in await pool.fetch(
        "SELECT id FROM users WHERE blocked_at IS NULL AND NOT is_banned ORDER BY id")]  # fmt: skip
    async with pool.acquire() as conn:
        for user_id in ids:
            async with conn.transaction():
                await outbox.enqueue(
                    conn, user_id, "broadcast", "Hello",
                    dedup_key=f"broadcast:{broadcast_id}:{user_id}", broadcast_id=broadcast_id,
                )  # fmt: skip
    await outbox.wake_sender(redis)
    seconds = time.perf_counter() - started
    rows = int(await pool.fetchval("SELECT count(*) FROM outbox WHERE broadcast_id = $1", broadcast_id))
    assert rows == reachable
    return Result("per recipient (enqueue + commit each)", users, rows, seconds)


async def run(args: argparse.Namespace) -> list[Result]:
    name = f"orbit_bench_bc_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        dsn = _dsn_for(name)
        await asyncio.to_thread(upgrade, dsn)
        pool = await create_pool(Settings(database_url=dsn), max_size=4)
        redis = Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15"))
        try:
            results = [
                await _orbit(pool, redis, args.users, 1000),
                await _orbit(pool, redis, args.users, 10_000),
                await _plain_fifo(pool, redis, args.users),
                await _orbit(pool, redis, NAIVE_USERS, 1000),
                await _per_recipient(pool, redis, NAIVE_USERS),
            ]
        finally:
            await redis.aclose()
            await pool.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return results


def render(results: list[Result]) -> str:
    load = os.getloadavg()[0]
    lines = [
        SECTION,
        "",
        (__doc__ or "").split("\n\n")[1].replace("\n", " ").strip(),
        "",
        (__doc__ or "").split("\n\n")[2].replace("\n", " ").strip(),
        "",
        f"Command: `{COMMAND}`. Users: every 20th has blocked the bot, every 100th is banned.",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()},"
        f" {datetime.now(UTC):%Y-%m-%d}; load average {load:.1f} at the end (a shared machine).",
        "",
        "| way | users | rows queued | seconds | rows/s"
        " | rows ahead of a notification queued then | its wait at 29.4/s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        ahead = "-" if r.ahead is None else f"{r.ahead:,}"
        wait = "-" if r.ahead is None else f"{r.ahead / RATE:.1f} s"
        lines.append(
            f"| {r.way} | {r.users:,} | {r.rows:,} | {r.seconds:.2f} | {r.rows / r.seconds:,.0f}"
            f" | {ahead} | {wait} |"
        )
    lines += [
        "",
        f"Reading: the batched fan-out queues a whole audience in seconds, holding no"
        f" transaction longer than one batch; row by row it is the commits that cost. Broadcast rows"
        f" are spread at {RATE_SHARE:.0%} of the sender's rate, so a notification queued meanwhile"
        f" waits behind the rows due by then (about the fan-out's own duration) instead of the whole"
        f" broadcast.",
        "",
    ]
    return "\n".join(lines)


def write(text: str) -> None:
    report.write_section(text, SECTION)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    args = parser.parse_args()
    text = render(asyncio.run(run(args)))
    print(text)  # noqa: T201
    if args.write:
        write(text)
        print(f"wrote {BENCHMARKS}")  # noqa: T201


if __name__ == "__main__":
    main()
