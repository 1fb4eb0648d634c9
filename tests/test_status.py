"""`orbit status` never claims health it could not see: an unreadable supervisord is
"unknown" and exit code 1 (the healthy path runs under real supervisord in test_supervisor.py)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import asyncpg
import msgspec
from redis.asyncio import Redis

from orbit import keys
from orbit.health import program_states
from orbit.runtime import Heartbeat
from tests.support.cli import orbit


async def _fresh_heartbeats(redis: Redis) -> None:
    now = time.time()
    for name in keys.WORKERS:
        beat = Heartbeat(pid=os.getpid(), host="test", started_at=now, at=now, active=True)
        await redis.set(keys.heartbeat(name), msgspec.json.encode(beat), ex=60)


async def test_no_supervisord_socket_is_unknown_not_healthy(
    db: asyncpg.Pool, redis: Redis, base_env: dict[str, str], tmp_path: Path
) -> None:
    await _fresh_heartbeats(redis)
    missing = tmp_path / "supervisor.sock"
    code, out, _ = await orbit(base_env, "status", "--socket", str(missing))
    assert code == 1, out
    assert "all healthy" not in out
    assert "health unknown: supervisord could not be read" in out
    assert "supervisd unknown: no socket at" in out
    code, out, _ = await orbit(base_env, "status", "--json", "--socket", str(missing))
    status = msgspec.json.decode(out)
    assert code == 1 and status["ok"] is False and status["supervisor"].startswith("unknown")
    assert {w["supervisor_state"] for w in status["workers"]} == {"unknown"}


async def test_a_socket_that_does_not_answer_like_supervisord_is_unknown(
    db: asyncpg.Pool, redis: Redis, base_env: dict[str, str], tmp_path: Path
) -> None:
    await _fresh_heartbeats(redis)
    path = tmp_path / "s.sock"

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"HTTP/1.0 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_unix_server(hang_up, path=str(path))
    try:
        code, out, _ = await orbit(base_env, "status", "--socket", str(path))
    finally:
        server.close()
    assert code == 1, out
    assert "health unknown" in out and "all healthy" not in out


async def test_a_missing_heartbeat_is_down_even_when_supervisord_is_unknown(
    db: asyncpg.Pool, redis: Redis, base_env: dict[str, str], tmp_path: Path
) -> None:
    await _fresh_heartbeats(redis)
    await redis.delete(keys.heartbeat("janitor"))
    code, out, _ = await orbit(base_env, "status", "--socket", str(tmp_path / "none.sock"))
    assert code == 1 and "something is down" in out


def test_numbered_bot_processes_count_as_the_bot_program_at_their_worst() -> None:
    def info(name: str, state: str) -> dict[str, object]:
        return {"name": name, "group": "orbit", "statename": state}

    running = [info("bot_0", "RUNNING"), info("bot_1", "RUNNING"), info("ton_watcher", "RUNNING")]
    assert program_states(running) == {"bot": "RUNNING", "ton_watcher": "RUNNING"}
    one_down = [info("bot_0", "RUNNING"), info("bot_1", "BACKOFF"), info("bot_2", "RUNNING")]
    assert program_states(one_down) == {"bot": "BACKOFF"}
    assert program_states([info("bot", "STOPPED"), info("janitor", "RUNNING")]) == {
        "bot": "STOPPED",
        "janitor": "RUNNING",
    }
