"""Outbox delivery to many chats against the Telegram emulator with its limits on
(30 messages a second per bot, 1 a second per chat).

Senders run as separate processes (default 2: two bot processes sharing one
Postgres queue and one Redis limiter), each a real `OutboxSender` with its own
Bot session; the emulator runs in a process of its own. Checked afterwards:
every row `sent` with one attempt, every chat got exactly one message (no
duplicate), no send arrived while a 429's `retry_after` was still running
(`early_retries`), and the sustained rate.

    .venv/bin/python -m bench.bench_outbox [--chats 10000] [--senders 2] [--write]

Needs Postgres (ORBIT_TEST_ADMIN_DSN, default postgresql://orbit:orbit@127.0.0.1:5432/postgres;
a database of its own is created, migrated and dropped) and Redis (REDIS_URL; a
free db number is leased the way the test harness does and flushed). At ~30/s,
10,000 chats take about 5.7 minutes. `--write` replaces this benchmark's
section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import asyncpg
import msgspec
from redis.asyncio import Redis

from bench import report
from orbit.migrate import upgrade
from orbit.sandbox.telegram_control import TelegramControl
from orbit.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "BENCHMARKS.md"
SECTION = "## Outbox: delivery to 10,000 chats under Telegram's 30/s limit"
COMMAND = ".venv/bin/python -m bench.bench_outbox --write"
BOT_TOKEN = "123456:BENCH-token"
ADMIN_DSN = os.environ.get("ORBIT_TEST_ADMIN_DSN", "postgresql://orbit:orbit@127.0.0.1:5432/postgres")
FIRST_CHAT = 10_000_000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _dsn_for(name: str) -> str:
    return f"{ADMIN_DSN.rpartition('/')[0]}/{name}"


async def _lease_redis_db(base: str) -> tuple[str, Callable[[], Awaitable[None]]]:
    lock = Redis.from_url(f"{base}/0")
    owner = f"bench:{os.getpid()}"
    for number in range(15, 0, -1):
        key = f"orbit-test:db-lease:{number}"
        if await lock.set(key, owner, nx=True, ex=1800):
            break
    else:
        raise RuntimeError("no free Redis db")
    url = f"{base}/{number}"
    redis = Redis.from_url(url)
    await redis.flushdb()

    async def release() -> None:
        await redis.flushdb()
        await redis.aclose()
        await lock.delete(key)
        await lock.aclose()

    return url, release


# --- one sender process ----------------------------------------------------------------------


async def run_sender(dsn: str, redis_url: str, telegram_url: str, rate: float) -> None:
    from orbit.bot_client import create_bot
    from orbit.connections import create_pool, create_redis
    from orbit.outbox.limiter import SendLimiter
    from orbit.outbox.sender import OutboxSender

    settings = Settings(
        database_url=dsn, redis_url=redis_url, bot_token=BOT_TOKEN, telegram_api_url=telegram_url
    )
    pool = await create_pool(settings, max_size=8)
    redis = create_redis(settings)
    bot = create_bot(settings)
    try:
        sender = OutboxSender(bot, pool, SendLimiter(redis, rate), asyncio.Event())
        while await pool.fetchval("SELECT count(*) FROM outbox WHERE status IN ('pending', 'sending')"):
            await sender.tick()
    finally:
        await bot.session.close()
        await redis.aclose()
        await pool.close()


# --- the benchmark ---------------------------------------------------------------------------


async def _wait_until_up(http: aiohttp.ClientSession, url: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            async with http.get(f"{url}/control/rate") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("the Telegram emulator did not start")
        await asyncio.sleep(0.1)


class Result(msgspec.Struct):
    chats: int
    senders: int
    rate_setting: float
    elapsed_s: float
    delivered: int
    chats_reached: int
    duplicates: int
    statuses: dict[str, int]
    rows_not_one_attempt: int
    sustained_per_s: float
    min_full_second: int
    max_full_second: int
    max_global_window: int
    max_per_chat_window: int
    too_many_requests: int
    early_retries: int


async def bench(args: argparse.Namespace, dsn: str, redis_url: str) -> Result:
    port = _free_port()
    telegram_url = f"http://127.0.0.1:{port}"
    emulator = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "orbit.sandbox.telegram", "--port", str(port), "--log-level", "WARNING",
        cwd=str(ROOT), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        async with aiohttp.ClientSession() as http:
            await _wait_until_up(http, telegram_url)
            control = TelegramControl(telegram_url, http)
            chats = list(range(FIRST_CHAT, FIRST_CHAT + args.chats))
            for start in range(0, len(chats), 200):  # each chat "wrote to the bot" once
                await asyncio.gather(*(control.unblock(c) for c in chats[start : start + 200]))
            await control.set_rate_limits(enabled=True, per_chat_per_sec=1, global_per_sec=30)

            pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
            try:
                await pool.copy_records_to_table("users", records=[(c,) for c in chats], columns=["id"])
                await pool.copy_records_to_table(
                    "outbox",
                    records=[(c, "broadcast", f"Orbit news #{i} for {c}") for i, c in enumerate(chats)],
                    columns=["chat_id", "kind", "text"],
                )
                print(f"{args.chats} chats queued; {args.senders} sender processes start")  # noqa: T201
                worker = [
                    "-m", "bench.bench_outbox", "--worker", "--dsn", dsn, "--redis", redis_url,
                    "--telegram", telegram_url, "--rate", str(args.rate),
                ]  # fmt: skip
                started = time.monotonic()
                senders = [
                    await asyncio.create_subprocess_exec(sys.executable, *worker, cwd=str(ROOT))
                    for _ in range(args.senders)
                ]
                codes = await asyncio.gather(*(s.wait() for s in senders))
                elapsed = time.monotonic() - started
                if any(codes):
                    raise RuntimeError(f"a sender process failed: exit codes {codes}")
                rows = await pool.fetch("SELECT status, count(*) AS n FROM outbox GROUP BY 1")
                retried = await pool.fetchval("SELECT count(*) FROM outbox WHERE attempts <> 1")
            finally:
                await pool.close()

            stats = await control.rate_stats()
            calls = [c for c in await control.calls("sendMessage") if c.ok]
    finally:
        emulator.terminate()
        await emulator.wait()

    per_chat = Counter(int(c.params["chat_id"]) for c in calls)
    times = sorted(c.at for c in calls)
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    full_seconds = [s.accepted for s in stats.per_second[1:-1]]  # the first and last are partial
    return Result(
        chats=args.chats,
        senders=args.senders,
        rate_setting=args.rate,
        elapsed_s=elapsed,
        delivered=len(calls),
        chats_reached=len(per_chat),
        duplicates=sum(n - 1 for n in per_chat.values() if n > 1),
        statuses={r["status"]: r["n"] for r in rows},
        rows_not_one_attempt=retried,
        sustained_per_s=(len(times) - 1) / span if span else 0.0,
        min_full_second=min(full_seconds, default=0),
        max_full_second=max(full_seconds, default=0),
        max_global_window=stats.max_global_window,
        max_per_chat_window=stats.max_per_chat_window,
        too_many_requests=len(stats.too_many_requests),
        early_retries=stats.early_retries,
    )


def verdicts(r: Result) -> list[str]:
    """What must hold; an empty list means the run passed."""
    failed = []
    if r.delivered != r.chats or r.chats_reached != r.chats:
        failed.append("not every chat got its message")
    if r.duplicates:
        failed.append("duplicates")
    if r.statuses != {"sent": r.chats}:
        failed.append(f"rows not all sent: {r.statuses}")
    if r.early_retries:
        failed.append("a 429's retry_after was ignored")
    if abs(r.sustained_per_s - 30.0) > 1.5:
        failed.append("sustained rate not within 5% of 30/s")
    return failed


def render(r: Result) -> str:
    failed = verdicts(r)
    verdict = "within 5% of 30/s, no 429 ignored, no duplicate." if not failed else "; ".join(failed)
    return "\n".join(
        [
            SECTION,
            "",
            "`bench/bench_outbox.py`: one `outbox` row for each of N chats, delivered by",
            f"{r.senders} sender processes (each an `OutboxSender` as in the bot process, sharing",
            "the Postgres queue and the Redis limiter) to the Telegram emulator (own process) with",
            "its limits on: 30 sends per sliding second per bot, 1 per chat. The senders' shared",
            f"pace is `OUTBOX_RATE_PER_SECOND={r.rate_setting:g}`; their window admits a send only",
            "when fewer than 30 were in flight or answered within the last second, so latency",
            "jitter cannot put 31 arrivals into one of Telegram's seconds.",
            "",
            f"Command: `{COMMAND}`.",
            f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()},"
            f" {datetime.now(UTC):%Y-%m-%d}.",
            "",
            "| measure | value |",
            "|---|---:|",
            f"| chats / messages delivered | {r.chats} / {r.delivered} |",
            f"| wall time | {r.elapsed_s:.1f} s |",
            f"| sustained rate (first to last send) | {r.sustained_per_s:.2f} /s |",
            f"| full seconds: fewest / most sends | {r.min_full_second} / {r.max_full_second} |",
            f"| most sends in any sliding second (emulator) | {r.max_global_window} |",
            f"| most sends to one chat in any second | {r.max_per_chat_window} |",
            f"| 429 received / sends before retry_after | {r.too_many_requests} / {r.early_retries} |",
            f"| duplicate messages | {r.duplicates} |",
            f"| rows sent / rows needing more than one attempt |"
            f" {r.statuses.get('sent', 0)} / {r.rows_not_one_attempt} |",
            "",
            f"Verdict: {verdict}",
            "",
        ]
    )


def write_section(text: str) -> None:
    report.write_section(text, SECTION)


async def main_async(args: argparse.Namespace) -> int:
    base = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")
    if base.count("/") > 2:  # drop a db number; we lease our own
        base = base.rsplit("/", 1)[0]
    redis_url, release = await _lease_redis_db(base)
    name = f"orbit_bench_outbox_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        dsn = _dsn_for(name)
        await asyncio.to_thread(upgrade, dsn)
        result = await bench(args, dsn, redis_url)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        await release()
    print(msgspec.json.format(msgspec.json.encode(result)).decode())  # noqa: T201
    text = render(result)
    print(text)  # noqa: T201
    if args.write:
        write_section(text)
        print(f"wrote {BENCHMARKS}")  # noqa: T201
    return 1 if verdicts(result) else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chats", type=int, default=10_000)
    parser.add_argument("--senders", type=int, default=2, help="sender processes")
    parser.add_argument("--rate", type=float, default=Settings().outbox_rate_per_second)
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dsn", help=argparse.SUPPRESS)
    parser.add_argument("--redis", help=argparse.SUPPRESS)
    parser.add_argument("--telegram", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        asyncio.run(run_sender(args.dsn, args.redis, args.telegram, args.rate))
        return
    sys.exit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
