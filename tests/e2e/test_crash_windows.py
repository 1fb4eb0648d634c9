"""Crash windows: the real bot killed with SIGKILL right after an outside side effect
happened and before Orbit recorded it, then restarted and repaired.

The emulators make the window as wide as a test needs: the panel (or Telegram)
performs the request, then keeps its answer back (`hold_after`, `/control/hold`);
the bot is killed while it waits. Then the process that repairs such gaps runs
(the janitor's drift repair, the balancer's removals, the outbox's stale sweep)
and the outside world must hold exactly what the database says: nothing lost,
nothing duplicated, `orbit audit` clean.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from redis.asyncio import Redis

from orbit import keys
from orbit.configs.service import create_config
from orbit.marzban.provisioning import PanelDeps, expire_timestamp
from orbit.plans import load_plans
from orbit.settings import Settings
from tests.e2e.conftest import Panel, Telegram
from tests.support.cli import orbit
from tests.support.journey import fund
from tests.support.processes import WorkerProcess, spawn, wait_for_heartbeat
from tests.support.telegram_user import TelegramUser

MakeUser = Callable[..., TelegramUser]
HOLD = 60.0  # the answer is kept back far longer than the test takes to kill the bot


async def _eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def _spawn(name: str, env: dict[str, str], log_dir: Path, redis: Redis) -> WorkerProcess:
    worker = await spawn(name, env, log_dir)
    try:
        await wait_for_heartbeat(redis, name, pid=worker.pid, timeout=90)
    except TimeoutError:
        await worker.stop(signal.SIGKILL)
        raise AssertionError(f"{name} did not start:\n{worker.output()}") from None
    return worker


async def _kill(worker: WorkerProcess) -> None:
    worker.proc.send_signal(signal.SIGKILL)
    assert await worker.proc.wait() == -signal.SIGKILL


async def _stop(worker: WorkerProcess) -> None:
    code = await worker.stop()
    assert code == 0, f"{worker.name} exited {code}:\n{worker.output()[-3000:]}"


async def _audit_clean(env: dict[str, str]) -> None:
    code, out, err = await orbit(env, "audit")
    assert code == 0, out + err


async def _settled(db: asyncpg.Pool) -> None:
    """Time passes: the janitor leaves configs touched within 30 s to their request."""
    await db.execute("UPDATE configs SET updated_at = updated_at - interval '5 minutes'")


async def _panel_users(panels: list[Panel]) -> dict[str, list[str]]:
    return {p.id: sorted(p.emulator.usernames) for p in panels}


@pytest.fixture
def deps(
    db: asyncpg.Pool, redis: Redis, http_session: aiohttp.ClientSession, settings: Settings
) -> PanelDeps:
    return PanelDeps(pool=db, redis=redis, http=http_session, settings=settings)


async def _subscriber(db: asyncpg.Pool, user: TelegramUser, days: int = 30) -> None:
    await user.send("/start")
    await db.execute(
        "UPDATE users SET subscription_until = date_trunc('second', now()) + make_interval(days => $2)"
        " WHERE id = $1",
        user.id, days,
    )  # fmt: skip


async def test_killed_after_the_panel_created_the_user_the_janitor_adopts_it(
    bot_env: dict[str, str],
    base_env: dict[str, str],
    log_dir: Path,
    db: asyncpg.Pool,
    redis: Redis,
    panels: list[Panel],
    make_user: MakeUser,
    start_bot: Callable[..., Awaitable[WorkerProcess]],
) -> None:
    ann = make_user(8101, first_name="Ann")
    bot = await _spawn("bot", bot_env, log_dir, redis)
    await _subscriber(db, ann)
    await ann.send("/menu")
    await ann.press("🔑 My configs")
    p1 = panels[0].emulator
    p1.hold_after(HOLD, method="POST", path="/api/user")
    await ann.press("➕ New config")  # answered at once; the config is made after
    await _eventually(lambda: _has_users(p1), "the panel user to be created")
    await _kill(bot)

    [row] = await db.fetch("SELECT id, status, needs_sync, panel_username FROM configs")
    assert (row["status"], row["needs_sync"]) == ("pending", True)  # the crash window
    assert p1.usernames == [row["panel_username"]]
    p1.hold_after(0)

    await _settled(db)
    janitor = await _spawn("janitor", base_env, log_dir, redis)
    await _eventually(lambda: _is_active(db, row["id"]), "the janitor to finish the config")
    await _stop(janitor)

    config = await db.fetchrow("SELECT * FROM configs WHERE id = $1", row["id"])
    assert not config["needs_sync"] and config["instance_id"] == "p1"
    assert config["subscription_url"]
    assert await _panel_users(panels) == {"p1": [row["panel_username"]], "p2": [], "p3": []}
    until = await db.fetchval("SELECT subscription_until FROM users WHERE id = $1", ann.id)
    assert p1.user(row["panel_username"])["expire"] == expire_timestamp(until)  # type: ignore[index]
    assert await db.fetchval("SELECT count(*) FROM panel_removals") == 0
    # The user finds it in the list of the restarted bot.
    await start_bot()
    await ann.send("/menu")
    await ann.press("🔑 My configs")
    assert "1. Config 1 — ✅ active" in ((await ann.last()).text or "")
    await _audit_clean(base_env)


async def _has_users(emulator: object) -> bool:
    return bool(emulator.usernames)  # type: ignore[attr-defined]


async def _is_active(db: asyncpg.Pool, config_id: int) -> bool:
    return await db.fetchval("SELECT status FROM configs WHERE id = $1", config_id) == "active"


async def test_killed_after_the_panel_extended_the_user_the_purchase_stands_once(
    bot_env: dict[str, str],
    base_env: dict[str, str],
    log_dir: Path,
    db: asyncpg.Pool,
    redis: Redis,
    panels: list[Panel],
    make_user: MakeUser,
    deps: PanelDeps,
    settings: Settings,
    telegram: Telegram,
) -> None:
    ann = make_user(8102, first_name="Ann")
    bot = await _spawn("bot", bot_env, log_dir, redis)
    await _subscriber(db, ann, days=3)
    view = await create_config(deps, load_plans(settings), ann.id)
    username = view.config.panel_username
    panel = next(p for p in panels if p.id == view.config.instance_id).emulator
    await fund(db, ann.id, 15_000)
    await ann.send("/menu")
    await ann.press("🛒 Buy a plan")
    await ann.press("1 month — 150 ₽")
    panel.hold_after(HOLD, method="PUT", path=f"/api/user/{username}")
    expire_before = panel.user(username)["expire"]  # type: ignore[index]
    confirm = await ann.last_with_button("✅ Pay 150 ₽")
    await telegram.control.press(ann.id, message_id=confirm.message_id, button_text="✅ Pay 150 ₽")

    async def extended() -> bool:
        return panel.user(username)["expire"] != expire_before  # type: ignore[index]

    await _eventually(extended, "the panel to take the new expiry")
    await _kill(bot)

    until = await db.fetchval("SELECT subscription_until FROM users WHERE id = $1", ann.id)
    assert panel.user(username)["expire"] == expire_timestamp(until)  # type: ignore[index]
    assert await db.fetchval("SELECT needs_sync FROM configs WHERE id = $1", view.config.id)
    panel.hold_after(0)

    await _settled(db)
    janitor = await _spawn("janitor", base_env, log_dir, redis)

    async def synced() -> bool:
        return not await db.fetchval("SELECT needs_sync FROM configs WHERE id = $1", view.config.id)

    await _eventually(synced, "the janitor to confirm the config")
    await _stop(janitor)
    # Bought once, debited once, the panel at exactly the new end.
    assert await db.fetchval("SELECT count(*) FROM purchases WHERE user_id = $1", ann.id) == 1
    assert (
        await db.fetchval("SELECT count(*) FROM ledger WHERE user_id = $1 AND kind = 'purchase'", ann.id) == 1
    )
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = $1", ann.id) == 0
    assert await db.fetchval("SELECT subscription_until FROM users WHERE id = $1", ann.id) == until
    assert panel.user(username)["expire"] == expire_timestamp(until)  # type: ignore[index]
    assert await _panel_users(panels) == {p.id: ([username] if p.emulator is panel else []) for p in panels}
    await _audit_clean(base_env)


async def test_killed_after_the_panel_deleted_the_user_the_removal_completes(
    bot_env: dict[str, str],
    base_env: dict[str, str],
    log_dir: Path,
    db: asyncpg.Pool,
    redis: Redis,
    panels: list[Panel],
    make_user: MakeUser,
    deps: PanelDeps,
    settings: Settings,
    telegram: Telegram,
) -> None:
    ann = make_user(8103, first_name="Ann")
    bot = await _spawn("bot", bot_env, log_dir, redis)
    await _subscriber(db, ann)
    view = await create_config(deps, load_plans(settings), ann.id)
    keep = await create_config(deps, load_plans(settings), ann.id)  # the other one stays
    username = view.config.panel_username
    panel = next(p for p in panels if p.id == view.config.instance_id).emulator
    await ann.send("/menu")
    await ann.press("🔑 My configs")
    await ann.press(f"1. {view.config.name}")
    await ann.press("🗑 Delete")
    panel.hold_after(HOLD, method="DELETE", path=f"/api/user/{username}")
    confirm = await ann.last_with_button("🗑 Yes, delete it")
    await telegram.control.press(ann.id, message_id=confirm.message_id, button_text="🗑 Yes, delete it")

    async def gone() -> bool:
        return panel.user(username) is None

    await _eventually(gone, "the panel to delete the user")
    await _kill(bot)

    row = await db.fetchrow("SELECT status, deleted_at FROM configs WHERE id = $1", view.config.id)
    assert row["status"] == "deleted" and row["deleted_at"] is not None
    assert await db.fetchval("SELECT count(*) FROM panel_removals") == 1  # not recorded as done
    panel.hold_after(0)

    balancer = await _spawn("balancer", base_env, log_dir, redis)

    async def removed() -> bool:
        return not await db.fetchval("SELECT count(*) FROM panel_removals")

    await _eventually(removed, "the balancer to finish the removal")
    await _stop(balancer)
    assert panel.user(username) is None
    live = await db.fetch("SELECT instance_id, panel_username FROM configs WHERE deleted_at IS NULL")
    assert [(r["instance_id"], r["panel_username"]) for r in live] == [
        (keep.config.instance_id, keep.config.panel_username)
    ]
    expected = {p.id: [] for p in panels} | {keep.config.instance_id: [keep.config.panel_username]}
    assert await _panel_users(panels) == expected
    await _audit_clean(base_env)


async def test_killed_after_telegram_took_a_notification_it_is_not_sent_again(
    bot_env: dict[str, str],
    base_env: dict[str, str],
    log_dir: Path,
    db: asyncpg.Pool,
    redis: Redis,
    make_user: MakeUser,
    telegram: Telegram,
    start_bot: Callable[..., Awaitable[WorkerProcess]],
) -> None:
    """docs/outbox.md promises at most once: a process killed between sendMessage and
    marking the row leaves it failed, never resent."""
    ann = make_user(8104, first_name="Ann")
    bot = await _spawn("bot", bot_env, log_dir, redis)
    await ann.send("/start")
    await telegram.control.hold("sendMessage", HOLD)
    row_id = await db.fetchval(
        "INSERT INTO outbox (chat_id, kind, text) VALUES ($1, 'test', 'your payment arrived') RETURNING id",
        ann.id,
    )
    await redis.publish(keys.channel(redis, keys.OUTBOX_CHANNEL), "1")
    await ann.wait_until(lambda ms: any(m.text == "your payment arrived" for m in ms))
    await _kill(bot)
    assert await db.fetchval("SELECT status FROM outbox WHERE id = $1", row_id) == "sending"
    await telegram.control.hold("sendMessage", 0)

    await start_bot()
    # Time passes: the row has been `sending` longer than STALE_AFTER (2 minutes).
    await db.execute(
        "UPDATE outbox SET next_attempt_at = next_attempt_at - interval '3 minutes' WHERE id = $1", row_id
    )
    await db.execute("INSERT INTO outbox (chat_id, kind, text) VALUES ($1, 'test', 'and another')", ann.id)
    await redis.publish(keys.channel(redis, keys.OUTBOX_CHANNEL), "1")
    # The dead sender's send still counts as in flight for the chat (30 s, the limiter's
    # crash allowance), so the chat's next message waits that long.
    await ann.wait_until(lambda ms: any(m.text == "and another" for m in ms), timeout=45)

    async def failed() -> bool:
        return await db.fetchval("SELECT status FROM outbox WHERE id = $1", row_id) == "failed"

    await _eventually(failed, "the stale row to be failed")
    assert "delivery unknown, not resent" in await db.fetchval(
        "SELECT last_error FROM outbox WHERE id = $1", row_id
    )
    texts = [m.text for m in await ann.messages()]
    assert texts.count("your payment arrived") == 1 and texts.count("and another") == 1
    await asyncio.sleep(1.0)  # another tick or two: still not resent
    texts = [m.text for m in await ann.messages()]
    assert texts.count("your payment arrived") == 1
    await _audit_clean(base_env)
