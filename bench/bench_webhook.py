"""Menu presses in webhook mode with 1, 2 and 4 bot processes: updates/s and p99.

The real `python -m orbit.bot` processes (WEBHOOK_URL set, one port shared with
SO_REUSEPORT, as in production) behind the Telegram emulator in its own process,
which delivers the webhook over up to `max_connections` parallel requests as
Telegram does. Known users press main-menu buttons (main, then help or settings);
each press edits the menu message and answers the callback. A fixed number of
updates is kept unanswered at Telegram (getWebhookInfo's pending_update_count);
latency = from the control-API press to the bot's answerCallbackQuery as the
emulator recorded it (both clocks are this host's). Rounds interleave 1, 2 and 4
processes so drift falls on all alike.

    .venv/bin/python -m bench.bench_webhook [--write] [--updates 3000] [--in-flight 100] [--rounds 3]

Needs Postgres and Redis as bench/bench_menu.py does (a temporary database and a
leased Redis db). `--write` replaces this benchmark's section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import asyncpg
import msgspec
from redis.asyncio import Redis

from bench.bench_menu import (
    ROOT,
    Press,
    Users,
    _bounded,
    _control,
    _database,
    _emulator,
    _FixedI18n,
    _free_port,
    _redis_db,
)
from bench.report import write_section
from orbit import keys
from orbit.ui.callbacks import MenuCb
from orbit.ui.views import main_menu
from orbit.users.queries import get_user

SECTION = "## Menu presses in webhook mode: 1, 2 and 4 bot processes"
COMMAND = ".venv/bin/python -m bench.bench_webhook --write"
TOKEN = "123456:BENCH-token"
SECRET = "bench-webhook-secret"
FIRST_USER = 7_100_000_000
PROCESSES = (1, 2, 4)


@dataclass
class Result:
    processes: int
    updates: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.updates / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


@asynccontextmanager
async def _bots(count: int, env: dict[str, str], redis_url: str) -> AsyncIterator[None]:
    """`count` bot processes on one port; started, waited for, and stopped with SIGTERM."""
    logs = [tempfile.TemporaryFile() for _ in range(count)]  # noqa: SIM115 (closed below)
    command = (sys.executable, "-m", "orbit.bot")
    merged = asyncio.subprocess.STDOUT
    procs = [
        await asyncio.create_subprocess_exec(*command, cwd=str(ROOT), env=env, stdout=log, stderr=merged)
        for log in logs
    ]
    redis = Redis.from_url(redis_url, decode_responses=True)
    try:
        deadline = time.monotonic() + 300  # a shared, saturated host starts processes slowly
        waiting = {p.pid for p in procs}
        while waiting:
            raw = await redis.get(keys.heartbeat("bot"))
            if raw is not None:
                waiting.discard(msgspec.json.decode(raw)["pid"])
            for proc, log in zip(procs, logs, strict=True):
                if proc.returncode is not None:
                    log.seek(0)
                    raise RuntimeError(f"a bot process exited at start:\n{log.read().decode()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"bot processes {waiting} did not start")
            await asyncio.sleep(0.05)
        yield
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        await asyncio.gather(*(p.wait() for p in procs))
        await redis.aclose()
        for log in logs:
            log.close()


async def _answers(http: aiohttp.ClientSession, url: str) -> dict[str, float]:
    """callback_query_id → when the bot answered it (the emulator's record)."""
    async with http.get(f"{url}/control/calls", params={"method": "answerCallbackQuery"}) as resp:
        calls = await resp.json()
    return {c["params"]["callback_query_id"]: c["at"] for c in calls if c.get("ok")}


async def _pending(http: aiohttp.ClientSession, url: str) -> int:
    async with http.post(f"{url}/bot{TOKEN}/getWebhookInfo") as resp:
        return int((await resp.json())["result"]["pending_update_count"])


async def _run(http: aiohttp.ClientSession, url: str, users: Users, count: int, in_flight: int) -> Result:
    """Keeps `in_flight` updates not yet answered by a bot (getWebhookInfo's
    pending_update_count, as Telegram counts them): one cheap read instead of a
    long-poll per press, which would cost the emulator more than the presses."""
    presses = users.presses(count)
    pressed_at: dict[str, float] = {}

    async def press(item: Press) -> None:
        data = MenuCb(screen=item.screen).pack()
        body = {"user_id": item.user_id, "message_id": item.message_id, "data": data, "forge": True}
        at = time.time()
        pressed_at[(await _control(http, url, "/press", body))["callback_query_id"]] = at

    started = time.time()
    sent = 0
    while True:
        pending = await _pending(http, url)
        if sent == len(presses) and pending == 0:
            break
        room = min(in_flight - pending, len(presses) - sent)
        if room > 0:
            await _bounded(presses[sent : sent + room], 32, press)
            sent += room
        else:
            await asyncio.sleep(0.005)
    seconds = time.time() - started
    answers = await _answers(http, url)
    missing = [q for q in pressed_at if q not in answers]
    if missing:
        raise RuntimeError(f"{len(missing)} presses were never answered")
    return Result(0, count, seconds, [answers[q] - at for q, at in pressed_at.items()])


async def bench(args: argparse.Namespace) -> list[Result]:
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    async with _emulator() as url, _database() as dsn, _redis_db() as redis_url:
        port = _free_port()
        env = {
            "PATH": os.environ.get("PATH", ""),
            "BOT_TOKEN": TOKEN,
            "TELEGRAM_API_URL": url,
            "DATABASE_URL": dsn,
            "REDIS_URL": redis_url,
            "PLANS_FILE": str(ROOT / "plans.json"),
            "LOG_LEVEL": "WARNING",
            "BOT_HTTP_PORT": str(port),
            "WEBHOOK_URL": f"http://127.0.0.1:{port}/telegram/webhook",
            "WEBHOOK_SECRET": SECRET,
            "WEBHOOK_MAX_CONNECTIONS": str(args.in_flight),
            "RATE_LIMIT_SCALE": "0.0001",  # presses faster than people: no refusals
            "OUTBOX_RATE_PER_SECOND": "100000",  # the emulator's limits are off too
            "DATABASE_POOL_MAX": "20",
        }
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
        async with aiohttp.ClientSession() as http:
            await _control(http, url, "/rate", {"enabled": False})
            ids = [FIRST_USER + i for i in range(args.users)]
            # Each user has written to the bot (a chat exists); those updates are confirmed
            # here, before any bot runs, so the runs get presses only.
            wrote = {"text": "/start", "first_name": "U"}
            await _bounded(ids, 32, lambda u: _control(http, url, "/messages", {"user_id": u, **wrote}))
            await _confirm_updates(http, url)
            await pool.execute(
                "INSERT INTO users (id, first_name) SELECT g, 'U' FROM unnest($1::bigint[]) g", ids
            )
            sample = await get_user(pool, ids[0])
            assert sample is not None
            screen = main_menu(_FixedI18n(), sample, 7)  # type: ignore[arg-type]
            users = Users(ids, (screen.text, screen.markup))
            results: list[Result] = []
            for round_ in range(args.rounds + 1):  # round 0 warms up (statements, connections)
                for count in PROCESSES:
                    async with _bots(count, env, redis_url):
                        await _fresh_messages(http, url, users)
                        result = await _run(http, url, users, args.updates, args.in_flight)
                    result.processes = count
                    line = (
                        f"{'warm-up ' if round_ == 0 else ''}{count} bot(s): {result.rate:6.0f} updates/s"
                        f" p50 {result.pct(0.5):6.1f} ms p99 {result.pct(0.99):6.1f} ms"
                    )
                    print(line, flush=True)  # noqa: T201
                    if round_:
                        results.append(result)
        await pool.close()
    return results


async def _confirm_updates(http: aiohttp.ClientSession, url: str) -> None:
    offset = 0
    while True:
        async with http.post(f"{url}/bot{TOKEN}/getUpdates", data={"offset": offset, "limit": 100}) as resp:
            batch = (await resp.json())["result"]
        if not batch:
            return
        offset = batch[-1]["update_id"] + 1


async def _fresh_messages(http: aiohttp.ClientSession, url: str, users: Users) -> None:
    """A new menu message per user (sent as the bot) before each run, as bench_menu does."""
    text, markup = users.main
    reply_markup = markup.model_dump_json(exclude_none=True) if markup is not None else None

    async def send(user: int) -> int:
        params: dict[str, Any] = {"chat_id": user, "text": text, "parse_mode": "HTML"}
        if reply_markup is not None:
            params["reply_markup"] = reply_markup
        async with http.post(f"{url}/bot{TOKEN}/sendMessage", data=params) as resp:
            body = await resp.json()
        if not body.get("ok"):
            raise RuntimeError(f"sendMessage to {user}: {body}")
        return int(body["result"]["message_id"])

    sent = await _bounded(users.ids, 32, send)
    users.message_ids = dict(zip(users.ids, sent, strict=True))
    users.screen = dict.fromkeys(users.ids, "main")


def _section(results: list[Result], args: argparse.Namespace) -> str:
    med = statistics.median
    by = {n: [r for r in results if r.processes == n] for n in PROCESSES}
    base = med(r.rate for r in by[1])
    rows = [
        f"| {n} | {med(r.rate for r in runs):.0f} | {med(r.pct(0.5) for r in runs):.1f} | "
        f"{med(r.pct(0.99) for r in runs):.1f} | {med(r.rate for r in runs) / base:.2f}× |"
        for n, runs in by.items()
    ]
    return "\n".join(
        [
            SECTION,
            "",
            "The real bot processes in webhook mode (`WEBHOOK_URL` set), all on one port with",
            "SO_REUSEPORT as in production, behind the Telegram emulator in its own process,",
            "which POSTs updates over up to `max_connections` parallel requests as Telegram does.",
            "Known users press main-menu buttons (main, then help or settings); each press edits",
            f"the menu message and answers the callback. {args.in_flight} updates kept unanswered",
            "at the webhook (getWebhookInfo's pending count); latency = from the press to the",
            "bot's answerCallbackQuery as the",
            "emulator recorded it. Scaling = updates/s over one process's.",
            "",
            f"Command: `{COMMAND} --users {args.users} --updates {args.updates} --rounds {args.rounds}"
            f" --in-flight {args.in_flight}`: medians of",
            f"{args.rounds} interleaved rounds after a warm-up round. Machine: {platform.machine()},",
            f"{os.cpu_count()} CPUs, Python {platform.python_version()}, {datetime.now(UTC):%Y-%m-%d},",
            f"load average {args.load_before:.2f} when the run began.",
            "Postgres, Redis, the emulator, this driver and the N bot processes share these",
            f"{os.cpu_count()} cores: one bot process and the rest already fill them, so here more",
            "processes cannot add CPU, only share it. What the run shows is that N processes on",
            "one port take Telegram's parallel deliveries between them and answer every press (the",
            "driver fails on an unanswered one); how N processes scale needs N free cores.",
            "",
            "| bot processes | updates/s | p50 ms | p99 ms | scaling |",
            "|---:|---:|---:|---:|---:|",
            *rows,
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1500)
    parser.add_argument("--updates", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--in-flight", type=int, default=100)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    args.load_before = os.getloadavg()[0]
    results = asyncio.run(bench(args))
    section = _section(results, args)
    print(section)  # noqa: T201
    if args.write:
        write_section(section)


if __name__ == "__main__":
    main()
