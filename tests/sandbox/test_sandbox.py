"""The sandbox as a whole: when it runs, what survives its restart, and its one clock."""

from __future__ import annotations

import asyncio
import os
import struct
import subprocess
import sys
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import BufferedInputFile
from redis.asyncio import Redis

from orbit import clock, keys
from orbit.sandbox import config, control
from orbit.sandbox.__main__ import make_panels, register_panels
from orbit.sandbox.clock import SandboxClock
from orbit.sandbox.cryptobot import CryptoBotEmulator
from orbit.sandbox.marzban import MarzbanEmulator
from orbit.sandbox.state_files import StateFiles
from orbit.sandbox.telegram import TelegramEmulator
from orbit.sandbox.telegram_control import TelegramControl
from orbit.settings import Settings, read_environment
from tests.support.processes import spawn, wait_for_heartbeat

TOKEN = "123456:TEST-token"
REAL_TOKEN = "999999:REAL-token-from-env-file"


# --- when the sandbox runs -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "wanted"),
    [
        ({}, True),
        ({"BOT_TOKEN": " "}, True),
        ({"BOT_TOKEN": REAL_TOKEN}, False),
        ({"BOT_TOKEN": REAL_TOKEN, "ORBIT_SANDBOX": "1"}, True),
        ({"BOT_TOKEN": REAL_TOKEN, "ORBIT_SANDBOX": "0"}, False),
    ],
)
def test_the_sandbox_runs_without_a_token_or_when_forced(environ: dict[str, str], wanted: bool) -> None:
    assert config.wanted(environ) is wanted


@pytest.mark.parametrize(
    ("env_file", "code"),
    [("", 0), (f"BOT_TOKEN={REAL_TOKEN}\n", 1), (f"BOT_TOKEN={REAL_TOKEN}\nORBIT_SANDBOX=1\n", 0)],
)
def test_run_sh_asks_whether_to_start_the_sandbox(tmp_path: Path, env_file: str, code: int) -> None:
    """What scripts/run.sh runs, in a directory holding that `.env`: exit 0 = the sandbox."""
    env = {k: v for k, v in os.environ.items() if k not in ("BOT_TOKEN", "ORBIT_SANDBOX")}
    (tmp_path / ".env").write_text(env_file)
    done = subprocess.run(
        [sys.executable, "-m", "orbit.sandbox.config", "wanted"], cwd=tmp_path, env=env, timeout=60
    )
    assert done.returncode == code


def test_orbit_sandbox_1_in_env_file_puts_the_sandbox_over_a_real_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("BOT_TOKEN", "TELEGRAM_API_URL", "ORBIT_SANDBOX"):
        monkeypatch.delenv(name, raising=False)
    env_file = tmp_path / ".env"
    env_file.write_text(f"BOT_TOKEN={REAL_TOKEN}\nSUPPORT_CONTACT=@shop\n")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "sandbox.env").write_text(
        f"ORBIT_SANDBOX=1\nBOT_TOKEN={config.BOT_TOKEN}\nTELEGRAM_API_URL=http://127.0.0.1:18081\n"
    )
    assert read_environment(env_file)["BOT_TOKEN"] == REAL_TOKEN  # not forced: .env as it is

    env_file.write_text(f"BOT_TOKEN={REAL_TOKEN}\nSUPPORT_CONTACT=@shop\nORBIT_SANDBOX=1\n")
    values = read_environment(env_file)
    assert values["BOT_TOKEN"] == config.BOT_TOKEN
    assert values["TELEGRAM_API_URL"] == "http://127.0.0.1:18081"
    assert values["SUPPORT_CONTACT"] == "@shop"  # the rest of .env still counts

    monkeypatch.setenv("BOT_TOKEN", "555:from-the-environment")  # the environment still wins
    assert read_environment(env_file)["BOT_TOKEN"] == "555:from-the-environment"


# --- what survives a restart -----------------------------------------------------------------


