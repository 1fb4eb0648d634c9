"""Each chore on its own interval (orbit/janitor/schedule.py): a failing or hanging chore
never starves the others, a chore runs once per interval across janitors, and its last
run, duration, count and error are what `orbit status` shows."""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg
import msgspec
import pytest
from redis.asyncio import Redis

from orbit import health
from orbit.chore_stats import ChoreStats, read_stats
from orbit.cli import status as status_cli
from orbit.janitor.schedule import Chore, ChoreFailed, Scheduler
from tests.support.cli import orbit


async def test_a_failing_or_hanging_chore_never_starves_the_others(redis: Redis) -> None:
    stopping = asyncio.Event()
    runs = 0
    enough = asyncio.Event()

    async def broken() -> int:
        raise RuntimeError("boom")

    async def hangs() -> int:
        await asyncio.Event().wait()
        return 0

    async def counts() -> int:
        nonlocal runs
        runs += 1
        if runs >= 3:
            enough.set()
        return 7

    table = [Chore("broken", broken, 0.05), Chore("hangs", hangs, 0.05), Chore("counts", counts, 0.05)]
    serving = asyncio.create_task(Scheduler(redis, table, stopping).serve())
    try:
        await asyncio.wait_for(enough.wait(), timeout=20)
    finally:
        stopping.set()
        serving.cancel()
    stats = await read_stats(redis)
    assert stats["counts"].ok and stats["counts"].count == 7
    assert not stats["broken"].ok and stats["broken"].error == "RuntimeError: boom"
    assert "hangs" not in stats  # still running: nothing to report yet


async def test_a_chore_runs_once_per_interval_across_janitors(redis: Redis) -> None:
    calls: list[str] = []

    def chore(fail: bool) -> Chore:
        async def run() -> int:
            calls.append("run")
            if fail:
                raise RuntimeError("panel said no")
            return 1

        return Chore("panels", run, 3600.0)

    first, second = (Scheduler(redis, [], asyncio.Event()) for _ in range(2))
    assert await first.run_once(chore(fail=True)) is False
    # A failed run gives its claim back: the other janitor retries at once.
    assert await second.run_once(chore(fail=False)) is True
    assert await first.run_once(chore(fail=False)) is None  # done this interval
    assert calls == ["run", "run"]


async def test_orbit_status_shows_each_chore(
    db: asyncpg.Pool, redis: Redis, base_env: dict[str, str]
) -> None:
    now = time.time()
    scheduler = Scheduler(redis, [], asyncio.Event())

    async def three() -> int:
        return 3

    async def broken() -> int:
        raise ValueError("bad row")

    assert await scheduler.run_once(Chore("purged_outbox", three, 3600.0))
    assert await scheduler.run_once(Chore("deleted_payments", broken, 3600.0)) is False
    _, out, _ = await orbit(base_env, "status", "--json", "--socket", "/nonexistent")
    chores = {c["name"]: c for c in msgspec.json.decode(out)["chores"]}
    assert chores["purged_outbox"]["count"] == 3 and chores["purged_outbox"]["ok"] is True
    assert chores["purged_outbox"]["last_run_at"] >= now - 1
    assert chores["deleted_payments"]["error"] == "ValueError: bad row"
    _, out, _ = await orbit(base_env, "status", "--socket", "/nonexistent")
    [line] = [line for line in out.splitlines() if line.startswith("purged_outbox")]
    assert line.split()[1:2] == ["3600s"] and line.split()[-1] == "3"
    assert "deleted_payments" in out and "<- FAILED: ValueError: bad row" in out


def test_render_lists_chores_in_name_order() -> None:
    stats = [
        ChoreStats(name=n, interval=30.0, last_run_at=time.time(), duration=0.01, count=i, ok=True)
        for i, n in enumerate(("a_chore", "b_chore"))
    ]
    status = health.Status(True, "up", "up", "up", "x", "x", [], stats)
    text = status_cli.render(status)
    assert text.index("a_chore") < text.index("b_chore")


async def test_a_chore_failure_it_explains_is_one_line_without_a_traceback(
    redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    async def refused() -> int:
        raise ChoreFailed("pg_dump failed: could not connect")

    async def broken() -> int:
        raise KeyError("bug")

    scheduler = Scheduler(redis, [], asyncio.Event())
    with caplog.at_level(logging.INFO, logger="orbit.janitor.schedule"):
        assert await scheduler.run_once(Chore("backed_up", refused, 300.0)) is False
        assert await scheduler.run_once(Chore("purged_outbox", broken, 300.0)) is False
    [explained, bug] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert explained.exc_info is None and "pg_dump failed: could not connect" in explained.getMessage()
    assert bug.exc_info is not None  # a bug keeps its traceback
    assert (await read_stats(redis))["backed_up"].error == "ChoreFailed: pg_dump failed: could not connect"


async def test_a_poke_runs_the_time_driven_chores_at_once(redis: Redis) -> None:
    runs = {"expired_payments": 0, "reconciled_panels": 0}
    ran = asyncio.Event()

    def chore(name: str, on_poke: bool) -> Chore:
        async def run() -> int:
            runs[name] += 1
            ran.set()
            return 0

        return Chore(name, run, 3600.0, on_poke=on_poke)

    stopping = asyncio.Event()
    table = [chore("expired_payments", True), chore("reconciled_panels", False)]
    scheduler = Scheduler(redis, table, stopping)
    serving = asyncio.create_task(scheduler.serve())
    try:
        while sum(runs.values()) < 2:  # both run at start
            ran.clear()
            await asyncio.wait_for(ran.wait(), timeout=20)
        # Another janitor's claim (or this one's) does not hold a poked chore back.
        assert await Scheduler(redis, [], asyncio.Event()).run_once(table[0]) is None
        ran.clear()
        scheduler.poke()
        await asyncio.wait_for(ran.wait(), timeout=20)
    finally:
        stopping.set()
        await asyncio.wait_for(serving, timeout=20)
    assert runs == {"expired_payments": 2, "reconciled_panels": 1}
