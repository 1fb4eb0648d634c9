"""A private Postgres cluster and a private redis-server that a test may restart.

The shared Postgres (5432) and Redis (6379) serve every engineer's test runs and
must never be restarted; tests that take a dependency away under a running
process start their own on free ports. Postgres runs as the `postgres` OS user
(initdb refuses root) from Debian's binaries, with trust auth on a socket
directory and port of its own; Redis runs without persistence, so a restart
loses every key, as a real crash of an unpersisted Redis would.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import asyncpg
from redis.asyncio import Redis

PG_SUPERUSER = "orbit"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pg_bin() -> Path:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    if not versions:
        raise RuntimeError("no Postgres binaries under /usr/lib/postgresql/*/bin")
    return versions[-1].parent


def _as_postgres(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run a Postgres binary as the `postgres` OS user when we are root."""
    if os.geteuid() == 0:
        args = ["runuser", "-u", "postgres", "--", *args]
    return subprocess.run(args, capture_output=True, text=True, check=True, timeout=60, **kwargs)  # type: ignore[call-overload]


class PrivatePostgres:
    """`initdb` into a temporary directory, `pg_ctl start` on a free port."""

    def __init__(self) -> None:
        self.bin = _pg_bin()
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="orbit-pg-"))
        self.data = self.dir / "data"
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{PG_SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        _as_postgres(
            [str(self.bin / "initdb"), "-D", str(self.data), "-U", PG_SUPERUSER, "-A", "trust",
             "--no-sync", "-E", "UTF8", "--locale", "C"]
        )  # fmt: skip
        self._start_server()

    def _start_server(self) -> None:
        # `-l`: without it the server would write into our pipe and hold it open.
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        _as_postgres(
            [str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options,
             "-l", str(self.dir / "server.log"), "-w", "start"]
        )  # fmt: skip

    def restart(self, down_for: float = 0.0) -> None:
        """A fast shutdown (every session is cut), `down_for` seconds of no server, start."""
        _as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])
        time.sleep(down_for)
        self._start_server()

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(
                ["runuser", "-u", "postgres", "--"] * (os.geteuid() == 0)
                + [str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"],
                capture_output=True,
                timeout=60,
                check=False,
            )
        shutil.rmtree(self.dir, ignore_errors=True)

    async def create_database(self, name: str) -> str:
        conn = await asyncpg.connect(self.dsn())
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return self.dsn(name)


class PrivateRedis:
    """`redis-server` on a free port, no persistence; `restart` keeps the port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not listen on {self.port}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    async def restart(self, down_for: float = 0.5) -> None:
        """SHUTDOWN NOSAVE (every key and connection gone), then the same port again."""
        client = Redis.from_url(self.url)
        try:
            await client.shutdown(nosave=True)
        except Exception:
            pass
        finally:
            await client.aclose()
        if self.proc is not None:
            await asyncio.to_thread(self.proc.wait, 10)
        await asyncio.sleep(down_for)
        await asyncio.to_thread(self.start)
