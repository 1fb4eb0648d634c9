"""End-to-end harness: the real bot process against the Telegram and Marzban emulators.

`telegram` is an in-process Telegram Bot API emulator (real HTTP on 127.0.0.1),
`panels` three Marzban emulators registered as instances p1..p3, `bot` the real
`python -m orbit.bot` process pointed at them, and `make_user` a Telegram user
that sends text, presses buttons and reads what the chat shows.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from redis.asyncio import Redis

from orbit.sandbox.marzban import MarzbanEmulator
from orbit.sandbox.telegram import TelegramEmulator
from orbit.sandbox.telegram_control import TelegramControl
from tests.support.processes import WorkerProcess, spawn, wait_for_heartbeat
from tests.support.telegram_user import TelegramUser

BOT_TOKEN = "123456:TEST-token"
ADMIN_ID = 900_000_001


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Telegram:
    emulator: TelegramEmulator
    url: str
    control: TelegramControl


@pytest.fixture
async def http_session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def telegram(http_session: aiohttp.ClientSession) -> AsyncIterator[Telegram]:
    emulator = TelegramEmulator()
    url = await emulator.start()
    yield Telegram(emulator, url, TelegramControl(url, http_session))
    await emulator.stop()


@dataclass
class Panel:
    id: str
    emulator: MarzbanEmulator
    url: str


@pytest.fixture
async def panels(db: asyncpg.Pool) -> AsyncIterator[list[Panel]]:
    """Three panels, registered as active instances p1 (priority 30), p2 (20), p3 (10)."""
    started: list[Panel] = []
    for number in (1, 2, 3):
        emulator = MarzbanEmulator()
        url = await emulator.start()
        panel_id = f"p{number}"
        await db.execute(
            "INSERT INTO marzban_instances (id, name, base_url, username, password, priority)"
            " VALUES ($1, $2, $3, 'admin', 'admin', $4)",
            panel_id,
            f"Panel {number}",
            url,
            40 - 10 * number,
        )
        started.append(Panel(panel_id, emulator, url))
    yield started
    for panel in started:
        await panel.emulator.stop()


@pytest.fixture
def bot_env(base_env: dict[str, str], telegram: Telegram) -> dict[str, str]:
    return {
        **base_env,
        "BOT_TOKEN": BOT_TOKEN,
        "TELEGRAM_API_URL": telegram.url,
        "BOT_HTTP_PORT": str(free_port()),
        "ADMIN_IDS": str(ADMIN_ID),
        # Tests press faster than people: per-user rate limits shrunk to 1 ms (the
        # rate-limit tests start a bot with RATE_LIMIT_SCALE=1).
        "RATE_LIMIT_SCALE": "0.0001",  # every interval clamps to 1 ms
    }




@pytest.fixture
async def start_bot(
    redis: Redis, bot_env: dict[str, str], log_dir: Path
) -> AsyncIterator[Callable[..., object]]:
    """`await start_bot(**extra_env)` starts a bot process; all are stopped at the end."""
    running: list[WorkerProcess] = []

    async def start(**extra: str) -> WorkerProcess:
        worker = await spawn("bot", {**bot_env, **extra}, log_dir)
        running.append(worker)
        try:
            # Generous: eight test runs share two cores, and an import alone may take 30 s.
            await wait_for_heartbeat(redis, "bot", pid=worker.pid, timeout=120)
        except TimeoutError:
            await worker.stop()
            raise AssertionError(f"bot did not start:\n{worker.output()}") from None
        return worker

    yield start
    for worker in running:
        code = await worker.stop()
        assert code == 0, f"bot exited {code}:\n{worker.output()[-3000:]}"


@pytest.fixture
async def bot(
    start_bot: Callable[..., object], panels: list[Panel], db: asyncpg.Pool
) -> WorkerProcess:
    """The bot process with default settings, three panels registered."""
    return await start_bot()  # type: ignore[no-any-return, misc]


@pytest.fixture
async def janitor(
    redis: Redis, bot_env: dict[str, str], log_dir: Path, panels: list[Panel]
) -> AsyncIterator[WorkerProcess]:
    """The janitor process: its job loop runs what the admin panel queues (drains, broadcasts)."""
    worker = await spawn("janitor", bot_env, log_dir)
    try:
        await wait_for_heartbeat(redis, "janitor", pid=worker.pid, timeout=120)
    except TimeoutError:
        await worker.stop()
        raise AssertionError(f"janitor did not start:\n{worker.output()}") from None
    yield worker
    code = await worker.stop()
    assert code == 0, f"janitor exited {code}:\n{worker.output()[-3000:]}"


@pytest.fixture
def make_user(telegram: Telegram) -> Callable[..., TelegramUser]:
    def make(user_id: int, **profile: str) -> TelegramUser:
        return TelegramUser(telegram.control, user_id, **profile)

    return make
