"""`python -m orbit.sandbox`: every emulator on the sandbox's fixed local ports.

Run by supervisord (program `sandbox`) when scripts/run.sh finds no BOT_TOKEN (or
ORBIT_SANDBOX=1). Two Marzban panels with two nodes each (instances s001 and s002,
registered here), so the balancer has a choice. The emulators' state is kept under
run/sandbox-state/ (on stop and every few seconds) and loaded on start; their clock
follows Postgres's (`orbit.sandbox.clock`); the sandbox's control API moves it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path

import asyncpg
from aiohttp import web
from redis.asyncio import Redis

from orbit.logs import setup_logging
from orbit.marzban.instances import Instance, insert_instance
from orbit.marzban.passwords import PanelPasswords
from orbit.sandbox import config, control
from orbit.sandbox.clock import SandboxClock
from orbit.sandbox.cryptobot import CryptoBotEmulator
from orbit.sandbox.marzban import MarzbanEmulator, NodeSpec
from orbit.sandbox.page import PageServer, page_endpoints
from orbit.sandbox.state_files import Persistent, StateFiles
from orbit.sandbox.telegram import TelegramEmulator
from orbit.sandbox.tonapi import TonapiEmulator
from orbit.settings import Settings, load_settings

log = logging.getLogger("orbit.sandbox")

SAVE_EVERY = 5.0  # seconds: what a kill -9 of the sandbox can lose


def make_panels(sandbox_clock: SandboxClock) -> list[MarzbanEmulator]:
    return [
        MarzbanEmulator(
            admin_username=config.MARZBAN_USER,
            admin_password=config.MARZBAN_PASSWORD,
            nodes=[
                NodeSpec(name=f"panel{number}-node{n}", address=f"127.0.{number}.{n}")
                for n in range(1, config.NODES_PER_PANEL + 1)
            ],
            clock=sandbox_clock.time,
        )
        for number in range(1, config.PANELS + 1)
    ]


async def register_panels(pool: asyncpg.Pool, settings: Settings, shift: int = 0) -> None:
    """Each panel as a `marzban_instances` row (an existing row is left as it is)."""
    sealer = PanelPasswords.from_settings(settings)
    for number in range(1, config.PANELS + 1):
        instance = Instance(
            id=config.panel_id(number),
            name=f"sandbox panel {number}",
            base_url=f"http://{config.HOST}:{config.panel_port(number) + shift}",
            username=config.MARZBAN_USER,
            password=sealer.seal(config.MARZBAN_PASSWORD),
        )
        if await insert_instance(pool, instance):
            log.info("registered sandbox panel %s (%s)", instance.id, instance.base_url)


async def _keep_up(state: StateFiles, sandbox_clock: SandboxClock, pool: asyncpg.Pool) -> None:
    """Every few seconds: save the state, and follow a clock moved by someone else in Postgres."""
    while True:
        await asyncio.sleep(SAVE_EVERY)
        try:
            state.save()
        except OSError:
            log.exception("saving the sandbox state failed; retrying in %.0f s", SAVE_EVERY)
        try:
            await sandbox_clock.sync(pool)
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("reading the clock from Postgres failed (%s); retrying in %.0f s", exc, SAVE_EVERY)


async def run() -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    settings = load_settings()
    # A test runs its own sandbox beside a running one: every port moved by the same
    # amount, the state in a folder of its own.
    shift = int(os.environ.get("ORBIT_SANDBOX_PORT_SHIFT", "0"))
    state_dir = Path(os.environ.get("ORBIT_SANDBOX_STATE_DIR") or config.STATE_DIR)
    pool = await asyncpg.create_pool(settings.dsn, min_size=0, max_size=2)
    redis = Redis.from_url(settings.redis_url)
    telegram = TelegramEmulator()
    sandbox_clock = SandboxClock(telegram)
    panels = make_panels(sandbox_clock)
    tonapi = TonapiEmulator(clock=sandbox_clock.time)
    webhook = f"http://{config.HOST}:{config.BOT_HTTP_PORT + shift}{config.CRYPTOBOT_WEBHOOK_PATH}"
    cryptobot = CryptoBotEmulator(config.CRYPTOBOT_TOKEN, webhook, clock=sandbox_clock.time)
    persistent: dict[str, Persistent] = {"telegram": telegram, "tonapi": tonapi, "cryptobot": cryptobot}
    persistent.update({f"marzban-{config.panel_id(n)}": panel for n, panel in enumerate(panels, start=1)})
    state = StateFiles(state_dir, persistent)
    loaded = state.load()
    log.info("sandbox state from %s: %s", state_dir, ", ".join(loaded) or "none (a fresh sandbox)")
    await sandbox_clock.sync(pool)
    await register_panels(pool, settings, shift)
    emulators = [
        (telegram, config.TELEGRAM_PORT + shift),
        *((panel, config.panel_port(n) + shift) for n, panel in enumerate(panels, start=1)),
        (tonapi, config.TONAPI_PORT + shift),
        (cryptobot, config.CRYPTOBOT_PORT + shift),
        (PageServer(page_endpoints(shift), config.SANDBOX_ADMIN_ID), config.PAGE_PORT + shift),
    ]
    control_runner = web.AppRunner(control.make_app(sandbox_clock, pool, redis), access_log=None)
    saver: asyncio.Task[None] | None = None
    try:
        for emulator, port in emulators:
            url = await emulator.start(config.HOST, port)
            log.info("%s listening on %s", type(emulator).__name__, url)
        await control_runner.setup()
        await web.TCPSite(control_runner, config.HOST, config.CONTROL_PORT + shift).start()
        saver = asyncio.create_task(_keep_up(state, sandbox_clock, pool))
        log.info(
            "sandbox ready; bot token %s, admin id %d, clock +%.0f s, control http://%s:%d/control",
            config.BOT_TOKEN,
            config.SANDBOX_ADMIN_ID,
            sandbox_clock.offset,
            config.HOST,
            config.CONTROL_PORT + shift,
        )
        await stopping.wait()
    finally:
        if saver is not None:
            saver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await saver
        await control_runner.cleanup()
        for emulator, _ in emulators:
            await emulator.stop()
        state.save()  # after the stops: nothing changes any more
        await redis.aclose()
        await pool.close()


def main() -> None:
    setup_logging("INFO", "sandbox")
    asyncio.run(run())


if __name__ == "__main__":
    main()