def png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_panel_users_nodes_and_links_survive_a_restart(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    before = MarzbanEmulator(nodes=[{"name": "n1", "address": "10.0.0.1"}])
    url = await before.start()
    async with http.post(f"{url}/api/admin/token", data={"username": "admin", "password": "admin"}) as resp:
        token = (await resp.json())["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    body = {"username": "orbit_1_a", "proxies": {"vless": {}}, "expire": 2_000_000_000}
    async with http.post(f"{url}/api/user", json=body, headers=auth) as resp:
        assert resp.status == 200, await resp.text()
        sub_url = (await resp.json())["subscription_url"]
    before.add_user_traffic("orbit_1_a", 5_000_000)
    StateFiles(tmp_path, {"panel": before}).save()
    await before.stop()

    after = MarzbanEmulator()  # no nodes given: they come from the file
    assert StateFiles(tmp_path, {"panel": after}).load() == ["panel"]
    url = await after.start()
    try:
        user = after.user("orbit_1_a")
        assert user is not None and user["used_traffic"] == 5_000_000 and user["expire"] == 2_000_000_000
        assert [node["name"] for node in after.nodes()] == ["n1"]
        async with http.get(f"{url}/api/user/orbit_1_a", headers=auth) as resp:
            assert resp.status == 200  # a token issued before the restart still holds
        async with http.get(f"{url}{sub_url}") as resp:
            assert resp.status == 200  # and so does the link handed to the user
    finally:
        await after.stop()


async def test_chats_files_and_the_update_counter_survive_a_restart(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    before = TelegramEmulator()
    url = await before.start()
    await TelegramControl(url, http).set_rate_limits(False)
    async with Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(url))) as bot:
        await TelegramControl(url, http).send_text(42, "/start", first_name="Ann")
        updates = await bot.get_updates()
        await bot.get_updates(offset=updates[-1].update_id + 1)  # confirmed, as aiogram does
        await bot.send_message(42, "<b>Welcome</b>", parse_mode="HTML")
        photo = await bot.send_photo(42, BufferedInputFile(png(4, 3), "qr.png"))
    StateFiles(tmp_path, {"telegram": before}).save()
    await before.stop()

    after = TelegramEmulator()
    StateFiles(tmp_path, {"telegram": after}).load()
    url = await after.start()
    try:
        chat = TelegramControl(url, http)
        shown = await chat.messages(42, include_user=True)
        assert [m.text for m in shown[:2]] == ["/start", "Welcome"]
        assert shown[1].entities and shown[1].entities[0]["type"] == "bold"
        assert await chat.file(photo.photo[-1].file_id) == png(4, 3)
        await chat.send_text(42, "again")
        async with Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(url))) as bot:
            # The bot's offset from before the restart still finds the new message.
            fresh = await bot.get_updates(offset=updates[-1].update_id + 1)
        assert [u.message.text for u in fresh if u.message] == ["again"]
        assert fresh[0].update_id > updates[-1].update_id
    finally:
        await after.stop()


async def _create_invoice(http: aiohttp.ClientSession, emulator: CryptoBotEmulator, amount: str) -> int:
    url = await emulator.start()
    try:
        headers = {"Crypto-Pay-API-Token": emulator.token}
        body = {"amount": amount, "asset": "USDT"}
        async with http.post(f"{url}/api/createInvoice", json=body, headers=headers) as resp:
            answer = await resp.json()
    finally:
        await emulator.stop()
    assert answer["ok"], answer
    return int(answer["result"]["invoice_id"])


