"""A crowd of new users doing the whole journey through the running processes, under
Telegram's limits (the emulator's, on: 30 messages a second per bot, 1 per chat).

Every process is real and separate: the Telegram, Marzban and tonapi emulators,
and `bot`, `ton_watcher`, `balancer`, `janitor` (`python -m orbit.<name>`), on free
ports, with a PRIVATE `redis-server` (its own port, no persistence) and a database
of their own on the shared Postgres (created, migrated, dropped). N users, each a
coroutine pacing like a person (1.2-1.5 s after seeing a reaction), go:

/start → 🎁 Free trial → 🔑 My configs → ➕ New config → /menu → 💰 Balance → ➕ Top up
→ 300 ₽ → 💎 TON → (pays from a wallet, 6-8 s) → ✅ I paid → the credit notice →
/menu → 🛒 Buy a plan → 1 month → ✅ Pay 150 ₽

A step's latency runs from the action to its visible reaction (the screen, or the
press's alert for "I paid", or the notice for the credit). A person who sees nothing
for `--retry-after` seconds does it again (counted). Reported per N: journeys
completed, per-step p50/p95/p99, sends per second against the budget while demand
exceeds it (seconds in which at least 30 reactions were outstanding throughout),
429s received, sends made before a `retry_after` had passed (the emulator counts
them), effects (trial, config, credit, purchase) in the database never shown to
their user, tracebacks in the processes' logs, and `orbit audit`. `--fault kill-bot`
SIGKILLs the bot when 40 % of all steps are done and starts it again; `--fault
restart-redis` restarts the private Redis there instead.

    .venv/bin/python -m bench.bench_crowd --users 50 [--fault kill-bot|restart-redis] [--write]

Needs Postgres (ORBIT_TEST_ADMIN_DSN as the tests) and `redis-server` on PATH.
`--write` adds the run's section to BENCHMARKS.md (replacing one with the same title).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import asyncpg

from bench import report
from bench.bench_outbox import ADMIN_DSN, _dsn_for, _free_port
from orbit import keys
from orbit.migrate import upgrade
from orbit.sandbox.telegram_control import ChatEvent, ShownMessage, TelegramControl

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "BENCHMARKS.md"
BOT_TOKEN = "123456:BENCH-token"
TON_ADDRESS = "0:" + "ab" * 32
FIRST_USER = 8_000_000_000
BUDGET = 30  # Telegram's messages per second per bot (the emulator's global limit)
PACE = (1.2, 1.5)  # seconds between seeing a reaction and the next action
WALLET_TIME = (6.0, 8.0)  # opening a wallet and sending the transfer
PROCESSES = ("bot", "ton_watcher", "balancer", "janitor")

TRIAL = "Your free trial runs until"
READY = "is ready"
CREDITED = "Payment received"
PAID = "✅ Paid 150 ₽"


def _text(message: ShownMessage) -> str:
    return message.text or message.caption or ""


def _buttons(message: ShownMessage) -> list[str]:
    return message.button_texts


# --- one user ---------------------------------------------------------------------------------


@dataclass
class Step:
    name: str
    kind: str  # "send", "press", "pay"
    arg: str
    done: Callable[[ShownMessage], bool]  # the reaction, on the newest bot message


STEPS = [
    Step("start", "send", "/start", lambda m: "🎁 Free trial" in _buttons(m)),
    Step("trial", "press", "🎁 Free trial", lambda m: TRIAL in _text(m)),
    Step("configs", "press", "🔑 My configs", lambda m: "➕ New config" in _buttons(m)),
    Step("new config", "press", "➕ New config", lambda m: READY in _text(m)),
    Step("menu", "send", "/menu", lambda m: "💰 Balance" in _buttons(m)),
    Step("balance", "press", "💰 Balance", lambda m: "➕ Top up" in _buttons(m)),
    Step("top up", "press", "➕ Top up", lambda m: "300 ₽" in _buttons(m)),
    Step("amount", "press", "300 ₽", lambda m: "💎 TON" in _buttons(m)),
    Step("ton", "press", "💎 TON", lambda m: "ton://transfer/" in _text(m)),
    Step("i paid", "pay", "✅ I paid", lambda m: CREDITED in _text(m)),
    Step("menu 2", "send", "/menu", lambda m: "🛒 Buy a plan" in _buttons(m)),
    Step("plans", "press", "🛒 Buy a plan", lambda m: "1 month — 150 ₽" in _buttons(m)),
    Step("plan", "press", "1 month — 150 ₽", lambda m: "✅ Pay 150 ₽" in _buttons(m)),
    Step("pay", "press", "✅ Pay 150 ₽", lambda m: PAID in _text(m)),
]


@dataclass
class Crowd:
    control: TelegramControl
    http: aiohttp.ClientSession
    tonapi_url: str
    retry_after: float
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    outstanding: int = 0
    steps_done: int = 0
    retries: int = 0
    refused: int = 0
    completed: int = 0
    seen: dict[int, list[str]] = field(default_factory=lambda: defaultdict(list))  # every text shown


class User:
    def __init__(self, crowd: Crowd, user_id: int) -> None:
        self.crowd = crowd
        self.id = user_id
        self.events: list[ChatEvent] = []
        self.changed = asyncio.Event()
        self.last_seq = 0

    async def watch(self) -> None:
        """Follows the chat (a long poll at a time), as the user's screen does."""
        while True:
            try:
                events = await self.crowd.control.wait_for(self.id, after_seq=self.last_seq, timeout=25)
            except TimeoutError:
                continue
            except (aiohttp.ClientError, OSError):
                await asyncio.sleep(0.5)
                continue
            for event in events:
                self.last_seq = max(self.last_seq, event.seq)
                if event.message.from_bot:
                    self.events.append(event)
                    self.crowd.seen[self.id].append(_text(event.message))
            self.changed.set()

    def newest(self) -> ShownMessage | None:
        """The newest version of the newest bot message (what is at the bottom of the chat)."""
        latest: dict[int, ShownMessage] = {}
        for event in self.events:
            if event.kind != "deleted":
                latest[event.message_id] = event.message
        return latest[max(latest)] if latest else None

    def with_button(self, text: str) -> int | None:
        latest: dict[int, ShownMessage] = {}
        for event in self.events:
            latest[event.message_id] = event.message
        for message_id in sorted(latest, reverse=True):
            if text in _buttons(latest[message_id]):
                return message_id
        return None

    async def until(self, done: Callable[[ShownMessage], bool], after: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            newest = self.newest()
            if newest is not None and any(e.seq > after for e in self.events) and done(newest):
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), timeout=left)
            except TimeoutError:
                return False

    async def act(self, step: Step) -> None:
        if step.kind == "send":
            profile = {"first_name": f"U{self.id}", "language_code": "en"}
            await self.crowd.control.send_text(self.id, step.arg, **profile)
            return
        message_id = self.with_button(step.arg)
        pressed = await self.crowd.control.press(self.id, message_id=message_id, button_text=step.arg)
        answer = await self.crowd.control.callback_answer(pressed.callback_query_id, timeout=60)
        if answer.show_alert and step.kind != "pay":
            self.crowd.refused += 1  # a rate limit or an error: seen, and the screen will not come

    async def pay_from_wallet(self) -> None:
        caption = _text(self.newest()) if self.newest() else ""
        link = re.search(r"ton://transfer/[^?]+\?amount=(\d+)&text=(\S+)", caption)
        assert link is not None, f"user {self.id}: no payment link in {caption!r}"
        await asyncio.sleep(random.uniform(*WALLET_TIME))
        body = {"to": TON_ADDRESS, "amount": int(link[1]), "comment": link[2]}
        async with self.crowd.http.post(f"{self.crowd.tonapi_url}/_emulator/send_ton", json=body) as resp:
            resp.raise_for_status()

    async def journey(self) -> bool:
        crowd = self.crowd
        for step in STEPS:
            if step.kind == "pay":
                await self.pay_from_wallet()
            tries = 0
            while True:
                tries += 1
                after = self.last_seq
                crowd.outstanding += 1
                started = time.monotonic()
                try:
                    await self.act(step)
                    ok = await self.until(step.done, after, crowd.retry_after)
                except (aiohttp.ClientError, OSError, TimeoutError):
                    ok = False
                finally:
                    crowd.outstanding -= 1
                if ok:
                    crowd.latencies[step.name].append(time.monotonic() - started)
                    crowd.steps_done += 1
                    break
                if tries >= 4:
                    return False
                crowd.retries += 1  # nothing visible: a person does it again
            await asyncio.sleep(random.uniform(*PACE))
        crowd.completed += 1
        return True


