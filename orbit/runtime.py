"""The supervised-actor runtime shared by the four processes.

A process is a `Worker`: a name, a `setup` that builds its resources and
returns its `Job`, a timer interval and the pub/sub channels that wake it early.
The runtime owns everything around the job: settings, logging, the Postgres
pool, Redis, an HTTP session, the heartbeat key, the optional single-active
lease, the loop of units of work and a clean exit on SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import aiohttp
import asyncpg
import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from orbit import keys, ops_http
from orbit.connections import StartupError, check_redis, create_pool, create_redis
from orbit.logs import setup_logging
from orbit.metrics import Metrics, activate
from orbit.migrate import require_schema
from orbit.outages import dependency_down
from orbit.plans import PlanError, Plans, load_plans
from orbit.redis_owned import delete_if_owner
from orbit.settings import Settings, SettingsError, load_settings

log = logging.getLogger(__name__)

EXIT_CONFIG = 2  # a missing or malformed setting or plans.json
EXIT_STARTUP = 3  # a dependency unreachable or the schema behind


@dataclass
class Context:
    name: str
    settings: Settings
    pool: asyncpg.Pool
    redis: Redis
    http: aiohttp.ClientSession
    plans: Plans
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    metrics: Metrics = field(default_factory=Metrics)
    liveness: ops_http.Liveness | None = None  # the heartbeat's; None outside `run()`

    def probe(self) -> ops_http.Probe:
        """What `/healthz` and `/metrics` read."""
        return ops_http.Probe(
            self.pool, self.redis, self.metrics, self.liveness, self.settings.heartbeat_ttl_seconds
        )


@dataclass(frozen=True)
class Job:
    """What a process does: `tick` is one unit of work, run on the timer and on
    wake-ups; `serve` is a long-running task (the bot's polling) that must return
    soon after `ctx.stopping` is set."""

    tick: Callable[[], Awaitable[None]] | None = None
    serve: Callable[[], Awaitable[None]] | None = None


@dataclass(frozen=True)
class Worker:
    name: str
    setup: Callable[[Context, AsyncExitStack], Awaitable[Job]]
    interval: float = 60.0
    channels: tuple[str, ...] = ()
    lease: bool = False
    require: tuple[str, ...] = ()  # settings this process cannot run without
    serves_ops: bool = False  # serves /healthz and /metrics itself (the bot, on its listeners)


class Heartbeat(msgspec.Struct):
    pid: int
    host: str
    started_at: float
    at: float
    active: bool  # holds its lease (always true for workers without one)


# Compare-and-set: only the owner may extend its lease (and drop it: redis_owned).
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""


class Lease:
    """A single-active lease: `SET NX PX`, renewed at a third of its TTL.

    Holding is judged locally from the last successful renewal, so a process cut
    off from Redis stops acting as the holder before the key can expire."""

    def __init__(self, redis: Redis, name: str, ttl: float, metrics: Metrics | None = None) -> None:
        self.redis = redis
        self.name = name
        self.metrics = metrics
        self.key = keys.lease(name)
        self.ttl = ttl
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._valid_until = 0.0
        self.acquired = asyncio.Event()

    @property
    def held(self) -> bool:
        return time.monotonic() < self._valid_until

    async def refresh(self) -> bool:
        """Acquire the lease if free, renew it if ours; return whether we hold it."""
        started = time.monotonic()
        ttl_ms = str(int(self.ttl * 1000))
        try:
            if self.held or self.acquired.is_set():
                ok = bool(await self.redis.eval(_RENEW, 1, self.key, self.owner, ttl_ms))
            else:
                ok = bool(await self.redis.set(self.key, self.owner, nx=True, px=int(ttl_ms)))
        except (RedisError, OSError) as exc:
            log.warning("lease %s: redis error %s", self.key, exc)
            if self.metrics is not None:
                self.metrics.inc("dependency_errors_total", dependency="redis")
            ok = False
            if self.held:
                return True  # keep acting until the local validity runs out
        if ok:
            if not self.acquired.is_set():
                log.info("lease %s acquired by %s", self.key, self.owner)
            self._valid_until = started + self.ttl
            self.acquired.set()
        else:
            if self.acquired.is_set():
                log.warning("lease %s lost", self.key)
            self._valid_until = 0.0
            self.acquired.clear()
        if self.metrics is not None:
            self.metrics.set("lease_held", 1 if ok else 0, lease=self.name)
        return ok

    async def release(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            await delete_if_owner(self.redis, self.key, self.owner)
        self._valid_until = 0.0
        self.acquired.clear()


async def _keep_lease(lease: Lease, stopping: asyncio.Event) -> None:
    while not stopping.is_set():
        await lease.refresh()
        await _sleep_or(stopping, lease.ttl / 3)


async def _heartbeat(ctx: Context, lease: Lease | None, started_at: float) -> None:
    key = keys.heartbeat(ctx.name)
    ttl = ctx.settings.heartbeat_ttl_seconds
    host = socket.gethostname()
    while not ctx.stopping.is_set():
        beat = Heartbeat(
            pid=os.getpid(),
            host=host,
            started_at=started_at,
            at=time.time(),
            active=lease is None or lease.held,
        )
        # A standby must not hide the active holder's beat; it writes only when none is fresh.
        try:
            await ctx.redis.set(key, msgspec.json.encode(beat), ex=ttl, nx=not beat.active)
        except (RedisError, OSError) as exc:
            log.warning("heartbeat failed: %s", exc)
            ctx.metrics.inc("dependency_errors_total", dependency="redis")
        else:
            if ctx.liveness is not None:
                ctx.liveness.beat()
            ctx.metrics.set("heartbeat_timestamp_seconds", beat.at)
        await _sleep_or(ctx.stopping, ttl / 3)


async def _listen(ctx: Context, channels: tuple[str, ...], wake: asyncio.Event) -> None:
    """Turn pub/sub messages into wake-ups; reconnect with backoff on Redis errors."""
    delay = 1.0
    while not ctx.stopping.is_set():
        pubsub = ctx.redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(*(keys.channel(ctx.redis, name) for name in channels))
            delay = 1.0
            while not ctx.stopping.is_set():
                message = await pubsub.get_message(timeout=1.0)
                if message is not None:
                    wake.set()
        except (RedisError, OSError) as exc:
            log.warning("pub/sub %s failed: %s; retrying in %.0fs", channels, exc, delay)
            await _sleep_or(ctx.stopping, delay)
            delay = min(delay * 2, 30.0)
        finally:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()


async def _sleep_or(event: asyncio.Event, seconds: float) -> bool:
    """Sleep up to `seconds`; return True if `event` fired first."""
    try:
        await asyncio.wait_for(event.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True


async def wait_any(events: Sequence[asyncio.Event], seconds: float) -> None:
    """Until one of `events` is set or `seconds` pass."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


def _backoff(worker: Worker, failures: int) -> float:
    """After failures, retry soon (but never later than the normal interval)."""
    return min(worker.interval, 2.0**failures)


async def _tick_loop(
    ctx: Context,
    worker: Worker,
    tick: Callable[[], Awaitable[None]],
    wake: asyncio.Event,
    lease: Lease | None,
) -> None:
    failures = 0
    while not ctx.stopping.is_set():
        if lease is not None and not lease.held:
            await wait_any([ctx.stopping, lease.acquired], lease.ttl / 3)
            continue
        wake.clear()
        started = time.monotonic()
        try:
            await tick()
        except Exception as exc:
            failures += 1
            pause = _backoff(worker, failures)
            down = dependency_down(exc)
            ctx.metrics.inc("units_total", outcome="failed" if down is None else "dependency_down")
            ctx.metrics.observe("unit_duration_seconds", time.monotonic() - started)
            if down is not None:
                ctx.metrics.inc("dependency_errors_total", dependency=down.lower())
            if down is None:
                log.exception("unit failed after %.3fs", time.monotonic() - started)
            else:  # expected while it restarts: the pool and the client reconnect by themselves
                log.warning(
                    "unit failed after %.3fs: %s unavailable (%r); retrying in %.0fs",
                    time.monotonic() - started, down, exc, pause,
                )  # fmt: skip
        else:
            ctx.metrics.inc("units_total", outcome="done")
            ctx.metrics.observe("unit_duration_seconds", time.monotonic() - started)
            if failures:
                log.info("unit done in %.3fs after %d failed", time.monotonic() - started, failures)
            else:
                log.info("unit done in %.3fs", time.monotonic() - started)
            failures = 0
            pause = worker.interval
        if ctx.stopping.is_set():
            break
        await wait_any([ctx.stopping, wake], pause)


async def run(worker: Worker, settings: Settings) -> None:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    started_at = time.time()
    plans = load_plans(settings)
    metrics = Metrics(worker.name)
    activate(metrics)  # domain code records through orbit.metrics.count (see there)
    async with AsyncExitStack() as stack:
        pool = await create_pool(settings)
        stack.push_async_callback(pool.close)
        await require_schema(pool)
        redis = create_redis(settings)
        stack.push_async_callback(redis.aclose)
        await check_redis(redis, settings)
        http = await stack.enter_async_context(aiohttp.ClientSession())
        ctx = Context(worker.name, settings, pool, redis, http, plans, stopping, metrics, ops_http.Liveness())
        job = await worker.setup(ctx, stack)
        port = settings.worker_metrics_port(worker.name)
        if port and not worker.serves_ops:
            await ops_http.serve(stack, ctx.probe(), settings.metrics_host, port)

        lease = Lease(redis, worker.name, settings.lease_ttl_seconds, metrics) if worker.lease else None
        if lease is not None:
            stack.push_async_callback(lease.release)
            await lease.refresh()
        wake = asyncio.Event()
        background = [asyncio.create_task(_heartbeat(ctx, lease, started_at))]
        if lease is not None:
            background.append(asyncio.create_task(_keep_lease(lease, stopping)))
        if worker.channels:
            background.append(asyncio.create_task(_listen(ctx, worker.channels, wake)))
        main: list[asyncio.Task[None]] = []
        if job.tick is not None:
            main.append(asyncio.create_task(_tick_loop(ctx, worker, job.tick, wake, lease)))
        if job.serve is not None:
            main.append(asyncio.create_task(job.serve()))
        log.info(
            "started pid=%d lease=%s channels=%s interval=%.0fs",
            os.getpid(),
            "yes" if lease else "no",
            ",".join(worker.channels) or "-",
            worker.interval,
        )

        stop_waiter = asyncio.create_task(stopping.wait())
        done, _ = await asyncio.wait([stop_waiter, *main], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not stop_waiter and task.exception() is not None:
                log.error("%s crashed: %r", worker.name, task.exception())
                stopping.set()
        stopping.set()
        grace = settings.shutdown_grace_seconds
        log.info("stopping: finishing the current unit (grace %.0fs)", grace)
        pending: set[asyncio.Task[None]] = set()
        if main:
            _, pending = await asyncio.wait(main, timeout=grace)
        for task in pending:
            log.warning("abandoning an unfinished unit after the grace period")
            task.cancel()
        for task in background:
            task.cancel()
        await asyncio.gather(*main, *background, stop_waiter, return_exceptions=True)
        crashed = [t for t in main if not t.cancelled() and t.exception() is not None]
        if crashed:
            raise crashed[0].exception()  # type: ignore[misc]
    log.info("stopped")


def main(worker: Worker) -> None:
    """Console-script entry: settings, logging, run; one-line errors and exit codes."""
    prog = f"orbit-{worker.name.replace('_', '-')}"
    try:
        settings = load_settings(require=worker.require)
    except SettingsError as exc:
        print(f"{prog}: configuration error: {exc}", file=sys.stderr)  # noqa: T201
        sys.exit(EXIT_CONFIG)
    setup_logging(settings.log_level, worker.name)
    try:
        asyncio.run(run(worker, settings))
    except (SettingsError, PlanError) as exc:
        print(f"{prog}: configuration error: {exc}", file=sys.stderr)  # noqa: T201
        sys.exit(EXIT_CONFIG)
    except StartupError as exc:
        # The message lands in logs/*.log: no credential of the settings may be in it.
        print(f"{prog}: cannot start: {settings.scrub(str(exc))}", file=sys.stderr)  # noqa: T201
        sys.exit(EXIT_STARTUP)