async def test_crypto_pay_invoice_ids_never_repeat_across_a_restart(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    before = CryptoBotEmulator("1:tok")
    first = await _create_invoice(http, before, "10")
    StateFiles(tmp_path, {"cryptobot": before}).save()
    after = CryptoBotEmulator("1:tok")
    StateFiles(tmp_path, {"cryptobot": after}).load()
    assert after.invoice(first)["amount"] == "10"
    assert await _create_invoice(http, after, "5") > first


async def test_a_state_file_that_does_not_decode_is_set_aside(tmp_path: Path) -> None:
    (tmp_path / "telegram.json").write_text('{"worlds": "not a list"}')
    emulator = TelegramEmulator()
    assert StateFiles(tmp_path, {"telegram": emulator}).load() == []
    assert (tmp_path / "telegram.json.bad").exists() and not (tmp_path / "telegram.json").exists()


async def test_two_panels_with_two_nodes_each_are_registered(db: asyncpg.Pool, settings: Settings) -> None:
    panels = make_panels(SandboxClock())
    assert [[node["name"] for node in panel.nodes()] for panel in panels] == [
        ["panel1-node1", "panel1-node2"],
        ["panel2-node1", "panel2-node2"],
    ]
    await register_panels(db, settings)
    await register_panels(db, settings)  # every start: nothing doubles
    rows = await db.fetch("SELECT id, base_url FROM marzban_instances ORDER BY id")
    assert [tuple(r) for r in rows] == [
        ("s001", "http://127.0.0.1:18001"),
        ("s002", "http://127.0.0.1:18002"),
    ]


# --- one clock -------------------------------------------------------------------------------


@pytest.fixture
async def sandbox_control(
    db: asyncpg.Pool, redis: Redis
) -> AsyncIterator[tuple[str, SandboxClock, TelegramEmulator, MarzbanEmulator]]:
    telegram = TelegramEmulator()
    sandbox_clock = SandboxClock(telegram)
    panel = MarzbanEmulator(clock=sandbox_clock.time)
    runner = aiohttp.web.AppRunner(control.make_app(sandbox_clock, db, redis))
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/control", sandbox_clock, telegram, panel
    await runner.cleanup()


async def test_advancing_the_sandbox_clock_moves_postgres_every_emulator_and_wakes_the_janitor(
    db: asyncpg.Pool,
    redis: Redis,
    http: aiohttp.ClientSession,
    sandbox_control: tuple[str, SandboxClock, TelegramEmulator, MarzbanEmulator],
) -> None:
    url, sandbox_clock, telegram, panel = sandbox_control
    pubsub = redis.pubsub()
    await pubsub.subscribe(keys.channel(redis, keys.JANITOR_POKE_CHANNEL))
    panel_before = panel._now()

    async with http.post(f"{url}/clock/advance", json={"seconds": 3 * 86400}) as resp:
        assert resp.status == 200
        assert await resp.json() == {"offset": 3 * 86400}
    assert await clock.offset(db) == 3 * 86400
    assert sandbox_clock.offset == 3 * 86400
    assert telegram._clock_offset == 3 * 86400
    assert 3 * 86400 <= (panel._now() - panel_before).total_seconds() < 3 * 86400 + 60
    poke = None
    for _ in range(50):
        poke = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if poke is not None:
            break
    assert poke is not None and poke["channel"] == keys.channel(redis, keys.JANITOR_POKE_CHANNEL)
    await pubsub.aclose()

    async with http.get(f"{url}/clock") as resp:
        shown = await resp.json()
    assert shown["offset"] == 3 * 86400 and shown["now"] >= (await clock.now(db)).isoformat()[:10]

    for bad in ({"seconds": -1}, {"seconds": "soon"}, {}, {"seconds": 1, "extra": 1}):
        async with http.post(f"{url}/clock/advance", json=bad) as resp:
            assert resp.status == 400, bad
    assert await clock.offset(db) == 3 * 86400  # nothing moved
    assert telegram._clock_offset == 3 * 86400


async def test_emulators_catch_up_with_the_clock_kept_in_postgres(db: asyncpg.Pool) -> None:
    await clock.advance(db, 600)  # moved before the sandbox (re)started
    telegram = TelegramEmulator()
    sandbox_clock = SandboxClock(telegram)
    assert await sandbox_clock.sync(db) == 600
    assert telegram._clock_offset == 600
    assert await sandbox_clock.sync(db) == 600  # idempotent: no double move


RAN = "chore expired_payments: "  # one line per run of a time-driven chore (orbit/janitor/schedule.py)


async def test_the_janitor_runs_its_chores_when_poked(
    db: asyncpg.Pool, redis: Redis, base_env: dict[str, str], log_dir: Path
) -> None:
    janitor = await spawn("janitor", base_env, log_dir)
    try:
        await wait_for_heartbeat(redis, "janitor", pid=janitor.pid, timeout=60)
        for _ in range(300):  # its first round, at start
            if janitor.output().count(RAN) >= 1:
                break
            await asyncio.sleep(0.1)
        assert janitor.output().count(RAN) == 1, janitor.output()
        await redis.publish(keys.channel(redis, keys.JANITOR_POKE_CHANNEL), "clock")
        # Well inside the chore's 30 s interval: the poke ran it.
        for _ in range(300):
            if janitor.output().count(RAN) >= 2:
                break
            await asyncio.sleep(0.1)
        assert janitor.output().count(RAN) == 2, janitor.output()
    finally:
        code = await janitor.stop()
    assert code == 0, janitor.output()
