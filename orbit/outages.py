"""Telling "Postgres or Redis is away" apart from a bug.

A restart of Postgres or Redis cuts every connection; the asyncpg pool and the
redis client reconnect by themselves on the next use, so a unit of work that
failed because of it only has to be retried. Such a failure is expected and is
logged as one line (`describe`), not a traceback each time it recurs.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable

import aiohttp
import asyncpg
from redis import exceptions as redis_errors

# Postgres going away: the connection was cut (class 08), the server is shutting
# down or starting (57P01-57P03), or the client noticed the closed socket.
_POSTGRES_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
    asyncpg.ConnectionDoesNotExistError,
)
_REDIS_ERRORS: tuple[type[BaseException], ...] = (
    redis_errors.ConnectionError,  # includes BusyLoadingError (a restarting Redis)
    redis_errors.TimeoutError,
)


def _from_asyncpg(exc: BaseException) -> bool:
    return any("/asyncpg/" in frame.filename for frame in traceback.extract_tb(exc.__traceback__))


def dependency_down(exc: BaseException) -> str | None:
    """"Postgres" or "Redis" when `exc` says that dependency is unreachable or cut the
    connection; None for anything else (which deserves a traceback)."""
    if isinstance(exc, _REDIS_ERRORS):
        return "Redis"
    if isinstance(exc, _POSTGRES_ERRORS):
        return "Postgres"
    if isinstance(exc, asyncpg.InterfaceError) and "connection" in str(exc).lower():
        return "Postgres"  # "connection is closed", "cannot perform operation: connection is closed"
    if isinstance(exc, asyncpg.InternalClientError) and "cannot switch to state" in str(exc):
        # The server's "terminating connection" notice arrived on an idle connection and
        # asyncpg's protocol state trips over it at the next query.
        return "Postgres"
    if isinstance(exc, OSError) and not isinstance(exc, aiohttp.ClientError) and _from_asyncpg(exc):
        return "Postgres"  # refused or reset while (re)connecting
    return None


def describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class OneLineOutages(logging.Filter):
    """For a library logger that logs a dependency outage with a traceback (asyncpg's
    pool re-filling its connection floor while Postgres restarts; aiogram when an outer
    middleware's query fails): one line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            if dependency_down(exc) is not None:
                message = " ".join(record.getMessage().split("\n"))
                record.msg = f"{message}: {describe(exc)}"
                record.args = None
                record.exc_info = None
                record.exc_text = None
        return True


class RepeatedOutageLines(logging.Filter):
    """While a dependency is away, the same warning (heartbeat, lease, token cache, rate
    limit, ...) would repeat with every attempt: each message template that carries an
    outage exception passes once per `every` seconds, with a count of what it held back."""

    def __init__(self, every: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.every = every
        self.clock = clock
        self._last: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        if not any(isinstance(a, BaseException) and dependency_down(a) for a in args):
            return True
        key = (record.name, str(record.msg))
        now = self.clock()
        seen = self._last.get(key)
        if seen is not None and now - seen[0] < self.every:
            self._last[key] = (seen[0], seen[1] + 1)
            return False
        held_back = seen[1] if seen is not None else 0
        self._last[key] = (now, 0)
        if held_back:
            record.msg = f"{record.msg} ({held_back} more like it in the last {self.every:.0f}s)"
        return True
