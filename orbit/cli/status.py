"""`orbit status`: workers' heartbeats and supervisord states, schema, Postgres, Redis."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
import xmlrpc.client
from pathlib import Path

import asyncpg
import msgspec
from redis.asyncio import Redis
from supervisor.xmlrpc import SupervisorTransport

from orbit import keys
from orbit.connections import create_redis
from orbit.migrate import current_revision
from orbit.runtime import Heartbeat
from orbit.schema import SCHEMA_HEAD
from orbit.settings import Settings

SUPERVISOR_SOCKET = Path(__file__).resolve().parents[2] / "run" / "supervisor.sock"


class WorkerStatus(msgspec.Struct):
    name: str
    ok: bool
    heartbeat_age: float | None
    pid: int | None
    supervisor_state: str


class Status(msgspec.Struct):
    ok: bool
    postgres: str
    redis: str
    schema: str | None
    schema_expected: str
    workers: list[WorkerStatus]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("status", help="health of workers and dependencies")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--socket", default=str(SUPERVISOR_SOCKET), help="supervisord socket")
    parser.set_defaults(func=run)


def supervisor_states(socket_path: str) -> dict[str, str]:
    """`{program: state}` from supervisord's XML-RPC; empty when it is not running."""
    if not Path(socket_path).exists():
        return {}
    transport = SupervisorTransport(None, None, f"unix://{socket_path}")
    proxy = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)
    try:
        infos = proxy.supervisor.getAllProcessInfo()
    except (OSError, xmlrpc.client.Fault):
        return {}
    return {info["name"]: info["statename"] for info in infos}  # type: ignore[union-attr]


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


async def collect(settings: Settings, socket_path: str) -> Status:
    redis = create_redis(settings)
    try:
        (postgres, schema), (redis_state, beats), states = await asyncio.gather(
            _postgres(settings),
            _heartbeats(redis),
            asyncio.to_thread(supervisor_states, socket_path),
        )
    finally:
        with contextlib.suppress(Exception):
            await redis.aclose()
    now = time.time()
    workers = []
    for name in keys.WORKERS:
        beat = beats.get(name)
        age = None if beat is None else max(0.0, now - beat.at)
        state = states.get(name, "unknown" if not states else "absent")
        fresh = age is not None and age <= settings.heartbeat_ttl_seconds
        workers.append(
            WorkerStatus(
                name=name,
                ok=fresh and state in ("RUNNING", "unknown"),
                heartbeat_age=None if age is None else round(age, 1),
                pid=None if beat is None else beat.pid,
                supervisor_state=state,
            )
        )
    ok = (
        postgres == "up"
        and redis_state == "up"
        and schema == SCHEMA_HEAD
        and all(w.ok for w in workers)
    )
    # A driver's error may quote the URL it was given: no password in what is printed.
    return Status(ok, settings.scrub(postgres), settings.scrub(redis_state), schema, SCHEMA_HEAD, workers)


def render(status: Status) -> str:
    behind = ""
    if status.schema != status.schema_expected:
        behind = f" (expected {status.schema_expected})"
    lines = [
        f"postgres  {status.postgres}",
        f"redis     {status.redis}",
        f"schema    {status.schema or 'none'}{behind}",
        "",
        f"{'worker':<12} {'state':<10} {'heartbeat':<12} pid",
    ]
    for w in status.workers:
        age = "missing" if w.heartbeat_age is None else f"{w.heartbeat_age:.1f}s ago"
        mark = "" if w.ok else "  <- DOWN"
        lines.append(f"{w.name:<12} {w.supervisor_state:<10} {age:<12} {w.pid or '-'}{mark}")
    lines.append("")
    lines.append("all healthy" if status.ok else "something is down")
    return "\n".join(lines)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    status = await collect(settings, args.socket)
    if args.json:
        print(msgspec.json.encode(status).decode())  # noqa: T201
    else:
        print(render(status))  # noqa: T201
    return 0 if status.ok else 1
