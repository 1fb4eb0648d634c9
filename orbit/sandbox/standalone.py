"""Running emulators alone (`python -m orbit.sandbox.<name>`): the command line every
one of them takes, and serving until SIGINT or SIGTERM (Ctrl-C, supervisord)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Callable, Sequence
from typing import Protocol

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class Emulator(Protocol):
    async def start(self, host: str, port: int) -> str: ...

    async def stop(self) -> None: ...


def arguments(
    description: str, *, port: int | None = None, prog: str | None = None
) -> argparse.ArgumentParser:
    """`--host`, and `--port` when given its default; the caller adds its own options."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--host", default="127.0.0.1")
    if port is not None:
        parser.add_argument("--port", type=int, default=port)
    return parser


def parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Add `--log-level` (last, in `--help` too), parse, and set up logging."""
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format=LOG_FORMAT)
    return args


def _freeze_survivors(phase: str, info: dict[str, int]) -> None:
    if phase == "stop" and info["generation"] == 2:
        gc.freeze()


def freeze_survivors_of_full_collections() -> None:
    """After each full GC pass, move what survived out of the collector's sight.

    An emulator's state only grows (every version of every message, every callback
    query is kept), and a full pass scans all of it: after a long benchmark that
    stalled the emulator for seconds. Frozen objects are still freed by reference
    counting; only a cycle that dies after surviving a full pass would stay.
    """
    if _freeze_survivors not in gc.callbacks:
        gc.callbacks.append(_freeze_survivors)


async def run_until_signal(
    host: str, emulators: Sequence[tuple[Emulator, int]], ready: Callable[[], None] | None = None
) -> None:
    """Start each emulator on its port, call `ready`, serve until a signal, then stop
    every emulator that was started (or tried to)."""
    freeze_survivors_of_full_collections()
    # Set before starting: a signal during start-up still ends in a clean stop.
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows
            loop.add_signal_handler(sig, stopping.set)
    tried: list[Emulator] = []
    try:
        for emulator, port in emulators:
            tried.append(emulator)
            await emulator.start(host, port)
        if ready is not None:
            ready()
        await stopping.wait()
    finally:
        for emulator in tried:
            await emulator.stop()
