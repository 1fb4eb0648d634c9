"""Structured one-line logs to stdout (supervisord captures them per program)."""

from __future__ import annotations

import logging
import sys

from orbit.outages import OneLineOutages, RepeatedOutageLines

FORMAT = "%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s"


def setup_logging(level: str = "INFO", worker: str | None = None) -> None:
    fmt = FORMAT
    if worker is not None:
        fmt = f"%(asctime)s %(levelname)s {worker}[%(process)d] %(name)s: %(message)s"
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter(fmt))
    handler.addFilter(RepeatedOutageLines())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiogram logs every update at INFO; one line per unit of work is ours to write.
    logging.getLogger("aiogram.event").setLevel(max(logging.WARNING, root.level))
    # asyncpg's pool logs each failed re-connect during a Postgres restart with a traceback.
    logging.getLogger("asyncpg.pool").addFilter(OneLineOutages())
    # aiogram logs an update whose outer middleware (the user row) failed with a traceback.
    logging.getLogger("aiogram.event").addFilter(OneLineOutages())