# --- the processes -----------------------------------------------------------------------------


class Procs:
    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.running: dict[str, asyncio.subprocess.Process] = {}
        self.generation: dict[str, int] = defaultdict(int)

    async def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.generation[name] += 1
        log = self.logs / f"{name}-{self.generation[name]}.log"
        with log.open("wb") as out:
            self.running[name] = await asyncio.create_subprocess_exec(
                *argv, cwd=str(ROOT), env=env, stdout=out, stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    async def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        proc = self.running.pop(name, None)
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(sig)
        try:
            await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    async def stop_all(self) -> None:
        for name in list(self.running):
            await self.stop(name)

    def tracebacks(self, names: tuple[str, ...]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for log in sorted(self.logs.glob("*.log")):
            if log.name.rsplit("-", 1)[0] in names:
                counts[log.name] = log.read_text(errors="replace").count("Traceback (most recent call last)")
        return counts


async def _wait_http(http: aiohttp.ClientSession, url: str, what: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            async with http.get(url) as resp:
                if resp.status < 500:
                    return
        except aiohttp.ClientError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start")
        await asyncio.sleep(0.1)


async def _wait_redis(port: int) -> None:
    deadline = time.monotonic() + 15
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start") from None
            await asyncio.sleep(0.1)


async def _heartbeat(redis_port: int, name: str, timeout: float = 60) -> None:
    from redis.asyncio import Redis

    client = Redis(port=redis_port)
    try:
        deadline = time.monotonic() + timeout
        while not await client.exists(keys.heartbeat(name)):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start")
            await asyncio.sleep(0.2)
    finally:
        await client.aclose()


# --- one run -------------------------------------------------------------------------------------


@dataclass
class Result:
    users: int
    fault: str
    completed: int
    elapsed_s: float
    steps: dict[str, tuple[float, float, float]]  # p50, p95, p99 seconds
    retries: int
    refused: int
    sends: int
    saturated_seconds: int
    saturated_rate: float
    too_many: int
    early: int
    effects: dict[str, int]  # effect -> rows in the database
    unseen: dict[str, int]  # effect -> rows whose user never saw it
    payments: dict[str, int]  # confirmed payments per user: count -> users
    topups_doubled: int
    tracebacks: int
    audit: int
    audit_output: str


def _percentiles(values: list[float]) -> tuple[float, float, float]:
    if not values:
        return (float("nan"),) * 3  # type: ignore[return-value]
    if len(values) == 1:
        return (values[0],) * 3  # type: ignore[return-value]
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return statistics.median(values), cuts[94], cuts[98]


async def run(args: argparse.Namespace, users_n: int, dsn: str, work: Path) -> Result:
    logs = work / "logs"
    logs.mkdir()
    procs = Procs(logs)
    py = sys.executable
    ports = {name: _free_port() for name in ("redis", "telegram", "marzban", "tonapi", "bot_http")}
    redis_argv = [
        shutil.which("redis-server") or "redis-server", "--port", str(ports["redis"]), "--bind", "127.0.0.1",
        "--save", "", "--appendonly", "no", "--dir", str(work),
    ]  # fmt: skip
    telegram_url = f"http://127.0.0.1:{ports['telegram']}"
    marzban_url = f"http://127.0.0.1:{ports['marzban']}"
    tonapi_url = f"http://127.0.0.1:{ports['tonapi']}"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONUNBUFFERED": "1",
        "DATABASE_URL": dsn,
        "REDIS_URL": f"redis://127.0.0.1:{ports['redis']}/0",
        "BOT_TOKEN": BOT_TOKEN,
        "TELEGRAM_API_URL": telegram_url,
        "BOT_HTTP_HOST": "127.0.0.1",
        "BOT_HTTP_PORT": str(ports["bot_http"]),
        "S001_BASE_URL": marzban_url,
        "S001_MARZBAN_USERNAME": "admin",
        "S001_MARZBAN_PASSWORD": "admin",
        "TONAPI_URL": tonapi_url,
        "TON_ADDRESS": TON_ADDRESS,
        "PLANS_FILE": str(ROOT / "plans.json"),
        "LOG_LEVEL": "INFO",
    }
    try:
        await procs.start("redis", redis_argv)
        await _wait_redis(ports["redis"])
        await procs.start("telegram", [py, "-m", "orbit.sandbox.telegram", "--port", str(ports["telegram"]),
                                       "--log-level", "WARNING"])  # fmt: skip
        await procs.start("marzban", [py, "-m", "orbit.sandbox.marzban", "--port", str(ports["marzban"]),
                                      "--log-level", "WARNING"])  # fmt: skip
        await procs.start("tonapi", [py, "-m", "orbit.sandbox.tonapi", "--port", str(ports["tonapi"]),
                                     "--rub", "200", "--log-level", "WARNING"])  # fmt: skip
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as http:
            await _wait_http(http, f"{telegram_url}/control/rate", "the Telegram emulator")
            await _wait_http(http, f"{marzban_url}/api/admin", "the Marzban emulator")
            await _wait_http(http, f"{tonapi_url}/v2/rates?tokens=ton&currencies=rub", "the tonapi emulator")
            control = TelegramControl(telegram_url, http)
            limits = (await control.rate_stats()).limits
            assert limits.enabled, "the emulator's limits must be on"
            for name in PROCESSES:
                await procs.start(name, [py, "-m", f"orbit.{name}"], env)
                await _heartbeat(ports["redis"], name)
            print(f"N={users_n}: processes up; the crowd starts", flush=True)  # noqa: T201

            crowd = Crowd(control, http, tonapi_url, args.retry_after)
            people = [User(crowd, FIRST_USER + i) for i in range(users_n)]
            watchers = [asyncio.create_task(p.watch()) for p in people]
            samples: dict[int, list[int]] = defaultdict(list)
            total_steps = users_n * len(STEPS)
            fault_done = asyncio.Event()

            async def sample() -> None:
                while True:
                    samples[int(time.time())].append(crowd.outstanding)
                    await asyncio.sleep(0.2)

            async def fault() -> None:
                if args.fault == "none":
                    return
                while crowd.steps_done < 0.4 * total_steps:
                    await asyncio.sleep(0.2)
                if args.fault == "kill-bot":
                    print(f"  SIGKILL bot at {crowd.steps_done}/{total_steps} steps", flush=True)  # noqa: T201
                    await procs.stop("bot", signal.SIGKILL)
                    await procs.start("bot", [py, "-m", "orbit.bot"], env)
                elif args.fault == "restart-redis":
                    print(f"  restart Redis at {crowd.steps_done}/{total_steps} steps", flush=True)  # noqa: T201
                    await procs.stop("redis", signal.SIGKILL)
                    await asyncio.sleep(1.0)
                    await procs.start("redis", redis_argv)
                    await _wait_redis(ports["redis"])
                fault_done.set()

            async def progress() -> None:
                while True:
                    await asyncio.sleep(15)
                    print(f"  {crowd.steps_done}/{total_steps} steps, {crowd.completed} journeys,"  # noqa: T201
                          f" {crowd.outstanding} waiting", flush=True)  # fmt: skip

            helpers = [asyncio.create_task(sample()), asyncio.create_task(progress())]
            fault_task = asyncio.create_task(fault())
            started = time.monotonic()

            async def one(user: User) -> bool:
                await asyncio.sleep(random.uniform(0, 2.0))  # they arrive within two seconds
                return await user.journey()

            try:
                await asyncio.wait_for(asyncio.gather(*(one(p) for p in people)), timeout=args.deadline)
            except TimeoutError:
                print("  deadline reached", flush=True)  # noqa: T201
            elapsed = time.monotonic() - started
            await asyncio.sleep(3)  # late notices
            fault_task.cancel()
            for task in [*helpers, *watchers]:
                task.cancel()
            await asyncio.gather(*helpers, *watchers, fault_task, return_exceptions=True)
            stats = await control.rate_stats()

        result = await _collect(args, users_n, dsn, env, crowd, people, stats, samples, elapsed, procs)
    finally:
        await procs.stop_all()
    return result


async def _collect(
    args: argparse.Namespace, users_n: int, dsn: str, env: dict[str, str], crowd: Crowd,
    people: list[User], stats: object, samples: dict[int, list[int]], elapsed: float, procs: Procs,
) -> Result:
    per_second = {s.second: s.accepted for s in stats.per_second}  # type: ignore[attr-defined]
    saturated = [sec for sec, seen in samples.items() if seen and min(seen) >= BUDGET and len(seen) >= 4]
    rates = [per_second.get(sec, 0) for sec in saturated]
    conn = await asyncpg.connect(dsn)
    try:
        ids = [p.id for p in people]
        trials = {r["id"] for r in await conn.fetch(
            "SELECT id FROM users WHERE id = ANY($1) AND trial_used_at IS NOT NULL", ids)}  # fmt: skip
        configs = [r["user_id"] for r in await conn.fetch(
            "SELECT user_id FROM configs WHERE user_id = ANY($1) AND deleted_at IS NULL", ids)]  # fmt: skip
        credited = [r["user_id"] for r in await conn.fetch(
            "SELECT user_id FROM payments WHERE user_id = ANY($1) AND status = 'confirmed'", ids,
        )]  # fmt: skip
        purchases = [r["user_id"] for r in await conn.fetch(
            "SELECT user_id FROM purchases WHERE user_id = ANY($1)", ids)]  # fmt: skip
        per_user = await conn.fetch(
            "SELECT n, count(*) AS users FROM (SELECT user_id, count(*) AS n FROM payments"
            " WHERE status = 'confirmed' AND user_id = ANY($1) GROUP BY 1) t GROUP BY 1", ids)  # fmt: skip
        doubled = await conn.fetchval(
            "SELECT count(*) FROM (SELECT user_id FROM ledger WHERE kind = 'topup' AND user_id = ANY($1)"
            " GROUP BY 1 HAVING count(*) > 1) t", ids)  # fmt: skip
    finally:
        await conn.close()

    def unseen(owners: list[int] | set[int], text: str) -> int:
        return sum(1 for user in owners if not any(text in t for t in crowd.seen.get(user, ())))

    audit = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from orbit.cli.main import main; main()", "audit",
        cwd=str(ROOT), env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    audit_out, _ = await audit.communicate()
    tracebacks = procs.tracebacks(PROCESSES)
    for name, count in tracebacks.items():
        if count:
            print(f"  {count} tracebacks in {name}", flush=True)  # noqa: T201
    return Result(
        users=users_n,
        fault=args.fault,
        completed=crowd.completed,
        elapsed_s=elapsed,
        steps={s.name: _percentiles(crowd.latencies[s.name]) for s in STEPS},
        retries=crowd.retries,
        refused=crowd.refused,
        sends=stats.accepted_total,  # type: ignore[attr-defined]
        saturated_seconds=len(saturated),
        saturated_rate=statistics.fmean(rates) if rates else 0.0,
        too_many=len(stats.too_many_requests),  # type: ignore[attr-defined]
        early=stats.early_retries,  # type: ignore[attr-defined]
        effects={
            "trial": len(trials), "config": len(configs), "credit": len(credited), "purchase": len(purchases)
        },
        unseen={
            "trial": unseen(trials, TRIAL),
            "config": unseen(configs, READY),
            "credit": unseen(credited, CREDITED),
            "purchase": unseen(purchases, PAID),
        },
        payments={str(r["n"]): r["users"] for r in per_user},
        topups_doubled=doubled,
        tracebacks=sum(tracebacks.values()),
        audit=audit.returncode or 0,
        audit_output=audit_out.decode(errors="replace").strip().splitlines()[-1:][0] if audit_out else "",
    )


def render(r: Result, command: str) -> str:
    title = f"## Crowd: {r.users} users, whole journey, Telegram's limits on" + (
        "" if r.fault == "none" else f", {r.fault} mid-run"
    )
    lines = [
        title,
        "",
        "`bench/bench_crowd.py` (see its docstring): real processes, emulator limits on"
        f" ({BUDGET}/s per bot, 1/s per chat), people pacing {PACE[0]}-{PACE[1]} s.",
        "",
        f"Command: `{command}`.",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()},"
        f" {datetime.now(UTC):%Y-%m-%d %H:%M} UTC (a shared host: other test runs were going on).",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| journeys completed | {r.completed} / {r.users} |",
        f"| wall time | {r.elapsed_s:.0f} s |",
        f"| sends accepted by Telegram (emulator) | {r.sends} |",
        f"| sends/s while ≥{BUDGET} reactions were waiting ({r.saturated_seconds} s) |"
        f" {r.saturated_rate:.1f} ({r.saturated_rate / BUDGET:.0%} of the budget) |",
        f"| 429 received | {r.too_many} |",
        f"| sends before a retry_after had passed | {r.early} |",
        f"| actions repeated (nothing seen for the retry time) / refused presses |"
        f" {r.retries} / {r.refused} |",
        f"| effects in the database: trial / config / credit / purchase |"
        f" {r.effects['trial']} / {r.effects['config']} / {r.effects['credit']} / {r.effects['purchase']} |",
        f"| of them never shown to their user | {sum(r.unseen.values())} ({r.unseen}) |",
        f"| users by confirmed payments / top-ups credited twice | {r.payments} / {r.topups_doubled} |",
        f"| tracebacks in the processes' logs | {r.tracebacks} |",
        f"| `orbit audit` | exit {r.audit}: {r.audit_output} |",
        "",
        "| step (action → visible reaction) | p50 | p95 | p99 |",
        "|---|---:|---:|---:|",
    ]
    for name, (p50, p95, p99) in r.steps.items():
        lines.append(f"| {name} | {p50:.2f} s | {p95:.2f} s | {p99:.2f} s |")
    lines.append("")
    return "\n".join(lines)


def write_section(text: str) -> None:
    report.write_section(text)


async def main_async(args: argparse.Namespace) -> int:
    failed = False
    for users_n in args.users:
        name = f"orbit_bench_crowd_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(ADMIN_DSN)
        work = Path(tempfile.mkdtemp(prefix="orbit-crowd-"))
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
            dsn = _dsn_for(name)
            await asyncio.to_thread(upgrade, dsn)
            result = await run(args, users_n, dsn, work)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
        command = f".venv/bin/python -m bench.bench_crowd --users {users_n}" + (
            "" if args.fault == "none" else f" --fault {args.fault}"
        )
        text = render(result, command)
        print(text, flush=True)  # noqa: T201
        print(f"(logs kept in {work / 'logs'})", flush=True)  # noqa: T201
        if args.write:
            write_section(text)
        failed |= bool(
            result.completed != users_n or result.early or sum(result.unseen.values()) or result.audit
            or result.topups_doubled
        )  # fmt: skip
    return 1 if failed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=lambda v: [int(n) for n in v.split(",")], default=[50])
    parser.add_argument("--fault", choices=("none", "kill-bot", "restart-redis"), default="none")
    parser.add_argument("--retry-after", type=float, default=60.0, help="a person repeats an action after")
    parser.add_argument("--deadline", type=float, default=1200.0, help="seconds for the whole crowd")
    parser.add_argument("--write", action="store_true", help="add the section to BENCHMARKS.md")
    sys.exit(asyncio.run(main_async(parser.parse_args())))


if __name__ == "__main__":
    main()
