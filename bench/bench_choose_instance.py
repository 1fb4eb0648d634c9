"""Placement cost: `choose_instance()` (one Redis read of the balancer's scores)
against the naive way (ask every panel for its nodes, node traffic and system
stats on every request, score them, pick the lowest).

The panels are Marzban emulators in a separate process (so serving them does
not share this process's CPU), 2 nodes and 50 users each, at 1, 5 and 20
instances; optionally with an added per-request delay that stands for the
network between the bot and a remote panel.

    .venv/bin/python -m bench.bench_choose_instance [--write]

Needs Redis (REDIS_URL or redis://127.0.0.1:6379); it takes a free db number
the way the test harness does and flushes only that db. No Postgres: with
fresh scores `choose_instance` never touches the database, and the benchmark
fails if it tries. `--write` replaces this benchmark's section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from redis.asyncio import Redis

from bench import report
from orbit.balancer.refresh import probe, refresh
from orbit.marzban.client import MarzbanClient
from orbit.marzban.instances import Instance
from orbit.marzban.placement import choose_instance, instance_of

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "BENCHMARKS.md"
SECTION = "## choose_instance: Redis scores vs asking every panel"
COMMAND = ".venv/bin/python -m bench.bench_choose_instance --write"
SIZES = (1, 5, 20)
NODES = 2
USERS = 50
TIMEOUT = 10.0


class _NoDatabase:
    """Stands in for the pool: the fast path must not reach the fallback."""

    async def fetchval(self, *args: object) -> object:
        raise AssertionError("choose_instance fell back to the database: scores not fresh")


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@asynccontextmanager
async def _panels(count: int) -> AsyncIterator[list[str]]:
    ports = _free_ports(count)
    args = [f"--port={p}" for p in ports]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "orbit.sandbox.marzban", *args,
        f"--nodes={NODES}", f"--users={USERS}", "--log-level=WARNING",
        cwd=str(ROOT), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    try:
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 30
            for url in urls:
                while True:
                    try:
                        async with http.get(f"{url}/_emulator/state") as resp:
                            if resp.status == 200:
                                break
                    except aiohttp.ClientError:
                        pass
                    if time.monotonic() > deadline:
                        raise RuntimeError("the emulators did not start")
                    await asyncio.sleep(0.05)
        yield urls
    finally:
        proc.terminate()
        await proc.wait()


async def _set_delay(http: aiohttp.ClientSession, urls: list[str], seconds: float) -> None:
    for url in urls:
        async with http.post(f"{url}/_emulator/slow", json={"seconds": seconds}) as resp:
            resp.raise_for_status()


async def _lease_redis_db(base: str) -> tuple[Redis, Callable[[], Awaitable[None]]]:
    lock = Redis.from_url(f"{base}/0")
    owner = f"bench:{os.getpid()}"
    for number in range(15, 0, -1):
        key = f"orbit-test:db-lease:{number}"
        if await lock.set(key, owner, nx=True, ex=600):
            break
    else:
        raise RuntimeError("no free Redis db")
    redis = Redis.from_url(f"{base}/{number}", decode_responses=True)
    await redis.flushdb()

    async def release() -> None:
        await redis.flushdb()
        await redis.aclose()
        await lock.delete(key)
        await lock.aclose()

    return redis, release


def _stats(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.mean(ordered), statistics.median(ordered), p99


async def _time(fn: Callable[[], Awaitable[str]], rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        await fn()
        samples.append(time.perf_counter() - started)
    return samples


async def _naive_choice(clients: list[MarzbanClient]) -> str:
    now = datetime.now(UTC).replace(tzinfo=None)
    probes = await asyncio.gather(*(probe(c, now) for c in clients))
    best = min(
        ((score, p.instance_id) for p in probes if p.scores for score in p.scores.members().values()),
        default=None,
    )
    if best is None:
        raise RuntimeError("no panel answered")
    return best[1]


async def bench_size(
    redis: Redis, count: int, delays: list[float], rounds: int, naive_rounds: int
) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    async with _panels(count) as urls, aiohttp.ClientSession() as http:
        registry = [
            Instance(id=f"p{i}", name=f"p{i}", base_url=url, username="admin", password="admin")
            for i, url in enumerate(urls)
        ]
        clients = [MarzbanClient(http, redis, i, timeout=TIMEOUT) for i in registry]
        result = await refresh(redis, http, registry, timeout=TIMEOUT)  # also caches the tokens
        assert not result.down, result.down
        pool = _NoDatabase()
        chosen = await choose_instance(redis, pool)  # type: ignore[arg-type]
        lowest = instance_of(min(result.members, key=result.members.__getitem__))
        assert chosen == lowest == await _naive_choice(clients)  # both ways agree
        for delay in delays:
            await _set_delay(http, urls, delay)
            fast = await _time(lambda: choose_instance(redis, pool), rounds)  # type: ignore[arg-type]
            slow = await _time(lambda: _naive_choice(clients), naive_rounds)
            for way, samples, requests in (("redis", fast, 0), ("naive", slow, 3 * count)):
                mean, p50, p99 = _stats(samples)
                rows.append(
                    {
                        "instances": count,
                        "delay_ms": delay * 1000,
                        "way": way,
                        "rounds": len(samples),
                        "mean_ms": mean * 1000,
                        "p50_ms": p50 * 1000,
                        "p99_ms": p99 * 1000,
                        "panel_requests": requests,
                    }
                )
                print(  # noqa: T201
                    f"{count:>3} instances, +{delay * 1000:.0f} ms/request, {way:<5}:"
                    f" p50 {p50 * 1000:8.3f} ms  p99 {p99 * 1000:8.3f} ms  ({len(samples)} choices)"
                )
    return rows


def render(rows: list[dict[str, object]], args: argparse.Namespace) -> str:
    lines = [
        SECTION,
        "",
        "Latency of one placement decision (`bench/bench_choose_instance.py`). *redis*:",
        "`choose_instance()` = one pipelined Redis round trip (ZRANGE of `balancer:scores` +",
        "GET `balancer:refreshed_at`), no panel request. *naive*: on every choice, ask every",
        "panel `GET /api/system`, `/api/nodes`, `/api/nodes/usage` (in parallel; tokens cached",
        "in Redis as the client does), score, take the lowest. Panels: Marzban emulators in a",
        f"separate process, {NODES} nodes and {USERS} users each; *+delay* is added by the",
        "emulator to every request, standing for the network to a remote panel.",
        "",
        f"Command: `{COMMAND}` (rounds: {args.rounds} redis, {args.naive_rounds} naive per cell).",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()},"
        f" {datetime.now(UTC):%Y-%m-%d}.",
        "",
        "| instances | +delay/request | way | p50 ms | p99 ms | mean ms | panel requests/choice |",
        "|---:|---:|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['instances']} | {row['delay_ms']:.0f} ms | {row['way']} |"
            f" {row['p50_ms']:.3f} | {row['p99_ms']:.3f} | {row['mean_ms']:.3f} |"
            f" {row['panel_requests']} |"
        )
    lines += [
        "",
        "Reading: the Redis read costs the same at 1 and 20 instances and asks no panel; the",
        "naive way grows with the slowest of 3 × N requests per choice, puts 3 × N requests on",
        "the panels for every config created, and fails or stalls when one panel does.",
        "",
    ]
    return "\n".join(lines)


def write_section(text: str) -> None:
    report.write_section(text, SECTION)


async def main_async(args: argparse.Namespace) -> None:
    base = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")
    if base.count("/") > 2:  # drop a db number; we lease our own
        base = base.rsplit("/", 1)[0]
    redis, release = await _lease_redis_db(base)
    try:
        rows = []
        for count in args.sizes:
            rows += await bench_size(
                redis, count, [d / 1000 for d in args.delays_ms], args.rounds, args.naive_rounds
            )
    finally:
        await release()
    text = render(rows, args)
    if args.write:
        write_section(text)
        print(f"wrote {BENCHMARKS}")  # noqa: T201


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--delays-ms", type=float, nargs="+", default=[0.0, 20.0])
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--naive-rounds", type=int, default=100)
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
