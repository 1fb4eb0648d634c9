"""Running panels alone: ``python -m orbit.sandbox.marzban --port 8001 --port 8002``."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from orbit.sandbox import standalone
from orbit.sandbox.marzban.emulator import MarzbanEmulator
from orbit.sandbox.marzban.models import NodeSpec

logger = logging.getLogger(__name__)


# -- running alone --------------------------------------------------------------------------


async def serve(
    host: str,
    ports: list[int],
    *,
    username: str,
    password: str,
    nodes: int,
    users: int,
    subscription_url_prefix: str,
    sudo_from_env: bool = False,
    local_utc_offset_minutes: int = 0,
) -> None:
    panels = [
        MarzbanEmulator(
            admin_username=username,
            admin_password=password,
            nodes=[
                NodeSpec(name=f"panel{index}-node{n}", address=f"127.0.{index}.{n}")
                for n in range(1, nodes + 1)
            ],
            subscription_url_prefix=subscription_url_prefix,
            sudo_from_env=sudo_from_env,
            local_utc_offset=timedelta(minutes=local_utc_offset_minutes),
        )
        for index in range(1, len(ports) + 1)
    ]

    def ready() -> None:
        for index, panel in enumerate(panels, start=1):
            panel.add_users(users)
            logger.info(
                "marzban panel %d: %s (admin %s / %s, %d nodes, %d users)",
                index,
                panel.base_url,
                username,
                password,
                nodes,
                users,
            )

    await standalone.run_until_signal(host, list(zip(panels, ports, strict=True)), ready)


def main(argv: list[str] | None = None) -> None:
    parser = standalone.arguments("Local Marzban v0.8.4 panel(s)", prog="python -m orbit.sandbox.marzban")
    parser.add_argument("--port", type=int, action="append", help="one panel per --port (default 8001)")
    parser.add_argument("--username", default="admin", help="sudo admin username")
    parser.add_argument("--password", default="admin", help="sudo admin password")
    parser.add_argument("--nodes", type=int, default=0, help="connected nodes per panel")
    parser.add_argument("--users", type=int, default=0, help="synthetic users per panel")
    parser.add_argument(
        "--subscription-url-prefix",
        default="",
        help="like XRAY_SUBSCRIPTION_URL_PREFIX; empty keeps subscription_url relative",
    )
    parser.add_argument(
        "--sudo-from-env",
        action="store_true",
        help="the admin is the panel's SUDO_USERNAME one: users show admin null, DELETE answers 500",
    )
    parser.add_argument(
        "--local-utc-offset-minutes",
        type=int,
        default=0,
        help="the panel host's zone; usage dates without a zone are read in it (e.g. 210)",
    )
    args = standalone.parse(parser, argv)
    asyncio.run(
        serve(
            args.host,
            args.port or [8001],
            username=args.username,
            password=args.password,
            nodes=args.nodes,
            users=args.users,
            subscription_url_prefix=args.subscription_url_prefix,
            sudo_from_env=args.sudo_from_env,
            local_utc_offset_minutes=args.local_utc_offset_minutes,
        )
    )
