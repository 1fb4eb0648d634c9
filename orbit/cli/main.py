"""`orbit`: the operators' command line. Each sub-command lives in its own module."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from types import ModuleType

from orbit.cli import (
    audit,
    audit_log,
    broadcast,
    instances,
    maintenance,
    migrate,
    payments,
    promo,
    reconcile,
    stats,
    status,
    ton,
    users,
)
from orbit.cli.errors import CommandError
from orbit.connections import StartupError
from orbit.logs import setup_logging
from orbit.runtime import EXIT_CONFIG, EXIT_STARTUP
from orbit.settings import Settings, SettingsError, load_settings

EXIT_USAGE = 2

Command = Callable[[argparse.Namespace, Settings], Awaitable[int]]

# A sub-command module exposes `register(subparsers)`, which sets `func` to its
# `async def run(args, settings) -> int`.
COMMANDS: tuple[ModuleType, ...] = (
    migrate,
    status,
    instances,
    promo,
    audit,
    audit_log,
    payments,
    reconcile,
    ton,
    users,
    stats,
    broadcast,
    maintenance,
)


def build_parser(commands: tuple[ModuleType, ...] = COMMANDS) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orbit", description="Operate an Orbit deployment.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in commands:
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"orbit: configuration error: {exc}", file=sys.stderr)  # noqa: T201
        sys.exit(EXIT_CONFIG)
    setup_logging("WARNING" if settings.log_level == "INFO" else settings.log_level)
    func: Command = args.func
    try:
        code = asyncio.run(func(args, settings))
    except CommandError as exc:
        print(f"orbit {args.command}: {exc}", file=sys.stderr)  # noqa: T201
        sys.exit(EXIT_USAGE)
    except StartupError as exc:
        print(f"orbit {args.command}: {settings.scrub(str(exc))}", file=sys.stderr)  # noqa: T201
        sys.exit(EXIT_STARTUP)
    sys.exit(code)
