"""The janitor's job loop: long admin actions the bot queued as `jobs` rows.

A drain or a broadcast started from the bot is a row (orbit/jobs/queries.py); this
loop claims it (`FOR UPDATE SKIP LOCKED`, so janitors may run twice), runs it,
and shows its progress in place by editing the admin's message. Restarting the
bot never cuts a job short; a janitor killed mid-job leaves a stale heartbeat and
the next claim runs the job again from the start, which every kind tolerates (a
fan-out resumes after its last row, a drain moves what is left). At a clean
shutdown a running job is handed back (`queued`) at once.

Edits of the progress message are throttled to one per `EDIT_INTERVAL` (Telegram
allows about one message a second per chat, edits included, and the admin's own
presses need room), identical ones are not sent, and "message is not modified" is
not an error. Each edit takes its place in the bot's one send budget
(orbit/outbox/limiter.py: a global slot and the chat's second), so it never makes
Telegram answer 429 to the bot's own replies. The progress display is best
effort: a failed edit never fails the job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import msgspec
from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest, TelegramRetryAfter
from aiogram.types import InlineKeyboardMarkup
from redis.asyncio import Redis
from redis.exceptions import RedisError

from orbit.admin.broadcasts import broadcast_progress, fan_out
from orbit.i18n import Translator
from orbit.jobs import queries
from orbit.jobs.queries import JobRow
from orbit.marzban.drain import drain_instance
from orbit.marzban.errors import DrainRefused, InstanceNotFound
from orbit.marzban.provisioning import PanelDeps
from orbit.outages import dependency_down
from orbit.outbox.limiter import NOTIFY, SendLimiter
from orbit.settings import Settings
from orbit.ui import admin_views as views
from orbit.ui.views import Screen

log = logging.getLogger(__name__)

LEASE_SECONDS = 30.0  # a running job whose heartbeat is older lost its worker
BEAT_SECONDS = 5.0
POLL_SECONDS = 1.0  # how soon a queued job is picked up
FOLLOW_SECONDS = 1.0  # how often a broadcast's delivery is counted
EDIT_INTERVAL = 2.0
MAX_RUNNING = 4  # jobs one janitor runs at once (a broadcast follows its delivery for minutes)


class Texts:
    """`i18n.get` for the job's locale outside an update (the admin views take it)."""

    def __init__(self, translator: Translator, locale: str) -> None:
        self.core = translator.core
        self.locale = locale

    def get(self, key: str, /, **params: Any) -> str:
        # The core's Markup, not Translator's plain str: views compose escaped texts.
        return self.core.get(key, self.locale, **params)  # type: ignore[no-any-return]


@dataclass
class JobDeps:
    pool: asyncpg.Pool
    redis: Redis
    settings: Settings
    translator: Translator
    panel_deps: PanelDeps
    bot: Bot | None  # None without BOT_TOKEN: jobs run, progress is not shown
    stopping: asyncio.Event
    limiter: SendLimiter | None = None  # the bot's send budget, shared through Redis


class Interrupted(Exception):
    """The worker is stopping: the job is handed back and resumes elsewhere."""


