"""The four programs under the real supervisord, driven with supervisorctl."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import msgspec
import pytest
from redis.asyncio import Redis
from supervisor.xmlrpc import SupervisorTransport

from orbit import keys
from orbit.sandbox.telegram import TelegramEmulator
from tests.e2e.conftest import BOT_TOKEN, free_port
from tests.support.processes import ROOT, wait_for_heartbeat

PROGRAMS = ("bot", "ton_watcher", "balancer", "janitor")
BIN = Path(sys.executable).parent


@pytest.fixture
async def telegram_url() -> AsyncIterator[str]:
    emulator = TelegramEmulator()
    yield await emulator.start()
    await emulator.stop()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the deployment layout: supervisord.conf next to .venv, run/, logs/."""
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    conf = (ROOT / "supervisord.conf").read_text()
    # The workers' metrics ports (9102-9104) may be taken by another run on this machine.
    conf = re.sub(r'(METRICS_PORT_\w+)="\d+"', lambda m: f'{m[1]}="{free_port()}"', conf)
    (tmp_path / "supervisord.conf").write_text(conf)
    (tmp_path / "run").mkdir()
    (tmp_path / "logs").mkdir()
    return tmp_path


@pytest.fixture
def supervisor_env(base_env: dict[str, str], telegram_url: str) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        **base_env,
        "BOT_TOKEN": BOT_TOKEN,
        "TELEGRAM_API_URL": telegram_url,
        "BOT_HTTP_PORT": str(free_port()),
    }


def _ctl(tree: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "supervisorctl"), "-c", str(tree / "supervisord.conf"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _rpc(tree: Path) -> xmlrpc.client.ServerProxy:
    transport = SupervisorTransport(None, None, f"unix://{tree / 'run' / 'supervisor.sock'}")
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)


def _infos(tree: Path) -> dict[str, dict[str, object]]:
    return {i["name"]: i for i in _rpc(tree).supervisor.getAllProcessInfo()}  # type: ignore[union-attr]


@pytest.fixture
def supervisord(tree: Path, supervisor_env: dict[str, str]) -> Iterator[Path]:
    subprocess.run(
        [str(BIN / "supervisord"), "-c", str(tree / "supervisord.conf")],
        env=supervisor_env,
        check=True,
        timeout=30,
    )
    try:
        yield tree
    finally:
        _ctl(tree, supervisor_env, "shutdown")
        pid_file = tree / "run" / "supervisord.pid"
        deadline = time.monotonic() + 30
        while pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)


async def _until(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def _orbit_status(tree: Path, env: dict[str, str]) -> tuple[int, dict[str, object]]:
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "orbit"), "status", "--json", "--socket", str(tree / "run" / "supervisor.sock"),
        env=env, cwd=str(tree), stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, msgspec.json.decode(out)


@pytest.mark.timeout(400)  # four start-ups and restarts, each allowed 90 s on a loaded machine
async def test_supervised_workers(
    db: object, redis: Redis, supervisord: Path, supervisor_env: dict[str, str]
) -> None:
    tree = supervisord
    await _until(
        lambda: all(_infos(tree)[p]["statename"] == "RUNNING" for p in PROGRAMS), 40, "RUNNING"
    )
    pids = {p: int(_infos(tree)[p]["pid"]) for p in PROGRAMS}  # type: ignore[call-overload]
    for name, pid in pids.items():
        await wait_for_heartbeat(redis, name, pid=pid, timeout=90)
    # Each worker serves /healthz at the port supervisord.conf gives it.
    ports = re.findall(r'METRICS_PORT_\w+="(\d+)"', (tree / "supervisord.conf").read_text())
    assert len(ports) == 3
    async with aiohttp.ClientSession() as http:
        for port in ports:
            async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                assert resp.status == 200, await resp.text()

    # The workers' logs are the operator's alone (issue 16, defect 6): supervisord's umask.
    # (supervisord.log is opened before the umask applies: the 0700 logs/ of
    # scripts/bootstrap.sh and run.sh's own umask cover it.)
    modes = {name: oct((tree / "logs" / f"{name}.log").stat().st_mode & 0o777) for name in PROGRAMS}
    assert modes == dict.fromkeys(PROGRAMS, "0o600")

    code, status = await _orbit_status(tree, supervisor_env)
    assert code == 0, status
    assert [w["name"] for w in status["workers"]] == list(PROGRAMS)  # type: ignore[index]
    assert all(w["supervisor_state"] == "RUNNING" for w in status["workers"])  # type: ignore[index]

    # Restarting one program leaves the others alone.
    result = _ctl(tree, supervisor_env, "restart", "orbit:janitor")
    assert result.returncode == 0, result.stdout + result.stderr
    after = {p: int(_infos(tree)[p]["pid"]) for p in PROGRAMS}  # type: ignore[call-overload]
    assert after["janitor"] != pids["janitor"]
    assert {p: after[p] for p in PROGRAMS if p != "janitor"} == {
        p: pids[p] for p in PROGRAMS if p != "janitor"
    }
    await wait_for_heartbeat(redis, "janitor", pid=after["janitor"], timeout=90)

    # kill -9 of any worker: supervisord restarts it and its heartbeat resumes.
    for name in ("balancer", "bot"):
        old = after[name]
        os.kill(old, signal.SIGKILL)
        await _until(
            lambda n=name, o=old: _infos(tree)[n]["statename"] == "RUNNING"
            and _infos(tree)[n]["pid"] != o,
            40,
            f"{name} restart",
        )
        await wait_for_heartbeat(redis, name, pid=int(_infos(tree)[name]["pid"]), timeout=90)  # type: ignore[call-overload]

    # Stopping the group stops all four gracefully within stopwaitsecs (15 s).
    started = time.monotonic()
    result = _ctl(tree, supervisor_env, "stop", "orbit:")
    assert result.returncode == 0, result.stdout + result.stderr
    assert time.monotonic() - started < 15 + 5
    infos = _infos(tree)
    assert all(infos[p]["statename"] == "STOPPED" for p in PROGRAMS)
    for name in PROGRAMS:
        log = (tree / "logs" / f"{name}.log").read_text()
        assert log.rstrip().endswith("stopped"), f"{name} did not stop cleanly:\n{log[-2000:]}"
    assert await redis.get(keys.lease("balancer")) is None  # released on the way out
