"""Hot paths against 10,000, 100,000 and 1,000,000 users: the cost must stay flat.

For each size a scratch database is migrated and filled with a shop's worth of rows
(`bench/fill.py`: per user a payment and a ledger entry, a quarter with purchases,
a tenth with two configs, a fifth with a promo activation; 1M users is about 6M
rows), then each hot path runs `--runs` times on users picked at random, through
Orbit's own functions:

- *load the user*: `users.queries.get_user`, what every update starts with;
- *menu press*: the user and the subscription screen's one query (`subscriptions.service.subscription`);
- *purchase*: `subscriptions.service.buy` of the 1-month plan in a transaction;
- *config create*: the database half of `configs.service.create_config` (lock the
  owner, plan limits, counts, the pending row, the repair flag); the panel half is
  the Marzban emulator's and does not grow with the users;
- *TON page*: `payments.ton_watch.process_transactions` on a page of 10 transfers
  matching pending payments (stored, matched, credited, messages queued);
- *reminders*: the janitor's `reminders_due` query (100 rows).

    .venv/bin/python -m bench.bench_scale [--sizes 10000,100000,1000000] [--runs 300] [--rounds 5] [--write]

Needs Postgres: ORBIT_TEST_ADMIN_DSN (default postgresql://orbit:orbit@127.0.0.1:5432/postgres).
`--write` replaces this benchmark's section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from bench.fill import FIRST_USER, fill
from bench.report import BENCHMARKS, write_section
from orbit.configs import queries as config_queries
from orbit.connections import create_pool
from orbit.i18n import create_translator
from orbit.janitor.queries import reminders_due
from orbit.migrate import upgrade
from orbit.payments.ton_watch import process_transactions
from orbit.payments.tonapi import AccountAddress, Message, TextBody, Transaction
from orbit.plans import load_plans
from orbit.settings import Settings
from orbit.subscriptions.service import active_plan_limits, buy, subscription
from orbit.users.queries import get_user

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Scale: hot paths at 10,000, 100,000 and 1,000,000 users"
COMMAND = ".venv/bin/python -m bench.bench_scale --write"
ADMIN_DSN = os.environ.get("ORBIT_TEST_ADMIN_DSN", "postgresql://orbit:orbit@127.0.0.1:5432/postgres")
WALLET = "0:" + "ab" * 32
TON_PAGE = 10

Path_ = Callable[[asyncpg.Pool, random.Random], Awaitable[None]]


def _in_fill(users: int, rng: random.Random, step: int = 1, rest: int = 0) -> int:
    """A random filled user whose index g has g % step == rest."""
    return FIRST_USER + rng.randrange(0, users // step) * step + rest


def hot_paths(users: int, settings: Settings) -> dict[str, Path_]:
    plans = load_plans(settings, ROOT / "plans.json")
    plan = plans.get("1m")
    assert plan is not None
    translator = create_translator()
    ton_pending = iter(range(0, users, 60))  # g % 60 == 0: a pending TON payment (fill.py)

    async def load_user(pool: asyncpg.Pool, rng: random.Random) -> None:
        await get_user(pool, _in_fill(users, rng))

    async def menu_press(pool: asyncpg.Pool, rng: random.Random) -> None:
        user_id = _in_fill(users, rng)
        await get_user(pool, user_id)
        await subscription(pool, user_id, settings.free_trial_days)

    async def purchase(pool: asyncpg.Pool, rng: random.Random) -> None:
        user_id = _in_fill(users, rng, 50, 40)  # balance 400 RUB (fill.py: (g % 50) * 1000 kop)
        async with pool.acquire() as conn, conn.transaction():
            await buy(conn, user_id, plan, f"bench:{uuid.uuid4().hex}")
            raise _Rollback  # keep the balance for the next pick

    async def config_create(pool: asyncpg.Pool, rng: random.Random) -> None:
        user_id = _in_fill(users, rng, 4)  # a subscriber (fill.py: g % 4 == 0)
        async with pool.acquire() as conn, conn.transaction():
            await config_queries.lock_owner(conn, user_id)
            await active_plan_limits(conn, user_id, plans)
            await config_queries.count_of_user(conn, user_id)
            await config_queries.made_in_last_day(conn, user_id)
            config = await config_queries.insert_pending(
                conn, user_id, "bench-a", f"bench_{uuid.uuid4().hex[:12]}", "Config", 0
            )
            await config_queries.mark_needs_sync(conn, config.id, "created, not provisioned yet")
            raise _Rollback

    async def ton_page(pool: asyncpg.Pool, rng: random.Random) -> None:
        txs = [_transfer(g) for g in (next(ton_pending) for _ in range(TON_PAGE))]
        async with pool.acquire() as conn, conn.transaction():
            await process_transactions(conn, translator, settings, None, txs, None)

    async def reminders(pool: asyncpg.Pool, rng: random.Random) -> None:
        await reminders_due(pool, 100)

    return {
        "load the user": load_user,
        "menu press": menu_press,
        "purchase": purchase,
        "config create (database half)": config_create,
        f"TON page of {TON_PAGE}": ton_page,
        "reminders query (100)": reminders,
    }


class _Rollback(Exception):
    """Raised inside a transaction to undo a measured write."""


def _transfer(g: int) -> Transaction:
    return Transaction(
        hash=f"bench{g:059x}",
        lt=10**12 + g,
        utime=int(time.time()),
        success=True,
        in_msg=Message(
            msg_type="int_msg",
            value=1_500_000_000,
            source=AccountAddress("0:" + "5e" * 32),
            op_code="0x00000000",
            decoded_op_name="text_comment",
            decoded_body=TextBody(f"ORB{g}"),
        ),
    )


async def measure(pool: asyncpg.Pool, path: Path_, runs: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        with contextlib.suppress(_Rollback):
            await path(pool, rng)
        timings.append((time.perf_counter() - started) * 1000)
    return timings


@dataclass
class Shop:
    users: int
    dsn: str
    pool: asyncpg.Pool
    paths: dict[str, Path_]
    runs_of: dict[str, int]


async def open_shop(admin: asyncpg.Connection, users: int, runs: int, rounds: int) -> Shop:
    name = f"orbit_bench_{users}_{uuid.uuid4().hex[:8]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = ADMIN_DSN.rsplit("/", 1)[0] + "/" + name
    await asyncio.to_thread(upgrade, dsn)
    started = time.perf_counter()
    conn = await asyncpg.connect(dsn, command_timeout=None)  # a 1M fill takes minutes
    try:
        await fill(conn, users)
    finally:
        await conn.close()
    print(f"{users:,} users filled in {time.perf_counter() - started:.0f}s")  # noqa: T201
    settings = Settings(database_url=dsn, ton_address=WALLET)
    pool = await create_pool(settings, max_size=2)
    paths = hot_paths(users, settings)
    per_round = max(1, runs // rounds)
    # The TON page uses up pending payments: warm-up and every round share them.
    ton_pages = users // 60 // TON_PAGE
    runs_of = {label: per_round for label in paths}
    runs_of[f"TON page of {TON_PAGE}"] = max(1, min(per_round, ton_pages // (rounds + 1)))
    for label, path in paths.items():  # warm the statement cache and the buffers
        await measure(pool, path, max(1, runs_of[label] // 5), seed=1)
    return Shop(users, dsn, pool, paths, runs_of)


async def run(sizes: list[int], runs: int, rounds: int) -> dict[int, dict[str, tuple[float, float]]]:
    """Rounds interleave the sizes, so a change of the machine's load falls on all of them."""
    admin = await asyncpg.connect(ADMIN_DSN)
    shops: list[Shop] = []
    try:
        for users in sizes:
            shops.append(await open_shop(admin, users, runs, rounds))
        timings: dict[int, dict[str, list[float]]] = {shop.users: {} for shop in shops}
        for round_ in range(rounds):
            for shop in shops:
                for label, path in shop.paths.items():
                    got = await measure(shop.pool, path, shop.runs_of[label], seed=10 + round_)
                    timings[shop.users].setdefault(label, []).extend(got)
            print(f"round {round_ + 1}/{rounds} done")  # noqa: T201
        return {
            users: {label: (statistics.median(t), _p99(t)) for label, t in by_label.items()}
            for users, by_label in timings.items()
        }
    finally:
        for shop in shops:
            await shop.pool.close()
            await admin.execute(f'DROP DATABASE IF EXISTS "{shop.dsn.rsplit("/", 1)[1]}" WITH (FORCE)')
        await admin.close()