@dataclass
class ProgressMessage:
    """The admin's message a job edits in place."""

    bot: Bot | None
    chat_id: int | None
    message_id: int | None
    limiter: SendLimiter | None = None
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    last: tuple[str, str] | None = None
    last_at: float = field(default=0.0)

    async def show(self, screen: Screen, *, final: bool = False) -> None:
        if self.bot is None or self.chat_id is None or self.message_id is None:
            return
        markup = screen.markup.model_dump_json() if screen.markup is not None else ""
        shown = (screen.text, markup)
        if shown == self.last:
            return
        wait = self.last_at + EDIT_INTERVAL - time.monotonic()
        if wait > 0:
            if not final:
                return  # a later count replaces this one
            await asyncio.sleep(wait)
        if await self._edit(screen.text, screen.markup, final=final):
            self.last, self.last_at = shown, time.monotonic()

    async def _turn(self, *, final: bool) -> str | None:
        """A ticket of the send budget with the chat taken; None: not now (or stopping)."""
        assert self.limiter is not None and self.chat_id is not None
        while True:
            ticket = await self.limiter.slot(self.stopping, NOTIFY)
            if ticket is None:
                return None
            wait = await self.limiter.take_chat(self.chat_id)
            if wait <= 0:
                return ticket
            await self.limiter.release(ticket)
            if not final:
                return None  # the chat is busy (the admin is pressing): a later count goes
            await asyncio.sleep(wait)

    async def _edit(self, text: str, markup: InlineKeyboardMarkup | None, *, final: bool) -> bool:
        """Whether the message shows `text` now (edited, or it already did)."""
        assert self.bot is not None and self.chat_id is not None and self.message_id is not None
        for _ in range(2):
            ticket = None
            if self.limiter is not None:
                try:
                    ticket = await self._turn(final=final)
                except (RedisError, OSError) as exc:  # no budget to ask: no edit now
                    log.info("job progress not shown in chat %s: %s", self.chat_id, exc)
                    return False
                if ticket is None:
                    return False
            try:
                await self.bot.edit_message_text(
                    text=text, chat_id=self.chat_id, message_id=self.message_id, reply_markup=markup
                )
                return True
            except TelegramRetryAfter as exc:
                if self.limiter is not None:
                    with contextlib.suppress(RedisError, OSError):
                        await self.limiter.pause(exc.retry_after)
                if not final:
                    return False
                await asyncio.sleep(min(exc.retry_after, 30))
            except TelegramBadRequest as exc:
                if "message is not modified" in exc.message:
                    return True
                log.info("job progress not shown in chat %s: %s", self.chat_id, exc.message)
                return False
            except TelegramAPIError as exc:
                log.info("job progress not shown in chat %s: %s", self.chat_id, exc)
                return False
            finally:
                if ticket is not None and self.limiter is not None:
                    with contextlib.suppress(RedisError, OSError):
                        await self.limiter.done(ticket, self.chat_id)
        return False


Report = Callable[[dict[str, Any]], Awaitable[None]]


async def _sleep_or_stop(stopping: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), timeout=seconds)
    if stopping.is_set():
        raise Interrupted()


async def run_broadcast(deps: JobDeps, job: JobRow, message: ProgressMessage, report: Report) -> str:
    """Fan the broadcast out (resuming), then follow its delivery until nothing is left."""
    broadcast_id = int(job.args["broadcast_id"])
    texts = Texts(deps.translator, job.locale)
    await fan_out(deps.pool, deps.redis, broadcast_id, rate_per_second=deps.settings.outbox_rate_per_second)
    while True:
        progress = await broadcast_progress(deps.pool, broadcast_id)
        await report(msgspec.to_builtins(progress))
        screen = views.broadcast_progress_screen(texts, progress)  # type: ignore[arg-type]
        await message.show(screen, final=progress.finished)
        if progress.finished:
            return "done"
        await _sleep_or_stop(deps.stopping, FOLLOW_SECONDS)


async def run_drain(deps: JobDeps, job: JobRow, message: ProgressMessage, report: Report) -> str:
    instance_id = str(job.args["instance_id"])
    texts = Texts(deps.translator, job.locale)
    lines: list[str] = []

    async def follow() -> None:
        shown = 0
        while True:
            await asyncio.sleep(EDIT_INTERVAL)
            if len(lines) != shown:
                shown = len(lines)
                await report({"lines": shown, "last": lines[-1]})
                text = texts.get("admin-drain-progress", id=instance_id, line=lines[-1])
                await message.show(Screen(text, None))

    follower = asyncio.create_task(follow())
    try:
        done = await drain_instance(deps.panel_deps, instance_id, deps.translator, progress=lines.append)
    except (InstanceNotFound, DrainRefused) as exc:
        follower.cancel()
        key = "admin-instance-not-found" if isinstance(exc, InstanceNotFound) else "admin-drain-refused"
        text = texts.get(key, id=instance_id, reason=str(exc))
        await message.show(Screen(text, views.back_markup(texts)), final=True)  # type: ignore[arg-type]
        await report({"refused": str(exc)})
        return "failed"
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
    await report(msgspec.to_builtins(done))
    await message.show(views.drain_report_screen(texts, done), final=True)  # type: ignore[arg-type]
    return "done" if done.complete else "failed"


