"""Expiry and grace at shop size: N subscriptions with two configs each across three
emulated panels, a tenth of them ending; the expiry round and, after the grace, the
retirement round, through Orbit's own functions (`orbit/subscriptions/expiry.py`).

    .venv/bin/python -m bench.bench_expiry [--users 100000] [--write]

Measured per round: rows changed per second (wall time of the whole round, every
batch until nothing is due) and panel calls per changed config, counted by the
emulators (target: exactly one; none for the configs that did not end). The panel
users exist for the ending configs only: a call about any other config would show
as a call (answered 404) in the count. The emulators serve on 127.0.0.1 in this
process, so their CPU is the benchmark's too (the rates are a floor).

Needs Postgres (ORBIT_TEST_ADMIN_DSN or orbit:orbit@127.0.0.1) and Redis; makes its own
database and drops it, leases a free Redis db the way the tests do.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import aiohttp
from redis.asyncio import Redis

from orbit import clock
from orbit.connections import create_pool
from orbit.marzban import instances
from orbit.marzban.instances import Instance
from orbit.marzban.provisioning import PanelDeps
from orbit.migrate import upgrade
from orbit.sandbox.marzban import MarzbanEmulator
from orbit.settings import Settings
from orbit.subscriptions import expiry

SECTION = "## Expiry and grace: rounds over 100,000 subscriptions"
COMMAND = ".venv/bin/python -m bench.bench_expiry --write"
PANELS = ("e1", "e2", "e3")
DAY = 86400.0
ADMIN_DSN = os.environ.get("ORBIT_TEST_ADMIN_DSN", "postgresql://orbit:orbit@127.0.0.1:5432/postgres")


class Shift:
    """The panels' clock, moved with Orbit's."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


async def _lease_redis_db(base: str) -> tuple[Redis, str, Callable[[], Awaitable[None]]]:
    lock = Redis.from_url(f"{base}/0")
    owner = f"bench:{os.getpid()}"
    for number in range(15, 0, -1):
        key = f"orbit-test:db-lease:{number}"
        if await lock.set(key, owner, nx=True, ex=3600):
            break
    else:
        raise RuntimeError("no free Redis db")
    url = f"{base}/{number}"
    redis = Redis.from_url(url, decode_responses=True)
    await redis.flushdb()

    async def release() -> None:
        await redis.flushdb()
        await redis.aclose()
        await lock.delete(key)
        await lock.aclose()

    return redis, url, release


async def _fill(pool, panels: dict[str, MarzbanEmulator], users: int, ending: int) -> None:  # type: ignore[no-untyped-def]
    """`users` subscriptions with two configs each; the first `ending` end an hour ago,
    the rest in 30 days. Panel users for the ending configs only."""
    await pool.execute(
        "INSERT INTO users (id, language, subscription_until)"
        " SELECT g, 'en', CASE WHEN g <= $2 THEN now() - interval '1 hour'"
        "                      ELSE now() + interval '30 days' END"
        " FROM generate_series(1, $1) g",
        users, ending,
    )  # fmt: skip
    await pool.execute(
        "INSERT INTO configs (user_id, instance_id, panel_username, name, status, subscription_url)"
        " SELECT g, ($2::text[])[1 + (2 * g + k) % 3], 'c' || g || '_' || k, 'Config ' || k,"
        "        'active', 'http://x/sub/' || g || '_' || k"
        " FROM generate_series(1, $1) g CROSS JOIN generate_series(0, 1) k",
        users, list(PANELS),
    )  # fmt: skip
    for instance_id, panel in panels.items():
        rows = await pool.fetch(
            "SELECT id FROM configs WHERE instance_id = $1 AND user_id <= $2 ORDER BY id",
            instance_id, ending,
        )  # fmt: skip
        names = panel.add_users(len(rows), prefix=instance_id)
        await pool.execute(
            "UPDATE configs c SET panel_username = v.name"
            " FROM unnest($1::bigint[], $2::text[]) AS v(id, name) WHERE c.id = v.id",
            [r["id"] for r in rows], names,
        )  # fmt: skip
    await pool.execute("ANALYZE")


def _calls(panels: dict[str, MarzbanEmulator], method: str) -> int:
    return sum(p.count(method, "/api/user/{username}") for p in panels.values())


async def _round(
    step: Callable[[], Awaitable[expiry.Round]],
) -> tuple[int, float]:
    changed = 0
    started = time.perf_counter()
    while True:
        done = await step()
        changed += done.changed
        if done.changed == 0 and not done.failed:
            return changed, time.perf_counter() - started


