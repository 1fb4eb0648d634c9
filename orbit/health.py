"""The health of a deployment: workers' heartbeats and supervisord states, schema,
Postgres, Redis, the janitor's chores. Read by `orbit status` and the bot's admin
health screen alike.

Health is never claimed on half the facts: when supervisord cannot be read (no
socket, refused, a fault) the workers' states are `unknown`, the verdict is
"health unknown" and the exit code is 1, like anything down.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import xmlrpc.client
from pathlib import Path

import asyncpg
import msgspec
from redis.asyncio import Redis
from supervisor.xmlrpc import SupervisorTransport

from orbit import keys
from orbit.chore_stats import ChoreStats, read_stats
from orbit.connections import create_redis
from orbit.migrate import current_revision
from orbit.runtime import Heartbeat
from orbit.schema import SCHEMA_HEAD
from orbit.settings import Settings

SUPERVISOR_SOCKET = Path(__file__).resolve().parents[1] / "run" / "supervisor.sock"


class WorkerStatus(msgspec.Struct):
    name: str
    ok: bool
    heartbeat_age: float | None
    pid: int | None
    supervisor_state: str
    heartbeat_fresh: bool = False


class Status(msgspec.Struct):
    ok: bool
    postgres: str
    redis: str
    supervisor: str  # "up", or "unknown: why it could not be read"
    schema: str | None
    schema_expected: str
    workers: list[WorkerStatus]
    # The janitor's chores: last run, duration, count, error (orbit/janitor/schedule.py).
    chores: list[ChoreStats] = []


class SupervisorUnreadable(Exception):
    pass


def supervisor_states(socket_path: str) -> dict[str, str]:
    """`{program: state}` from supervisord's XML-RPC; SupervisorUnreadable when it cannot be read."""
    if not Path(socket_path).exists():
        raise SupervisorUnreadable(f"no socket at {socket_path}")
    transport = SupervisorTransport(None, None, f"unix://{socket_path}")
    proxy = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)
    try:
        infos = proxy.supervisor.getAllProcessInfo()
    except (OSError, xmlrpc.client.Fault, xmlrpc.client.ProtocolError) as exc:
        raise SupervisorUnreadable(f"{socket_path}: {exc}") from None
    return program_states(infos)  # type: ignore[arg-type]


def program_states(infos: list[dict[str, object]]) -> dict[str, str]:
    """`{program: state}` from getAllProcessInfo. With numprocs > 1 (webhook mode's bots)
    supervisord names the processes `<program>_<n>`: a program is as well as its worst."""
    states: dict[str, str] = {}
    for info in infos:
        name, state = str(info["name"]), str(info["statename"])
        numbered = re.fullmatch(r"(.+)_\d+", name)
        if numbered and numbered.group(1) in keys.WORKERS:
            name = numbered.group(1)
            if states.get(name, "RUNNING") != "RUNNING":
                continue
        states[name] = state
    return states


def _supervisor(socket_path: str) -> tuple[str, dict[str, str]]:
    try:
        return "up", supervisor_states(socket_path)
    except SupervisorUnreadable as exc:
        return f"unknown: {exc}", {}


async def _postgres(settings: Settings) -> tuple[str, str | None]:
    try:
        conn = await asyncpg.connect(settings.dsn, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"down: {exc}", None
    try:
        return "up", await current_revision(conn)
    finally:
        await conn.close()


async def _heartbeats(redis: Redis) -> tuple[str, dict[str, Heartbeat]]:
    try:
        raw = await redis.mget([keys.heartbeat(name) for name in keys.WORKERS])
    except Exception as exc:  # any redis or socket failure means "down" here
        return f"down: {exc}", {}
    beats = {
        name: msgspec.json.decode(value, type=Heartbeat)
        for name, value in zip(keys.WORKERS, raw, strict=True)
        if value is not None
    }
    return "up", beats


async def _chores(redis: Redis) -> list[ChoreStats]:
    try:
        stats = await read_stats(redis)
    except Exception:  # Redis down is reported by _heartbeats already
        return []
    return [stats[name] for name in sorted(stats)]


async def collect(settings: Settings, socket_path: str) -> Status:
    redis = create_redis(settings)
    try:
        (postgres, schema), (redis_state, beats), (supervisor, states), chores = await asyncio.gather(
            _postgres(settings),
            _heartbeats(redis),
            asyncio.to_thread(_supervisor, socket_path),
            _chores(redis),
        )
    finally:
        with contextlib.suppress(Exception):
            await redis.aclose()
    now = time.time()
    workers = []
    for name in keys.WORKERS:
        beat = beats.get(name)
        age = None if beat is None else max(0.0, now - beat.at)
        state = states.get(name, "absent") if supervisor == "up" else "unknown"
        fresh = age is not None and age <= settings.heartbeat_ttl_seconds
        workers.append(
            WorkerStatus(
                name=name,
                ok=fresh and state == "RUNNING",
                heartbeat_age=None if age is None else round(age, 1),
                pid=None if beat is None else beat.pid,
                supervisor_state=state,
                heartbeat_fresh=fresh,
            )
        )
    ok = (
        postgres == "up"
        and redis_state == "up"
        and supervisor == "up"
        and schema == SCHEMA_HEAD
        and all(w.ok for w in workers)
    )
    # A driver's error may quote the URL it was given: no password in what is printed.
    return Status(
        ok,
        settings.scrub(postgres),
        settings.scrub(redis_state),
        supervisor,
        schema,
        SCHEMA_HEAD,
        workers,
        chores,
    )


def verdict(status: Status) -> str:
    if status.ok:
        return "all healthy"
    down = (
        status.postgres != "up"
        or status.redis != "up"
        or status.schema != status.schema_expected
        # A missing or stale heartbeat is down whatever supervisord would have said.
        or any(
            not w.ok and (w.supervisor_state != "unknown" or not w.heartbeat_fresh)
            for w in status.workers
        )
    )
    if down:
        return "something is down"
    return "health unknown: supervisord could not be read"