KINDS: dict[str, Callable[[JobDeps, JobRow, ProgressMessage, Report], Awaitable[str]]] = {
    "broadcast": run_broadcast,
    "drain": run_drain,
}


async def run_job(deps: JobDeps, job: JobRow) -> None:
    """Run one claimed job to its end, beating while it runs."""
    started = time.monotonic()
    lost = asyncio.Event()
    progress: dict[str, Any] | None = None

    async def report(value: dict[str, Any]) -> None:
        nonlocal progress
        progress = value

    async def beat() -> None:
        nonlocal progress
        while True:
            await asyncio.sleep(BEAT_SECONDS)
            try:
                ours = await queries.beat(deps.pool, job, progress)
            except Exception as exc:  # an outage: the job goes on; the lease is generous
                log.warning("job %d: heartbeat not written: %r", job.id, exc)
                continue
            if not ours:
                lost.set()
                return

    message = ProgressMessage(deps.bot, job.chat_id, job.message_id, deps.limiter, deps.stopping)
    beating = asyncio.create_task(beat())
    work = asyncio.create_task(KINDS[job.kind](deps, job, message, report))
    taken = asyncio.create_task(lost.wait())
    try:
        await asyncio.wait([work, taken], return_when=asyncio.FIRST_COMPLETED)
        if not work.done():
            work.cancel()
            log.warning("job %d (%s) was taken over by another worker: stopped here", job.id, job.kind)
            return
        try:
            state = work.result()
        except Interrupted:
            await queries.release(deps.pool, job)
            log.info("job %d (%s) handed back at shutdown", job.id, job.kind)
            return
        except Exception as exc:
            if dependency_down(exc) is not None:
                # Postgres or Redis is away: the heartbeat goes stale, the job is claimed again.
                log.warning("job %d (%s) interrupted by an outage: %r", job.id, job.kind, exc)
                return
            log.exception("job %d (%s) failed", job.id, job.kind)
            await queries.finish(deps.pool, job, "failed", repr(exc)[:500])
            return
        await queries.beat(deps.pool, job, progress)
        await queries.finish(deps.pool, job, state)
        log.info("job %d (%s) %s in %.2fs", job.id, job.kind, state, time.monotonic() - started)
    finally:
        for task in (beating, work, taken):
            task.cancel()
        await asyncio.gather(beating, work, taken, return_exceptions=True)


async def serve(deps: JobDeps) -> None:
    """Claim and run jobs until the process stops (up to MAX_RUNNING at once)."""
    running: set[asyncio.Task[None]] = set()
    while not deps.stopping.is_set():
        job = None
        if len(running) < MAX_RUNNING:
            try:
                job = await queries.claim(deps.pool, LEASE_SECONDS)
            except Exception as exc:
                if dependency_down(exc) is None:
                    log.exception("jobs: claim failed")
                else:
                    log.warning("jobs: claim failed: %r", exc)
        if job is not None:
            log.info("job %d (%s) claimed, attempt %d", job.id, job.kind, job.attempts)
            task = asyncio.create_task(run_job(deps, job))
            running.add(task)
            task.add_done_callback(running.discard)
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(deps.stopping.wait(), timeout=POLL_SECONDS)
    if running:
        await asyncio.gather(*running, return_exceptions=True)