async def run(users: int, share: float) -> dict[str, object]:
    name = f"orbit_bench_expiry_{uuid.uuid4().hex[:8]}"
    base = ADMIN_DSN.rpartition("/")[0]
    import asyncpg

    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = f"{base}/{name}"
    redis_base = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")
    if redis_base.count("/") > 2:
        redis_base = redis_base.rsplit("/", 1)[0]
    redis, redis_url, release = await _lease_redis_db(redis_base)
    shift = Shift()
    panels = {i: MarzbanEmulator(clock=shift) for i in PANELS}
    try:
        await asyncio.to_thread(upgrade, dsn)
        settings = Settings(database_url=dsn, redis_url=redis_url, database_pool_max=5)
        pool = await create_pool(settings)
        for instance_id, panel in panels.items():
            url = await panel.start()
            instance = Instance(
                id=instance_id, name=instance_id, base_url=url, username="admin", password="admin"
            )
            await instances.insert_instance(pool, instance)
        ending = int(users * share)
        fill_started = time.perf_counter()
        await _fill(pool, panels, users, ending)
        fill_s = time.perf_counter() - fill_started
        async with aiohttp.ClientSession() as http:
            deps = PanelDeps(pool, redis, http, settings)
            for panel in panels.values():
                panel.clear_requests()
            expired, expire_s = await _round(lambda: expiry.expire_configs(deps))
            expire_calls = _calls(panels, "PUT")
            await clock.advance(pool, (settings.grace_days + 1) * DAY)
            shift.offset += (settings.grace_days + 1) * DAY
            for panel in panels.values():
                panel.clear_requests()
            retired, retire_s = await _round(lambda: expiry.retire_configs(deps))
            retire_calls = _calls(panels, "DELETE")
            other_calls = _calls(panels, "PUT") + _calls(panels, "GET")
        left = sum(len(p.usernames) for p in panels.values())
        await pool.close()
    finally:
        for panel in panels.values():
            await panel.stop()
        await release()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return {
        "users": users, "configs": 2 * users, "ending_configs": 2 * ending, "fill_s": fill_s,
        "expired": expired, "expire_s": expire_s, "expire_calls": expire_calls,
        "retired": retired, "retire_s": retire_s, "retire_calls": retire_calls,
        "other_calls": other_calls, "panel_users_left": left, "load": os.getloadavg()[1],
    }  # fmt: skip


def render(result: dict[str, object]) -> str:
    r = result
    lines = [
        SECTION,
        "",
        f"{r['users']:,} subscriptions, {r['configs']:,} configs over 3 Marzban emulators, "
        f"{r['ending_configs']:,} configs ending. Each round runs `expire_configs` /",
        "`retire_configs` batch after batch (500 rows) until nothing is due; rows/s is changed",
        "rows over the round's wall time, calls are counted by the emulators.",
        "",
        f"Command: `{COMMAND}` (fill: {r['fill_s']:.1f} s).",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs shared with other work,"
        f" Python {platform.python_version()}, {datetime.now(UTC):%Y-%m-%d};"
        f" load average {r['load']:.1f} during the run (other work on the same cores).",
        "",
        "| round | configs changed | seconds | rows/s | panel calls | calls per changed config |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, changed, seconds, calls in (
        ("expiry (`PUT expire`)", r["expired"], r["expire_s"], r["expire_calls"]),
        ("grace (`DELETE`)", r["retired"], r["retire_s"], r["retire_calls"]),
    ):
        rate = changed / seconds if seconds else 0.0  # type: ignore[operator]
        per = calls / changed if changed else 0.0  # type: ignore[operator]
        lines.append(f"| {label} | {changed:,} | {seconds:.1f} | {rate:,.0f} | {calls:,} | {per:.2f} |")
    lines += [
        "",
        f"Calls about the {r['configs'] - r['ending_configs']:,} configs that did not end: "  # type: ignore[operator]
        f"{r['other_calls']} (any would have been counted). Panel users left after the grace: "
        f"{r['panel_users_left']}. The grace round's few calls above one per config are a"
        " few per panel: moving the clock by the grace outlived the panels' tokens (a 401, a login,"
        " the call again).",
        "Each changed config costs, besides its one call, its advisory lock and about five",
        "short queries on one connection: the round is bound by those round trips, not the panel.",
        "",
    ]
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> None:
    result = await run(args.users, args.share)
    text = render(result)
    print(text)  # noqa: T201
    if args.write:
        from bench import report

        report.write_section(text, SECTION)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--share", type=float, default=0.1, help="share of subscriptions ending")
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
