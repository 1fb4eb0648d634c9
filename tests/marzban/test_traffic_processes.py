"""Traffic notices with real janitor processes: two at once, one killed mid-batch;
every config still gets exactly one notice per level and period."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import asyncpg
import pytest
from redis.asyncio import Redis

from orbit.keys import janitor_chore_claim
from tests.marzban.conftest import Panels
from tests.support.processes import spawn

GB = 1024**3
PER_PANEL = 210  # two pages of the janitor's 200 on each panel


async def _seed(db: asyncpg.Pool, panels: Panels) -> int:
    """Users each with one 10 GB config at 95 % on every panel; how many configs."""
    rows = [
        (instance_id, name)
        for instance_id, panel in panels
        for name in panel.add_users(PER_PANEL, prefix=f"t{instance_id}", used_traffic=95 * GB // 10)
    ]
    await db.execute(
        "INSERT INTO users (id, subscription_until)"
        " SELECT n, now() + interval '30 days' FROM generate_series(1, $1) n",
        len(rows),
    )
    await db.executemany(
        "INSERT INTO configs (user_id, instance_id, panel_username, name, status,"
        " data_limit_bytes, subscription_url) VALUES ($1, $2, $3, 'Phone', 'active', $4, 'x')",
        [(n, i, name, 10 * GB) for n, (i, name) in enumerate(rows, 1)],
    )
    return len(rows)


async def _count(db: asyncpg.Pool) -> int:
    return int(await db.fetchval("SELECT count(*) FROM outbox WHERE kind = 'traffic'"))


# Process start-up takes seconds on a loaded machine; three of them here.
@pytest.mark.timeout(400)
async def test_two_janitors_one_killed_mid_batch_give_one_notice_each(
    db: asyncpg.Pool, redis: Redis, registered: Panels, base_env: dict[str, str], log_dir: Path
) -> None:
    total = await _seed(db, registered)
    for _, panel in registered:
        panel.slow(0.4, method="GET", path="/api/users")  # a page takes a while: room to kill
    first = await spawn("janitor", base_env, log_dir)
    second = await spawn("janitor", base_env, log_dir)
    try:
        deadline = time.monotonic() + 150
        while await _count(db) == 0:  # the first page is committed somewhere
            assert time.monotonic() < deadline, first.output()
            await asyncio.sleep(0.05)
        await first.stop(signal.SIGKILL)  # mid-batch: pages still to read
        assert await _count(db) < total
        while await _count(db) < total:
            assert time.monotonic() < deadline, second.output()
            await asyncio.sleep(0.1)
        # A third janitor's usage round afterwards changes nothing. Each chore runs once
        # per interval across janitors (orbit/janitor/schedule.py): release the claim.
        await second.stop()
        await redis.delete(janitor_chore_claim("read_usage"))
        third = await spawn("janitor", base_env, log_dir)
        try:
            deadline = time.monotonic() + 150
            while "chore read_usage:" not in third.output():
                assert time.monotonic() < deadline, third.output()
                await asyncio.sleep(0.1)
        finally:
            await third.stop()
    finally:
        await second.stop()
        await first.stop(signal.SIGKILL)
    keys = [r["dedup_key"] for r in await db.fetch("SELECT dedup_key FROM outbox WHERE kind = 'traffic'")]
    assert len(keys) == total
    ids = await db.fetch("SELECT id FROM configs ORDER BY id")
    assert sorted(keys) == sorted(f"traffic:{r['id']}:0:90" for r in ids)
    stored = await db.fetchrow(
        "SELECT count(*) FILTER (WHERE usage_bytes = $1) AS read, max(usage_period) AS periods FROM configs",
        95 * GB // 10,
    )
    assert stored["read"] == total and stored["periods"] == 0
