"""On stop, let the updates being handled finish before the dispatcher shuts down.

aiogram handles each polled update in its own task and, when polling stops,
runs the shutdown handlers at once without waiting for those tasks; aiogram-i18n's
shutdown handler then empties its catalogs and an update still in flight (a
config being created on a slow panel) fails half-way with `KeyError: 'en'`.
Registered before every other shutdown handler, `wait_for_updates` waits for
those tasks first, up to a deadline inside the worker's shutdown grace.

aiogram keeps the tasks in `Dispatcher._handle_update_tasks` and has no public
way to wait for them; the version is pinned in setup.cfg.
"""

from __future__ import annotations

import asyncio
import logging

from aiogram import Dispatcher

log = logging.getLogger(__name__)


def wait_for_updates_on_shutdown(dp: Dispatcher, timeout: float) -> None:
    """Call before anything else registers a shutdown handler on `dp`."""

    async def wait_for_updates() -> None:
        tasks: set[asyncio.Task[object]] = set(getattr(dp, "_handle_update_tasks", ()))
        if not tasks:
            return
        log.info("stopping: waiting for %d update(s) in flight (up to %.0fs)", len(tasks), timeout)
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        if pending:
            log.warning("stopping: %d update(s) still in flight after %.0fs", len(pending), timeout)

    dp.shutdown.register(wait_for_updates)
