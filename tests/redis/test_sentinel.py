"""A worker runs through `REDIS_URL=redis+sentinel://...`: a private master, its replica
and one sentinel (`redis-server --sentinel`, Debian's redis-server package), all on free
ports; after `SENTINEL FAILOVER` the worker's heartbeat lands on the new master."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from redis.asyncio import Redis

from orbit import keys
from tests.support.private_deps import free_port
from tests.support.processes import WorkerProcess, spawn, wait_for_heartbeat

SERVICE = "orbit-test"
START_TIMEOUT = 120  # the worker imports aiogram on a shared, busy machine


def _server(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["redis-server", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_listening(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


class SentinelSetup:
    def __init__(self, tmp: Path) -> None:
        self.master_port = free_port()
        self.replica_port = free_port()
        self.sentinel_port = free_port()
        self.tmp = tmp
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        # A replica's full sync writes dump.rdb in its `dir` (the demoted master's too, after
        # the failover): the test's directory, not the working tree.
        common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(self.tmp)]
        self.procs.append(_server("--port", str(self.master_port), *common))
        _wait_listening(self.master_port)
        replica = ["--port", str(self.replica_port), "--replicaof", "127.0.0.1", str(self.master_port)]
        self.procs.append(_server(*replica, *common))
        _wait_listening(self.replica_port)
        conf = self.tmp / "sentinel.conf"  # sentinel rewrites its config: a file of its own
        conf.write_text(
            f"port {self.sentinel_port}\nbind 127.0.0.1\ndir {self.tmp}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.master_port} 1\n"
            f"sentinel down-after-milliseconds {SERVICE} 1000\n"
            f"sentinel failover-timeout {SERVICE} 5000\n"
        )
        self.procs.append(_server(str(conf), "--sentinel"))
        _wait_listening(self.sentinel_port)

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
            proc.wait(10)

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.sentinel_port}/{SERVICE}/0"


@pytest.fixture
def sentinel_setup(tmp_path: Path) -> Iterator[SentinelSetup]:
    setup = SentinelSetup(tmp_path)
    setup.start()
    yield setup
    setup.stop()


async def _master_port(sentinel: Redis) -> int:
    _, port = await sentinel.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
    return int(port)


async def test_a_worker_follows_the_master_through_a_failover(
    sentinel_setup: SentinelSetup, base_env: dict[str, str], log_dir: Path
) -> None:
    sentinel = Redis(port=sentinel_setup.sentinel_port, decode_responses=True)
    master = Redis(port=sentinel_setup.master_port, decode_responses=True)
    replica = Redis(port=sentinel_setup.replica_port, decode_responses=True)
    worker: WorkerProcess | None = None
    try:
        assert await _master_port(sentinel) == sentinel_setup.master_port
        worker = await spawn("balancer", {**base_env, "REDIS_URL": sentinel_setup.url}, log_dir)
        await wait_for_heartbeat(master, "balancer", pid=worker.pid, timeout=START_TIMEOUT)
        assert await master.get(keys.lease("balancer"))  # the lease is taken on the master

        # The replica must have caught up before sentinel will promote it.
        async def synced() -> bool:
            info = await replica.info("replication")
            return info.get("master_link_status") == "up"

        deadline = time.monotonic() + 30
        while not await synced():
            assert time.monotonic() < deadline, "the replica never synced"
            await asyncio.sleep(0.1)
        await sentinel.execute_command("SENTINEL", "FAILOVER", SERVICE)
        deadline = time.monotonic() + 30
        while await _master_port(sentinel) != sentinel_setup.replica_port:
            assert time.monotonic() < deadline, "sentinel did not fail over"
            await asyncio.sleep(0.1)
        promoted_at = time.time()

        async def fresh_beat_on_new_master() -> bool:
            raw = await replica.get(keys.heartbeat("balancer"))
            return raw is not None and msgspec.json.decode(raw)["at"] > promoted_at

        deadline = time.monotonic() + 30
        while not await fresh_beat_on_new_master():
            assert time.monotonic() < deadline, worker.output()[-3000:]
            await asyncio.sleep(0.2)
    finally:
        if worker is not None:
            code = await worker.stop()
            assert code == 0, worker.output()[-3000:]
        for client in (sentinel, master, replica):
            await client.aclose()
    assert "Traceback" not in worker.output(), worker.output()[-3000:]
