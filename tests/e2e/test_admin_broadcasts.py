"""📣 Broadcasts through the real bot, janitor and outbox sender: an audience, a button,
progress shown in place, the stop button, and a bot killed mid-job."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import pytest
from redis.asyncio import Redis

from orbit.sandbox.telegram_control import ShownMessage
from tests.e2e.conftest import ADMIN_ID, BOT_TOKEN, Panel, Telegram
from tests.support.journey import eventually
from tests.support.processes import WorkerProcess, spawn, wait_for_heartbeat
from tests.support.telegram_user import TelegramUser

MakeUser = Callable[..., TelegramUser]
FIRST = 7_000_001
BOT_ID = int(BOT_TOKEN.split(":")[0])


def text(message: ShownMessage) -> str:
    return message.text or message.caption or ""


FAST = {"OUTBOX_RATE_PER_SECOND": "300"}  # the bot's budget; the fan-out spaces rows by it too


@pytest.fixture
async def fast_janitor(
    redis: Redis, bot_env: dict[str, str], log_dir: Path, panels: list[Panel]
) -> AsyncIterator[WorkerProcess]:
    worker = await spawn("janitor", {**bot_env, **FAST}, log_dir)
    await wait_for_heartbeat(redis, "janitor", pid=worker.pid, timeout=120)
    yield worker
    code = await worker.stop()
    assert code == 0, f"janitor exited {code}:\n{worker.output()[-3000:]}"


async def crowd(
    db: asyncpg.Pool, telegram: Telegram, count: int, *, paid: int, blocked: int
) -> dict[str, set[int]]:
    """`count` users who pressed /start once (rows made directly, chats opened in the
    emulator): the first `paid` have a confirmed payment, the last `blocked` blocked
    the bot without the bot being told (it learns from the 403)."""
    ids = list(range(FIRST, FIRST + count))
    await db.execute(
        "INSERT INTO users (id, first_name, created_at) SELECT g, 'U' || g, now() - interval '1 day'"
        " FROM generate_series($1::bigint, $2::bigint) g",
        ids[0], ids[-1],
    )  # fmt: skip
    await db.execute(
        "INSERT INTO payments (user_id, method, status, amount_kop, currency, currency_amount, credited_kop,"
        " expires_at, confirmed_at)"
        " SELECT g, 'stars', 'confirmed', 10000, 'XTR', 74, 10000, now(), now()"
        " FROM generate_series($1::bigint, $2::bigint) g",
        ids[0], ids[paid - 1],
    )  # fmt: skip
    # The emulator's chats, opened as a /start would, without feeding 1,000 updates to the bot.
    emulator = telegram.emulator
    world = emulator._world_for_bot(BOT_ID)
    for user_id in ids:
        emulator._remember_user(world, user_id, None)
    blocked_ids = set(ids[-blocked:]) if blocked else set()
    world.blocked.update(blocked_ids)
    return {"paid": set(ids[:paid]), "blocked": blocked_ids, "all": set(ids)}


async def broadcast_sends(telegram: Telegram, body: str) -> Counter[int]:
    """Per chat: how many messages with `body` Telegram accepted (the admin's preview too)."""
    calls = await telegram.control.calls("sendMessage")
    return Counter(int(c.params["chat_id"]) for c in calls if c.ok and c.params.get("text") == body)


async def delivered(telegram: Telegram, body: str) -> int:
    """Messages of the broadcast users got (the admin's preview is not one)."""
    sends = await broadcast_sends(telegram, body)
    return sum(sends.values()) - sends[ADMIN_ID]


async def press_when_shown(user: TelegramUser, label: str) -> None:
    """Press `label` once it is shown: a screen edited within the chat's second waits
    for Telegram's per-chat limit, and may come after the press was answered."""
    await user.wait_until(
        lambda ms: any(b.text == label for m in ms[-1:] for row in m.buttons for b in row), 30
    )
    await user.press(label)


async def start_broadcast(admin: TelegramUser, audience_button: str, body: str, button: str | None) -> int:
    """Through the panel: audience, text, button, preview, send; the message id shown."""
    assert text(await admin.send("/admin")) == "🛠 Admin panel"
    await press_when_shown(admin, "📣 Broadcast")
    await press_when_shown(admin, audience_button)
    await admin.wait_until(lambda ms: text(ms[-1]).startswith("📣 Send the broadcast text"), 30)
    await admin.send(body)
    await admin.wait_until(lambda ms: text(ms[-1]).startswith("🔘 Add a button?"), 30)
    if button is None:
        await press_when_shown(admin, "➡️ No button")
    else:
        await admin.send(button)
    shown = await admin.wait_until(lambda ms: "Send it to" in text(ms[-1]), 30)
    await press_when_shown(admin, "📣 Send")
    return shown[-1].message_id


@pytest.mark.timeout(600)
async def test_never_paid_broadcast_to_1000_reaches_exactly_them_once(
    start_bot: Callable[..., object],
    fast_janitor: WorkerProcess,
    telegram: Telegram,
    make_user: MakeUser,
    db: asyncpg.Pool,
) -> None:
    await telegram.control.set_rate_limits(global_per_sec=1000)
    await start_bot(**FAST)
    people = await crowd(db, telegram, 1000, paid=100, blocked=20)
    admin = make_user(ADMIN_ID, first_name="Admin")
    body = "Spring sale: 30% off"

    assert text(await admin.send("/admin")) == "🛠 Admin panel"
    await admin.press("📣 Broadcast")
    shown = text(await admin.last())
    # The admin (no users row) is not counted; every count is the audience's.
    assert "never paid: 900" in [b.text for row in (await admin.last()).buttons for b in row]
    assert shown.startswith("📣 Who gets the broadcast?")
    await admin.press("🇷🇺 ru")
    assert "never paid: 0" in [b.text for row in (await admin.last()).buttons for b in row]
    await admin.press("🌐 any language")
    await admin.press("never paid: 900")
    assert text(await admin.last()) == (
        "📣 Send the broadcast text (formatting is kept). It goes to 900 users (never paid)."
    )
    await admin.send(body)
    assert text(await admin.send("Plans=nowhere")).startswith("❌ Not a button:")
    await admin.send("Buy a plan=buy")
    shown_all = await admin.wait_until(lambda ms: "Send it to" in text(ms[-1]))
    preview, confirm = shown_all[-2], shown_all[-1]
    assert text(preview) == body and [[b.text for b in r] for r in preview.buttons] == [["Buy a plan"]]
    assert text(confirm) == "⬆️ This is how it looks. Send it to 900 users (never paid)?"
    assert await db.fetchval("SELECT count(*) FROM broadcasts") == 0
    await admin.press("📣 Send")
    broadcast_id = await db.fetchval("SELECT id FROM broadcasts")
    progress_id = confirm.message_id

    def progress_shown(ms: list[ShownMessage]) -> bool:
        return any(m.message_id == progress_id and "Finished" in text(m) for m in ms)

    shown_all = await admin.wait_until(progress_shown, timeout=400)
    final = next(m for m in shown_all if m.message_id == progress_id)
    assert text(final) == (
        f"📣 Broadcast #{broadcast_id}: 900 recipients — sent 880, pending 0, failed 0, skipped 20.\n"
        "👥 never paid\n✅ Finished."
    )
    sends = await broadcast_sends(telegram, body)
    del sends[ADMIN_ID]  # the preview
    never_paid = people["all"] - people["paid"]
    assert set(sends) == never_paid - people["blocked"]
    assert set(sends.values()) == {1}  # once each
    marked = {r["id"] for r in await db.fetch("SELECT id FROM users WHERE blocked_at IS NOT NULL")}
    assert marked == people["blocked"]
    rows = await db.fetch(
        "SELECT chat_id, status, reply_markup FROM outbox WHERE broadcast_id = $1", broadcast_id
    )
    assert Counter(r["status"] for r in rows) == {"sent": 880, "skipped": 20}
    assert {r["chat_id"] for r in rows} == never_paid
    assert all(r["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "m:buy" for r in rows)
    job = await db.fetchrow("SELECT kind, state, created_by, progress FROM jobs")
    assert (job["kind"], job["state"], job["created_by"]) == ("broadcast", "done", ADMIN_ID)
    assert (job["progress"]["sent"], job["progress"]["skipped"]) == (880, 20)


@pytest.mark.timeout(600)
async def test_stop_ends_the_sending_within_a_second(
    bot: WorkerProcess,
    janitor: WorkerProcess,
    telegram: Telegram,
    make_user: MakeUser,
    db: asyncpg.Pool,
) -> None:
    await crowd(db, telegram, 1000, paid=0, blocked=0)
    admin = make_user(ADMIN_ID, first_name="Admin")
    body = "This one will be stopped"
    await start_broadcast(admin, "everyone reachable: 1,000", body, None)
    broadcast_id = await db.fetchval("SELECT id FROM broadcasts")
    # Sending at the bot's pace (OUTBOX_RATE_PER_SECOND=30: 24 a second for broadcasts).
    await eventually(lambda: _sent_at_least(telegram, body, 40), 300)
    answer = await admin.press("⏹ Stop it")
    at_stop = await delivered(telegram, body)
    assert answer.text is not None and answer.text.startswith(f"⏹ Broadcast #{broadcast_id} stopped:")
    await asyncio.sleep(3)  # what still goes out now went out after the stop
    after = await delivered(telegram, body)
    # Only sends already in flight at the stop (one per sender lane) may land after it:
    # fewer than one second of sending.
    assert after - at_stop <= 24, (at_stop, after)
    counts = dict(
        await db.fetch(
            "SELECT status, count(*) FROM outbox WHERE broadcast_id = $1 GROUP BY status", broadcast_id
        )
    )
    assert counts.get("sent", 0) == after and counts.get("pending", 0) == 0
    assert counts["cancelled"] == 1000 - after
    # The progress message says so, and offers no stop button any more.
    shown = await admin.wait_until(lambda ms: "⏹ Stopped:" in text(ms[-1]), timeout=15)
    assert all(b.text != "⏹ Stop it" for row in shown[-1].buttons for b in row)
    assert await eventually(lambda: db.fetchval("SELECT state = 'done' FROM jobs"), 15)


async def _sent_at_least(telegram: Telegram, body: str, count: int) -> bool:
    return await delivered(telegram, body) >= count


@pytest.mark.timeout(600)
async def test_a_bot_killed_mid_job_does_not_cut_the_broadcast_short(
    start_bot: Callable[..., object],
    bot_env: dict[str, str],
    log_dir: Path,
    redis: Redis,
    panels: list[Panel],
    janitor: WorkerProcess,
    telegram: Telegram,
    make_user: MakeUser,
    db: asyncpg.Pool,
) -> None:
    first = await spawn("bot", bot_env, log_dir)
    await wait_for_heartbeat(redis, "bot", pid=first.pid, timeout=120)
    people = await crowd(db, telegram, 60, paid=0, blocked=0)
    admin = make_user(ADMIN_ID, first_name="Admin")
    body = "Survives a restart"
    progress_id = await start_broadcast(admin, "everyone reachable: 60", body, "Site=https://example.org")
    first.proc.send_signal(signal.SIGKILL)  # right after the press: the job is the janitor's
    assert await first.proc.wait() == -signal.SIGKILL
    broadcast_id = await db.fetchval("SELECT id FROM broadcasts")
    # The fan-out happens with no bot running.
    await eventually(
        lambda: db.fetchval("SELECT queued_at IS NOT NULL FROM broadcasts WHERE id = $1", broadcast_id), 15
    )
    assert await db.fetchval("SELECT count(*) FROM outbox WHERE broadcast_id = $1", broadcast_id) == 60
    await start_bot()
    shown = await admin.wait_until(
        lambda ms: any(m.message_id == progress_id and "Finished" in text(m) for m in ms), timeout=300
    )
    final = next(m for m in shown if m.message_id == progress_id)
    sends = await broadcast_sends(telegram, body)
    del sends[ADMIN_ID]  # the preview
    # At most once: a row the killed bot had claimed may have gone out or not; it is
    # failed ("delivery unknown"), never sent twice (orbit/outbox/sender.py).
    failed = await db.fetchval(
        "SELECT count(*) FROM outbox WHERE broadcast_id = $1 AND status = 'failed'", broadcast_id
    )
    assert f"sent {60 - failed}, pending 0, failed {failed}" in text(final)
    assert failed <= 6  # one per sender lane at most
    assert set(sends.values()) == {1} and len(sends) >= 60 - failed and set(sends) <= people["all"]
