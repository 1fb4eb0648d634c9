"""The jobs queue and the janitor's job loop, in this process against real Postgres,
Redis and the Telegram emulator: claiming, handing back, taking over a dead worker's
job, and a broadcast job that fans out and shows its progress by editing a message."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import msgspec
import pytest
from aiogram import Bot
from redis.asyncio import Redis

from orbit.admin.broadcasts import Audience, make_broadcast
from orbit.bot.process import install_send_budget
from orbit.bot_client import create_bot
from orbit.i18n import create_translator
from orbit.janitor import jobs as runner
from orbit.jobs import queries as jobs
from orbit.marzban.provisioning import PanelDeps
from orbit.metrics import Metrics
from orbit.outbox.limiter import SendLimiter
from orbit.sandbox.telegram import TelegramEmulator
from orbit.sandbox.telegram_control import TelegramControl
from orbit.settings import Settings

ADMIN = 900_000_001


async def test_claim_skips_taken_jobs_and_takes_over_a_dead_workers(db: asyncpg.Pool) -> None:
    async with db.acquire() as conn:
        first = await jobs.enqueue(conn, "drain", {"instance_id": "p1"}, created_by=ADMIN)
        second = await jobs.enqueue(conn, "broadcast", {"broadcast_id": 1}, created_by=0)
    a = await jobs.claim(db, 30)
    b = await jobs.claim(db, 30)
    assert (a and a.id, b and b.id) == (first.id, second.id)
    assert a is not None and (a.state, a.attempts) == ("running", 1)
    assert await jobs.claim(db, 30) is None  # both are running and beating
    # A worker killed mid-job stops beating: after the lease its job is claimed again...
    await db.execute("UPDATE jobs SET heartbeat_at = now() - interval '31 seconds' WHERE id = $1", first.id)
    again = await jobs.claim(db, 30)
    assert again is not None and (again.id, again.attempts) == (first.id, 2)
    # ...and the dead worker's late writes change nothing.
    assert await jobs.beat(db, a, {"x": 1}) is False
    await jobs.finish(db, a, "done")
    assert await db.fetchval("SELECT state FROM jobs WHERE id = $1", first.id) == "running"
    # A clean shutdown hands a job back at once.
    assert b is not None
    await jobs.release(db, b)
    back = await jobs.claim(db, 30)
    assert back is not None and (back.id, back.attempts) == (second.id, 2)
    await jobs.finish(db, again, "done")
    assert await db.fetchval("SELECT state FROM jobs WHERE id = $1", first.id) == "done"


@pytest.fixture
async def telegram() -> AsyncIterator[tuple[TelegramEmulator, str]]:
    emulator = TelegramEmulator()
    url = await emulator.start()
    yield emulator, url
    await emulator.stop()


@pytest.mark.timeout(300)
async def test_a_broadcast_job_fans_out_and_edits_its_progress_in_place(
    db: asyncpg.Pool, redis: Redis, settings: Settings, telegram: tuple[TelegramEmulator, str]
) -> None:
    _, url = telegram
    settings = msgspec.structs.replace(settings, bot_token="123456:JOBS-token", telegram_api_url=url)
    bot: Bot = create_bot(settings)
    await db.execute(
        "INSERT INTO users (id, created_at)"
        " SELECT g, now() - interval '1 minute' FROM generate_series(1, 5) g"
    )
    async with aiohttp.ClientSession() as http:
        control = TelegramControl(url, http)
        await control.send_text(ADMIN, "/admin")  # opens the admin's chat
        # The bot's own message goes through its send budget, as in the bot process: the
        # chat's second it took is what the job's first edit waits out (else a 429).
        admin_bot = create_bot(settings)
        install_send_budget(admin_bot, redis, settings, Metrics("bot"))
        try:
            shown = await admin_bot.send_message(ADMIN, "queued")
        finally:
            await admin_bot.session.close()
        async with db.acquire() as conn, conn.transaction():
            broadcast_id, _ = await make_broadcast(
                conn, "Hi", audience=Audience(), reply_markup=None, created_by=ADMIN, action_key="k"
            )
            await jobs.enqueue(
                conn, "broadcast", {"broadcast_id": broadcast_id}, created_by=ADMIN,
                chat_id=ADMIN, message_id=shown.message_id, locale="en",
            )  # fmt: skip
        stopping = asyncio.Event()
        translator = create_translator()
        deps = runner.JobDeps(
            db, redis, settings, translator, PanelDeps(db, redis, http, settings, translator), bot, stopping,
            SendLimiter(redis, settings.outbox_rate_per_second),
        )  # fmt: skip
        loop = asyncio.create_task(runner.serve(deps))
        try:
            await _until(lambda: db.fetchval("SELECT count(*) = 5 FROM outbox"))
            await _until(lambda: _shown(control, shown.message_id, "pending 5"))
            # The bot's sender is not running here: the rows are marked as it would.
            await db.execute("UPDATE outbox SET status = 'sent', sent_at = now()")
            await _until(lambda: db.fetchval("SELECT state = 'done' FROM jobs"))
            text = await _shown(control, shown.message_id, "Finished")
            assert text == (
                f"📣 Broadcast #{broadcast_id}: 5 recipients — sent 5, pending 0, failed 0, skipped 0.\n"
                "👥 everyone reachable\n✅ Finished."
            )
            progress = await db.fetchval("SELECT progress FROM jobs")
            assert (progress["sent"], progress["pending"]) == (5, 0)
            # Identical counts are not edited again; "not modified" would not be an error anyway.
            edits = [c for c in await control.calls("editMessageText") if c.ok is False]
            assert edits == []
        finally:
            stopping.set()
            await asyncio.wait_for(loop, 10)
            await bot.session.close()


async def _until(probe, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await probe()
        if value:
            return value
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def _shown(control: TelegramControl, message_id: int, part: str) -> str | None:
    for message in await control.messages(ADMIN):
        if message.message_id == message_id and part in (message.text or ""):
            return message.text
    return None
