"""Start real Orbit processes for tests and stop them the way supervisord does."""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from redis.asyncio import Redis

from orbit import keys

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class WorkerProcess:
    name: str
    proc: asyncio.subprocess.Process
    log_path: Path
    env: dict[str, str] = field(repr=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        assert self.proc.returncode is not None
        return self.proc.returncode


_PR_SET_PDEATHSIG = 1


def _die_with_the_test_run() -> None:
    """In the child, before exec: SIGKILL when the test run that spawned it dies. A run killed
    by a timeout or by CI skips its fixtures' teardown; its processes would live on, writing
    heartbeats and leases into the Redis db the next run leases, and fail that run's tests."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


async def spawn(
    name: str, env: Mapping[str, str], log_dir: Path, args: tuple[str, ...] = ()
) -> WorkerProcess:
    """`python -m orbit.<name>` with `env` (plus PATH), output to a log file."""
    log_path = log_dir / f"{name}-{time.monotonic_ns()}.log"
    full_env = {"PATH": os.environ.get("PATH", ""), "PYTHONUNBUFFERED": "1", **env}
    with log_path.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            f"orbit.{name}",
            *args,
            cwd=str(ROOT),
            env=full_env,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_the_test_run,
        )
    return WorkerProcess(name, proc, log_path, dict(full_env))


async def wait_for_heartbeat(
    redis: Redis, name: str, *, pid: int | None = None, timeout: float = 60.0
) -> dict[str, object]:
    """Wait until `worker:<name>:heartbeat` exists (written by `pid`, if given)."""
    import msgspec

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        raw = await redis.get(keys.heartbeat(name))
        if raw is not None:
            beat = msgspec.json.decode(raw)
            if pid is None or beat["pid"] == pid:
                return beat
        await asyncio.sleep(0.1)
    raise TimeoutError(f"no heartbeat from {name} (pid {pid}) within {timeout}s")


async def run_to_exit(
    name: str, env: Mapping[str, str], log_dir: Path, timeout: float = 90.0
) -> tuple[int, str]:
    """Run a process that is expected to exit by itself; return (code, output)."""
    worker = await spawn(name, env, log_dir)
    try:
        code = await asyncio.wait_for(worker.proc.wait(), timeout)
    except TimeoutError:
        await worker.stop(signal.SIGKILL)
        raise
    return code, worker.output()
