"""Running the emulator alone: ``python -m orbit.sandbox.telegram --host 127.0.0.1 --port 8081``."""

from __future__ import annotations

import asyncio
import logging

from orbit.sandbox import standalone
from orbit.sandbox import telegram_control as ctl
from orbit.sandbox.telegram.emulator import TelegramEmulator

logger = logging.getLogger(__name__)


async def _serve(host: str, port: int, *, rate_limits: bool = True) -> None:
    emulator = TelegramEmulator(rate_limits=ctl.RateLimits(enabled=rate_limits))

    def ready() -> None:
        logger.info("Telegram Bot API emulator listening on %s", emulator.base_url)

    try:
        await standalone.run_until_signal(host, [(emulator, port)], ready)
    finally:
        logger.info("Telegram Bot API emulator stopped")


def main() -> None:
    parser = standalone.arguments(
        "In-memory Telegram Bot API emulator", port=8081, prog="python -m orbit.sandbox.telegram"
    )
    parser.add_argument(
        "--no-rate-limits", action="store_true", help="accept any rate (Telegram's limits are on by default)"
    )
    args = standalone.parse(parser, None)
    asyncio.run(_serve(args.host, args.port, rate_limits=not args.no_rate_limits))
