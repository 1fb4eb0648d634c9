"""The panel reconciliation round (orbit/marzban/reconcile.py) over a shop's worth of
configs: 100,000 subscriptions with 200,000 configs across 3 emulated panels, 10 % of
the panel users changed by hand (expiry, disabled, data limit). Measures the round's
rows per second and the panel calls per changed config (target: exactly one; none for
an unchanged one), then a second round (target: no changing call at all).

    .venv/bin/python -m bench.bench_reconcile [--subscriptions 100000] [--write]

Needs Postgres (a throwaway database, dropped at the end) and Redis (a free db number,
taken the way the test harness does). The panels run in a process of their own
(bench/fleet.py). `--write` replaces this benchmark's section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from bench.fleet import build_fleet, clear_counters, counters, fleet_panels
from bench.report import write_section
from orbit.connections import create_pool
from orbit.marzban.provisioning import PanelDeps
from orbit.marzban.reconcile import RoundReport, reconcile_panels
from orbit.migrate import upgrade
from orbit.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "BENCHMARKS.md"
SECTION = "## Panel reconciliation: 200,000 configs on 3 panels"
COMMAND = ".venv/bin/python -m bench.bench_reconcile --write"
ADMIN_DSN = os.environ.get("ORBIT_TEST_ADMIN_DSN", "postgresql://orbit:orbit@127.0.0.1:5432/postgres")
REDIS_BASE = os.environ.get("ORBIT_TEST_REDIS", "redis://127.0.0.1:6379")
CHANGING = ("PUT /api/user/{username}", "POST /api/user", "DELETE /api/user/{username}")
PANELS = 3


def _redis_db(lease: str) -> tuple[str, SyncRedis, str]:
    lock = SyncRedis.from_url(f"{REDIS_BASE}/0")
    for number in range(1, 16):
        key = f"orbit-test:db-lease:{number}"
        if lock.set(key, lease, nx=True, ex=3600):
            return f"{REDIS_BASE}/{number}", lock, key
    raise RuntimeError("no free Redis db")


async def _calls(http: aiohttp.ClientSession, urls: list[str]) -> Counter[str]:
    total: Counter[str] = Counter()
    for url in urls:
        total.update(await counters(http, url))
    return total


async def _round(
    deps: PanelDeps, http: aiohttp.ClientSession, urls: list[str]
) -> tuple[RoundReport, float, Counter[str]]:
    for url in urls:
        await clear_counters(http, url)
    started = time.perf_counter()
    report = await reconcile_panels(deps)
    return report, time.perf_counter() - started, await _calls(http, urls)


async def run(args: argparse.Namespace) -> dict[str, object]:
    configs_total = args.subscriptions * 2
    per_panel = -(-configs_total // PANELS)
    until = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    name = f"orbit_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = ADMIN_DSN.rsplit("/", 1)[0] + "/" + name
    redis_url, lock, lease_key = _redis_db(name)
    SyncRedis.from_url(redis_url).flushdb()
    try:
        await asyncio.to_thread(upgrade, dsn)
        settings = Settings(database_url=dsn, redis_url=redis_url, marzban_timeout_seconds=30.0)
        pool = await create_pool(settings, max_size=4)
        redis = Redis.from_url(redis_url, decode_responses=True)
        try:
            print(f"filling {PANELS} panels with {per_panel:,} users each")  # noqa: T201
            async with (
                fleet_panels(
                    PANELS, users_per_panel=per_panel, expire=int(until.timestamp()), differ_every=10
                ) as urls,
                aiohttp.ClientSession() as http,
            ):
                configs = await build_fleet(
                    pool, urls, subscriptions=args.subscriptions, configs_each=2, until=until,
                    users_per_panel=per_panel,
                )  # fmt: skip
                print(f"{configs:,} configs in the database; first round")  # noqa: T201
                deps = PanelDeps(pool, redis, http, settings)
                first, first_s, first_calls = await _round(deps, http, urls)
                print(f"first round {first_s:.1f}s; second round")  # noqa: T201
                second, second_s, second_calls = await _round(deps, http, urls)
        finally:
            await redis.aclose()
            await pool.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        SyncRedis.from_url(redis_url).flushdb()
        if lock.get(lease_key) == name.encode():
            lock.delete(lease_key)
    return {
        "configs": configs, "subscriptions": args.subscriptions, "page": settings.panel_reconcile_page_size,
        "first": first, "first_s": first_s, "first_calls": first_calls,
        "second": second, "second_s": second_s, "second_calls": second_calls,
    }  # fmt: skip


def _changing(calls: Counter[str]) -> int:
    return sum(calls[c] for c in CHANGING)


def render(r: dict[str, object]) -> str:
    first: RoundReport = r["first"]  # type: ignore[assignment]
    second: RoundReport = r["second"]  # type: ignore[assignment]
    first_calls: Counter[str] = r["first_calls"]  # type: ignore[assignment]
    second_calls: Counter[str] = r["second_calls"]  # type: ignore[assignment]
    configs: int = r["configs"]  # type: ignore[assignment]
    changed = first.changed
    seen = sum(p.seen for p in first.panels)
    lines = [
        SECTION,
        "",
        f"`bench/bench_reconcile.py`: {r['subscriptions']:,} subscriptions with {configs:,} configs on",
        f"{PANELS} Marzban emulators (their own process, `bench/fleet.py`), every 10th panel user",
        "changed by hand (expiry a day back, disabled, or a data limit, in turn). One round of",
        f"`reconcile_panels` reads every panel in pages of {r['page']} (`PANEL_RECONCILE_PAGE_SIZE`), one",
        "query per page against the rows, and sets each differing user with one `PUT` under its",
        "config's lock; the second round runs over the repaired panels.",
        "",
        f"Command: `{COMMAND}`.",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()},"
        f" {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; load average {os.getloadavg()[0]:.1f} at the end"
        " (a shared machine: other engineers' test runs were going on).",
        "",
        "| round | seconds | panel users read | rows/s | changed | changing calls"
        " | calls per changed config | list pages |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, report, seconds, calls in (
        ("first (10 % differ)", first, r["first_s"], first_calls),
        ("second (all match)", second, r["second_s"], second_calls),
    ):
        read = sum(p.seen for p in report.panels)
        per = f"{_changing(calls) / report.changed:.2f}" if report.changed else "-"
        lines.append(
            f"| {label} | {seconds:.1f} | {read:,} | {read / seconds:,.0f} | {report.changed:,} |"  # type: ignore[operator]
            f" {_changing(calls):,} | {per} | {calls['GET /api/users']:,} |"
        )
    unchanged = seen - changed
    lines += [
        "",
        f"Every call of the first round by route: {dict(sorted(first_calls.items()))}.",
        f"Unchanged users: {unchanged:,}, calls made for them: none (the only calls besides the",
        f"{changed:,} `PUT`s are the list pages, one `GET /api/inbounds` and a login per panel).",
        "",
        "The fleet's panels review their users' status at most once a second (Marzban's review",
        "is a 10 s job; the emulator's review before every request costs ~0.2 s at 67,000 users).",
        "",
    ]
    return "\n".join(lines) + "\n"


def write(text: str) -> None:
    write_section(text, SECTION)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--subscriptions", type=int, default=100_000)
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    args = parser.parse_args()
    text = render(asyncio.run(run(args)))
    print(text)  # noqa: T201
    if args.write:
        write(text)
        print(f"wrote {BENCHMARKS}")  # noqa: T201


if __name__ == "__main__":
    main()
