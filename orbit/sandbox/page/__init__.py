"""The sandbox's chat page: a Telegram-like web client, a wallet, the panels and the clock.

`server.py` serves `static/` and a JSON API; `backends.py` drives the emulators
through their control APIs; `roster.py` holds the test users a person plays.
"""

from __future__ import annotations

from orbit.sandbox import config
from orbit.sandbox.page.backends import Endpoints, Panel
from orbit.sandbox.page.server import PageServer

__all__ = ["Endpoints", "PageServer", "Panel", "page_endpoints"]


def page_endpoints(shift: int = 0) -> Endpoints:
    """Where the sandbox's emulators listen (`shift`: every port moved by that much)."""
    url = f"http://{config.HOST}"
    return Endpoints(
        telegram_url=f"{url}:{config.TELEGRAM_PORT + shift}",
        tonapi_url=f"{url}:{config.TONAPI_PORT + shift}",
        cryptobot_url=f"{url}:{config.CRYPTOBOT_PORT + shift}",
        ton_address=config.TON_ADDRESS,
        panels=tuple(
            Panel(
                id=config.panel_id(number),
                name=f"Panel {config.panel_id(number)}",
                base_url=f"{url}:{config.panel_port(number) + shift}",
                username=config.MARZBAN_USER,
                password=config.MARZBAN_PASSWORD,
            )
            for number in range(1, config.PANELS + 1)
        ),
        clock_url=f"{url}:{config.CONTROL_PORT + shift}/control/clock",
    )
