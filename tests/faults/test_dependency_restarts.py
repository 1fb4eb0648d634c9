"""Postgres and Redis restarted under each of the four busy processes.

Each test runs one real process against a PRIVATE Postgres cluster and redis-server
(tests/faults/conftest.py; the shared ones are never touched), keeps it busy, restarts
the dependency in the middle of the work, and checks that the process recovered by
itself: still the same pid (no supervisor restart), its heartbeat fresh again (and
its lease re-taken), its pub/sub wake-ups back, the outage in its log as a few
single lines and no traceback, the work finished correctly, `orbit audit` clean.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import msgspec
import pytest
from redis.asyncio import Redis

from orbit import keys
from orbit.payments import service
from orbit.sandbox.marzban import MarzbanEmulator
from orbit.sandbox.telegram import TelegramEmulator
from orbit.sandbox.telegram_control import TelegramControl
from orbit.sandbox.tonapi import TonapiEmulator
from tests.support.cli import orbit
from tests.support.private_deps import PrivatePostgres, PrivateRedis, free_port
from tests.support.processes import WorkerProcess, spawn, wait_for_heartbeat
from tests.support.telegram_user import TelegramUser

DEPENDENCIES = ("postgres", "redis")
TON_WALLET = "0:" + "cd" * 32
TONAPI_KEY = "faults-tonapi-key"
BOT_TOKEN = "123456:TEST-token"
NANO = 10**9
# An outage is a handful of one-line warnings (the failed unit, the pool, the
# pub/sub, the lease), never a line per attempt for as long as it lasts.
MAX_OUTAGE_LINES = 12
DOWN_FOR = 3.0  # long enough for work to run into the outage, not just around it


@pytest.fixture
async def workers(log_dir: Path) -> AsyncIterator[list[WorkerProcess]]:
    running: list[WorkerProcess] = []
    yield running
    for worker in running:
        code = await worker.stop()
        assert code == 0, f"{worker.name} exited {code}:\n{worker.output()[-3000:]}"


async def _start(
    name: str, env: dict[str, str], log_dir: Path, predis: Redis, running: list[WorkerProcess]
) -> WorkerProcess:
    worker = await spawn(name, env, log_dir)
    running.append(worker)
    try:
        await wait_for_heartbeat(predis, name, pid=worker.pid, timeout=90)
    except TimeoutError:
        raise AssertionError(f"{name} did not start:\n{worker.output()}") from None
    return worker


async def _restart(dependency: str, pg: PrivatePostgres, redis_server: PrivateRedis) -> float:
    """Stop the dependency, leave it down for DOWN_FOR seconds, start it on the same
    port; returns the moment it went down."""
    started = time.time()
    if dependency == "postgres":
        await asyncio.to_thread(pg.restart, DOWN_FOR)
    else:
        await redis_server.restart(DOWN_FOR)
    return started


async def _eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            if await check():
                return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def _subscribed(predis: Redis, channel: str) -> None:
    async def back() -> bool:
        [(_, count)] = await predis.pubsub_numsub(channel)
        return int(count) >= 1

    await _eventually(back, f"a subscriber on {channel} again", timeout=20)


async def _assert_recovered(worker: WorkerProcess, predis: Redis, since: float, log_offset: int) -> None:
    """Same process, a heartbeat written after the restart (holding its lease), and
    the outage in its log as a few single lines."""
    assert worker.proc.returncode is None, f"{worker.name} exited:\n{worker.output()[-3000:]}"

    async def fresh() -> bool:
        raw = await predis.get(keys.heartbeat(worker.name))
        if raw is None:
            return False
        beat = msgspec.json.decode(raw)
        return beat["pid"] == worker.pid and beat["at"] > since + 0.5 and beat["active"]

    await _eventually(fresh, f"a fresh heartbeat of {worker.name}", timeout=20)
    log = worker.output()
    assert "Traceback" not in log, log[-4000:]
    after = log[log_offset:].splitlines()
    noisy = [line for line in after if " WARNING " in line or " ERROR " in line]
    assert len(noisy) <= MAX_OUTAGE_LINES, "\n".join(noisy)


async def _audit_clean(env: dict[str, str]) -> None:
    code, out, err = await orbit(env, "audit")
    assert code == 0, out + err


# --- ton_watcher: payments arriving -------------------------------------------------------


@pytest.fixture
async def tonapi() -> AsyncIterator[TonapiEmulator]:
    emulator = TonapiEmulator(api_key=TONAPI_KEY)
    await emulator.start()
    yield emulator
    await emulator.stop()


async def _writing_backends(pdb: asyncpg.Pool) -> bool:
    return bool(
        await pdb.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL"
        )
    )


@pytest.mark.parametrize("dependency", DEPENDENCIES)
async def test_ton_watcher_keeps_crediting_through_a_restart(
    dependency: str,
    pdb: asyncpg.Pool,
    predis: Redis,
    private_pg: PrivatePostgres,
    private_redis: PrivateRedis,
    private_env: dict[str, str],
    tonapi: TonapiEmulator,
    log_dir: Path,
    workers: list[WorkerProcess],
) -> None:
    early, late = 400, 20
    await pdb.execute("INSERT INTO users (id, language) VALUES (1, 'en')")
    comments = [f"ORBF{n:05d}" for n in range(early + late)]
    expires = datetime.now(UTC) + timedelta(minutes=30)
    async with pdb.acquire() as conn, conn.transaction():
        for comment in comments:
            await service.create_payment(
                conn, 1, "ton", 10_000, "TON", NANO, expires, comment=comment
            )  # 1 TON = 100 RUB each
    for comment in comments[:early]:
        tonapi.send_ton(TON_WALLET, NANO, comment)
    env = {**private_env, "TON_ADDRESS": TON_WALLET, "TONAPI_URL": tonapi.base_url or "",
           "TONAPI_KEY": TONAPI_KEY}  # fmt: skip
    watcher = await _start("ton_watcher", env, log_dir, predis, workers)

    async def confirmed() -> int:
        return int(await pdb.fetchval("SELECT count(*) FROM payments WHERE status = 'confirmed'"))

    # In the middle of the work: a page's transaction has written but not committed.
    await _eventually(lambda: _writing_backends(pdb), "a page in flight", timeout=30)
    offset = len(watcher.output())
    assert await confirmed() < early, "the restart would come after the work: not in the middle"
    since = await _restart(dependency, private_pg, private_redis)

    await _eventually(lambda: _is(confirmed, early), "the early payments", timeout=60)
    # Wake-ups work again: with its 30 s timer, only the poke makes this quick.
    await _subscribed(predis, keys.channel(predis, keys.TON_POKE_CHANNEL))
    for comment in comments[early:]:
        tonapi.send_ton(TON_WALLET, NANO, comment)
    await predis.publish(keys.channel(predis, keys.TON_POKE_CHANNEL), "1")
    await _eventually(lambda: _is(confirmed, early + late), "the late payments", timeout=10)

    await _assert_recovered(watcher, predis, since, offset)
    per_payment = await pdb.fetch("SELECT payment_id, count(*) AS n FROM ledger GROUP BY payment_id")
    assert len(per_payment) == early + late and {r["n"] for r in per_payment} == {1}
    assert await pdb.fetchval("SELECT balance_kop FROM users WHERE id = 1") == (early + late) * 10_000
    assert await pdb.fetchval("SELECT count(*) FROM ton_transactions") == early + late
    await _audit_clean(env)


async def _is(probe: Callable[[], Awaitable[int]], expected: int) -> bool:
    return await probe() == expected


# --- balancer: removing old panel users, poked -------------------------------------------


async def _panel(pdb: asyncpg.Pool, panel_id: str, priority: int = 10) -> MarzbanEmulator:
    emulator = MarzbanEmulator()
    url = await emulator.start()
    await pdb.execute(
        "INSERT INTO marzban_instances (id, name, base_url, username, password, priority)"
        " VALUES ($1, $1, $2, 'admin', 'admin', $3)",
        panel_id, url, priority,
    )  # fmt: skip
    return emulator


@pytest.fixture
async def panel(pdb: asyncpg.Pool) -> AsyncIterator[MarzbanEmulator]:
    emulator = await _panel(pdb, "p1")
    yield emulator
    await emulator.stop()


@pytest.mark.parametrize("dependency", DEPENDENCIES)
async def test_balancer_keeps_removing_through_a_restart(
    dependency: str,
    pdb: asyncpg.Pool,
    predis: Redis,
    private_pg: PrivatePostgres,
    private_redis: PrivateRedis,
    private_env: dict[str, str],
    panel: MarzbanEmulator,
    log_dir: Path,
    workers: list[WorkerProcess],
) -> None:
    count = 150  # three ticks' worth (50 per tick)
    await pdb.execute("INSERT INTO users (id, language) VALUES (1, 'en')")
    names = panel.add_users(count, prefix="old")
    async with pdb.acquire() as conn, conn.transaction():
        for n, name in enumerate(names):
            config_id = await conn.fetchval(
                "INSERT INTO configs (user_id, instance_id, panel_username, name, status, deleted_at)"
                " VALUES (1, 'p1', $1, $2, 'deleted', now()) RETURNING id",
                name, f"Config {n}",
            )  # fmt: skip
            await conn.execute(
                "INSERT INTO panel_removals (instance_id, panel_username, config_id) VALUES ('p1', $1, $2)",
                name, config_id,
            )  # fmt: skip
    panel.slow(0.04, method="DELETE")
    balancer = await _start("balancer", private_env, log_dir, predis, workers)

    async def poke_forever() -> None:  # the bot pokes it whenever a panel fails
        while True:
            with contextlib.suppress(OSError, Exception):
                await predis.publish(keys.channel(predis, keys.BALANCER_POKE_CHANNEL), "1")
            await asyncio.sleep(0.3)

    poker = asyncio.create_task(poke_forever())
    try:
        await _eventually(
            lambda: _between(lambda: len(panel.usernames), 10, count - 10), "removals under way", 30
        )
        offset = len(balancer.output())
        since = await _restart(dependency, private_pg, private_redis)
        assert len(panel.usernames) > 0
        await _eventually(lambda: _is(lambda: _async(len(panel.usernames)), 0), "every removal", 40)
    finally:
        poker.cancel()
    await _assert_recovered(balancer, predis, since, offset)
    assert await pdb.fetchval("SELECT count(*) FROM panel_removals") == 0
    # The scores a Redis restart lost are published again.
    await _eventually(lambda: _async_bool(predis.exists(keys.BALANCER_SCORES)), "node scores", 20)
    await _audit_clean(private_env)


async def _async(value: int) -> int:
    return value


async def _async_bool(awaitable: Awaitable[int]) -> bool:
    return bool(await awaitable)


async def _between(probe: Callable[[], int], low: int, high: int) -> bool:
    return low <= probe() <= high


# --- janitor: drift repair ----------------------------------------------------------------


@pytest.mark.parametrize("dependency", DEPENDENCIES)
async def test_janitor_keeps_repairing_through_a_restart(
    dependency: str,
    pdb: asyncpg.Pool,
    predis: Redis,
    private_pg: PrivatePostgres,
    private_redis: PrivateRedis,
    private_env: dict[str, str],
    panel: MarzbanEmulator,
    log_dir: Path,
    workers: list[WorkerProcess],
) -> None:
    count = 40
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    names = panel.add_users(count, prefix="drift")
    async with pdb.acquire() as conn, conn.transaction():
        for n, name in enumerate(names, start=1):
            await conn.execute(
                "INSERT INTO users (id, language, subscription_until) VALUES ($1, 'en', $2)", n, until
            )
            await conn.execute(
                "INSERT INTO configs (user_id, instance_id, panel_username, name, status, needs_sync,"
                " updated_at) VALUES ($1, 'p1', $2, 'Config 1', 'active', true, now() - interval '1 hour')",
                n, name,
            )  # fmt: skip
    panel.slow(0.08, method="PUT")  # each repair pushes the new expiry: 40 × 80 ms
    janitor = await _start("janitor", private_env, log_dir, predis, workers)

    async def repaired() -> int:
        return int(await pdb.fetchval("SELECT count(*) FROM configs WHERE NOT needs_sync"))

    await _eventually(lambda: _between_async(repaired, 3, count - 10), "repairs under way", 30)
    offset = len(janitor.output())
    since = await _restart(dependency, private_pg, private_redis)
    # Well inside the janitor's 60 s timer: a unit cut by an outage is retried soon.
    await _eventually(lambda: _is(repaired, count), "every config repaired", 25)
    await _assert_recovered(janitor, predis, since, offset)
    expiries = {panel.user(name)["expire"] for name in names}  # type: ignore[index]
    assert expiries == {int(until.timestamp())}
    await _audit_clean(private_env)


async def _between_async(probe: Callable[[], Awaitable[int]], low: int, high: int) -> bool:
    return low <= await probe() <= high


# --- bot: presses and the outbox ------------------------------------------------------------


@pytest.fixture
async def telegram() -> AsyncIterator[tuple[TelegramEmulator, str]]:
    emulator = TelegramEmulator()
    url = await emulator.start()
    yield emulator, url
    await emulator.stop()


async def _enqueue(pdb: asyncpg.Pool, predis: Redis, chat_id: int, text: str) -> None:
    await pdb.execute("INSERT INTO outbox (chat_id, kind, text) VALUES ($1, 'test', $2)", chat_id, text)
    with contextlib.suppress(Exception):  # a wake-up only; Redis may be restarting
        await predis.publish(keys.channel(predis, keys.OUTBOX_CHANNEL), "1")


@pytest.mark.parametrize("dependency", DEPENDENCIES)
async def test_bot_keeps_answering_and_sending_through_a_restart(
    dependency: str,
    pdb: asyncpg.Pool,
    predis: Redis,
    private_pg: PrivatePostgres,
    private_redis: PrivateRedis,
    private_env: dict[str, str],
    telegram: tuple[TelegramEmulator, str],
    log_dir: Path,
    workers: list[WorkerProcess],
) -> None:
    import aiohttp

    _, url = telegram
    env = {**private_env, "BOT_TOKEN": BOT_TOKEN, "TELEGRAM_API_URL": url,
           "BOT_HTTP_PORT": str(free_port()), "RATE_LIMIT_SCALE": "0.0001"}  # fmt: skip
    async with aiohttp.ClientSession() as http:
        control = TelegramControl(url, http)
        ann = TelegramUser(control, 4001, first_name="Ann")
        bot = await _start("bot", env, log_dir, predis, workers)
        await ann.send("/start")

        # A notification on its way when the dependency goes: Telegram took it, the
        # answer is late, and the restart comes before the bot can record it.
        await control.hold("sendMessage", 1.5)  # the answer comes while it is down
        await _enqueue(pdb, predis, ann.id, "held note")
        await ann.wait_until(lambda ms: any(m.text == "held note" for m in ms))

        async def press_forever() -> None:
            while True:
                with contextlib.suppress(AssertionError, TimeoutError, Exception):
                    await ann.send("/menu", timeout=3)
                await asyncio.sleep(0.1)

        async def notify(count: int) -> None:
            for n in range(count):
                with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                    await _enqueue(pdb, predis, ann.id, f"note {n}")
                await asyncio.sleep(0.15)

        presser = asyncio.create_task(press_forever())
        feeder = asyncio.create_task(notify(20))
        try:
            offset = len(bot.output())
            since = await _restart(dependency, private_pg, private_redis)
            await feeder
        finally:
            presser.cancel()
            feeder.cancel()
            await asyncio.gather(presser, feeder, return_exceptions=True)

        async def all_sent() -> bool:
            return not await pdb.fetchval("SELECT count(*) FROM outbox WHERE status <> 'sent'")

        try:
            await _eventually(all_sent, "every notification sent", timeout=40)
        except AssertionError:
            rows = await pdb.fetch(
                "SELECT id, text, status, attempts, next_attempt_at, created_at, now()"
                " FROM outbox WHERE status <> 'sent'"
            )
            raise AssertionError(f"{[dict(r) for r in rows]}\n{bot.output()[-6000:]}") from None
        await _subscribed(predis, keys.channel(predis, keys.OUTBOX_CHANNEL))
        await _enqueue(pdb, predis, ann.id, "late note")  # the 10 s timer would be too slow
        await ann.wait_until(lambda ms: any(m.text == "late note" for m in ms), timeout=5)
        menu = await ann.send("/menu")
        assert "My configs" in " ".join(menu.button_texts)
        await _assert_recovered(bot, predis, since, offset)

        # At most once, and here exactly once: every outcome was known in the end.
        texts = [m.text for m in await ann.messages()]
        stored = [r["text"] for r in await pdb.fetch("SELECT text FROM outbox")]
        assert sorted(t for t in texts if t in stored) == sorted(stored)
        await _audit_clean(env)
