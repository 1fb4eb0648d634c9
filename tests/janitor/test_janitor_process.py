"""The janitor process runs its whole chore table: every chore reports in `orbit status`'s
hash, a panel edited by hand is set back by its reconciliation round, the night's backup
is made, and SIGTERM still ends it cleanly."""

from __future__ import annotations

import asyncio
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from redis.asyncio import Redis

from orbit.backup import backups
from orbit.chore_stats import read_stats
from orbit.sandbox.marzban import MarzbanEmulator
from tests.support.processes import spawn, wait_for_heartbeat

CHORES = {
    "expired_payments", "deleted_payments", "deleted_ton_transfers", "purged_outbox", "renewed",
    "reminded", "repaired_configs", "resumed_broadcasts", "reconciled", "reconciled_panels", "backed_up",
    "expired_configs", "retired_configs", "read_usage",
}  # fmt: skip


async def test_the_janitor_runs_every_chore_and_reconciles_the_panels(
    db: asyncpg.Pool, redis: Redis, base_env: dict[str, str], log_dir: Path, tmp_path: Path
) -> None:
    panel = MarzbanEmulator()
    await panel.start()
    try:
        until = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
        [name] = panel.add_users(1, prefix="o1")
        panel.set_user(name, expire=int(until.timestamp()), status="disabled")  # edited by hand
        await db.execute(
            "INSERT INTO marzban_instances (id, name, base_url, username, password)"
            " VALUES ('p1', 'p1', $1, 'admin', 'admin')",
            panel.base_url,
        )
        await db.execute("INSERT INTO users (id, language, subscription_until) VALUES (1, 'en', $1)", until)
        await db.execute(
            "INSERT INTO configs (user_id, instance_id, panel_username, name, status)"
            " VALUES (1, 'p1', $1, 'Config 1', 'active')",
            name,
        )
        env = {**base_env, "BACKUP_DIR": str(tmp_path), "BACKUP_HOUR_UTC": "0"}
        janitor = await spawn("janitor", env, log_dir)
        try:
            await wait_for_heartbeat(redis, "janitor", pid=janitor.pid, timeout=60)
            deadline = time.monotonic() + 60
            while set(await read_stats(redis)) != CHORES and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            stats = await read_stats(redis)
        finally:
            code = await janitor.stop(signal.SIGTERM)
        assert code == 0, janitor.output()[-3000:]
        assert set(stats) == CHORES, janitor.output()[-3000:]
        assert all(s.ok for s in stats.values()), {n: s.error for n, s in stats.items() if not s.ok}
        assert stats["reconciled_panels"].count == 1
        assert panel.user(name)["status"] == "active"  # type: ignore[index]
        assert stats["backed_up"].count == 1 and len(backups(tmp_path)) == 1
        assert "Traceback" not in janitor.output()
    finally:
        await panel.stop()