def _p99(timings: list[float]) -> float:
    ordered = sorted(timings)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def render(
    args: argparse.Namespace, sizes: list[int], by_size: dict[int, dict[str, tuple[float, float]]]
) -> str:
    first, last = sizes[0], sizes[-1]
    header = " | ".join(f"{n:,} users" for n in sizes)
    lines = [
        SECTION,
        "",
        "Each hot path through Orbit's own functions on a database filled for the size",
        "(`bench/fill.py`; 1M users is about 6M rows), median and p99 in milliseconds over",
        f"{args.runs} runs on random users in {args.rounds} rounds that interleave the sizes (the TON",
        "page: as many pages as pending payments allow).",
        f"The last column is {last:,} against {first:,}: flat is about 1.0×.",
        "The same queries' plans are checked by `tests/test_hot_query_plans.py`, which fails",
        "on a sequential scan of a growing table.",
        "",
        f"Command: `{COMMAND}` (sizes {','.join(map(str, sizes))}, {args.runs} runs, {args.rounds} rounds).",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()},"
        f" {datetime.now(UTC):%Y-%m-%d}; load average {os.getloadavg()[0]:.1f} at the end (shared"
        " with other work: absolute times move with the load).",
        "",
        f"| path | {header} | {last:,} / {first:,} |",
        "|---|" + "---:|" * (len(sizes) + 1),
    ]
    for label in by_size[first]:
        cells = " | ".join(f"{by_size[n][label][0]:.2f} (p99 {by_size[n][label][1]:.2f})" for n in sizes)
        ratio = by_size[last][label][0] / by_size[first][label][0]
        lines.append(f"| {label} | {cells} | {ratio:.2f}× |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--runs", type=int, default=300, help="runs of each path per size")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds over the sizes")
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    by_size = asyncio.run(run(sizes, args.runs, args.rounds))
    text = render(args, sizes, by_size)
    print(text)  # noqa: T201
    if args.write:
        write_section(text)
        print(f"wrote {BENCHMARKS}")  # noqa: T201


if __name__ == "__main__":
    main()
