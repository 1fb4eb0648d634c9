"""What counts as "Postgres or Redis is away", and how its log lines are kept short."""

from __future__ import annotations

import logging

import aiohttp
import asyncpg
import pytest
from redis import exceptions as redis_errors

from orbit.outages import OneLineOutages, RepeatedOutageLines, dependency_down


async def test_postgres_and_redis_outages_are_told_apart_from_bugs() -> None:
    # A real refused connection, raised from inside asyncpg.
    with pytest.raises(OSError) as refused:
        await asyncpg.connect("postgresql://orbit@127.0.0.1:1/orbit", timeout=2)
    assert dependency_down(refused.value) == "Postgres"
    assert dependency_down(asyncpg.AdminShutdownError("terminating connection")) == "Postgres"
    assert dependency_down(asyncpg.ConnectionDoesNotExistError("closed mid-operation")) == "Postgres"
    closed = asyncpg.InterfaceError("cannot perform operation: connection is closed")
    assert dependency_down(closed) == "Postgres"
    assert dependency_down(redis_errors.ConnectionError("Error 111 connecting")) == "Redis"
    assert dependency_down(redis_errors.BusyLoadingError("loading")) == "Redis"
    # Not outages: a panel's refused connection, a bad query, a bug.
    assert dependency_down(aiohttp.ClientConnectionError("panel down")) is None
    assert dependency_down(ConnectionRefusedError(111, "not from asyncpg")) is None
    assert dependency_down(asyncpg.UndefinedTableError("no such table")) is None
    assert dependency_down(redis_errors.ResponseError("WRONGTYPE")) is None
    assert dependency_down(KeyError("x")) is None


def _record(msg: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, None) if exc is not None else None
    return logging.LogRecord("t", logging.WARNING, __file__, 1, msg, args, exc_info)


def test_a_repeated_outage_warning_passes_once_per_period_with_a_count() -> None:
    now = [100.0]
    limiter = RepeatedOutageLines(every=30, clock=lambda: now[0])
    down = redis_errors.ConnectionError("Error 111")
    assert limiter.filter(_record("heartbeat failed: %s", down))
    for _ in range(5):
        now[0] += 1
        assert not limiter.filter(_record("heartbeat failed: %s", down))
    assert limiter.filter(_record("lease %s: %s", "x", down))  # another message: its own period
    assert limiter.filter(_record("heartbeat failed: %s", "not an outage"))  # never held back
    now[0] += 30
    again = _record("heartbeat failed: %s", down)
    assert limiter.filter(again)
    assert again.getMessage() == "heartbeat failed: Error 111 (5 more like it in the last 30s)"


def test_a_library_traceback_of_an_outage_becomes_one_line() -> None:
    flatten = OneLineOutages()
    record = _record("Cause exception while process update id=%d\n%s", 7, "x",
                     exc=asyncpg.CannotConnectNowError("the database system is shutting down"))
    assert flatten.filter(record)
    assert record.exc_info is None
    assert record.getMessage() == (
        "Cause exception while process update id=7 x:"
        " CannotConnectNowError: the database system is shutting down"
    )
    bug = _record("boom", exc=KeyError("x"))
    assert flatten.filter(bug) and bug.exc_info is not None  # a bug keeps its traceback
