"""`python -m orbit.sandbox`: every emulator on the sandbox's fixed local ports.

Run by supervisord (program `sandbox`) when scripts/run.sh finds no BOT_TOKEN.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal

from orbit.logs import setup_logging
from orbit.sandbox import config
from orbit.sandbox.cryptobot import CryptoBotEmulator
from orbit.sandbox.marzban import MarzbanEmulator
from orbit.sandbox.page import PageServer, page_endpoints
from orbit.sandbox.telegram import TelegramEmulator
from orbit.sandbox.tonapi import TonapiEmulator

log = logging.getLogger("orbit.sandbox")


async def run() -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    # Every port moved by the same amount: a test runs its own sandbox beside a running one.
    shift = int(os.environ.get("ORBIT_SANDBOX_PORT_SHIFT", "0"))
    webhook = f"http://{config.HOST}:{config.BOT_HTTP_PORT + shift}{config.CRYPTOBOT_WEBHOOK_PATH}"
    emulators = [
        (TelegramEmulator(), config.TELEGRAM_PORT + shift),
        (
            MarzbanEmulator(admin_username=config.MARZBAN_USER, admin_password=config.MARZBAN_PASSWORD),
            config.MARZBAN_PORT + shift,
        ),
        (TonapiEmulator(), config.TONAPI_PORT + shift),
        (CryptoBotEmulator(config.CRYPTOBOT_TOKEN, webhook), config.CRYPTOBOT_PORT + shift),
        (PageServer(page_endpoints(shift), config.SANDBOX_ADMIN_ID), config.PAGE_PORT + shift),
    ]
    for emulator, port in emulators:
        url = await emulator.start(config.HOST, port)
        log.info("%s listening on %s", type(emulator).__name__, url)
    log.info("sandbox ready; bot token %s, admin id %d", config.BOT_TOKEN, config.SANDBOX_ADMIN_ID)
    await stopping.wait()
    for emulator, _ in emulators:
        await emulator.stop()


def main() -> None:
    setup_logging("INFO", "sandbox")
    asyncio.run(run())


if __name__ == "__main__":
    main()
