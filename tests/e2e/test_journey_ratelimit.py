"""Rate limits at their real values, and a bot that keeps serving when Redis is gone."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import pytest

from tests.e2e.conftest import Panel, Telegram, free_port
from tests.support.journey import eventually, fund
from tests.support.telegram_user import TelegramUser

MakeUser = Callable[..., TelegramUser]


async def test_rate_limits_refuse_presses_and_quiet_message_floods(
    start_bot: Callable[..., object],
    panels: list[Panel],
    make_user: MakeUser,
    db: asyncpg.Pool,
    telegram: Telegram,
) -> None:
    await start_bot(RATE_LIMIT_SCALE="1")  # type: ignore[misc]
    ann = make_user(6001, first_name="Ann")
    menu = await ann.send("/start")
    # /start: 1 per 3 s. A second one at once gets one notice.
    notice = await ann.send("/start")
    assert notice.text == "Too fast. Try again in 3 s."
    assert await db.fetchval("SELECT count(*) FROM users") == 1

    # Navigation: bursts of 3, then 1 per 0.8 s; a refused press is an alert and changes nothing.
    # Pressed 0.15 s apart without waiting for the screens: under Telegram's one message a
    # second per chat a screen waits its second, so waiting for each would be too slow to refuse.
    pressed = []
    for data in ("m:help", "m:main", "m:help", "m:main"):
        pressed.append(
            await telegram.control.press(ann.id, message_id=menu.message_id, data=data, forge=True)
        )
        await asyncio.sleep(0.15)
    answers = [await telegram.control.callback_answer(p.callback_query_id, timeout=10) for p in pressed]
    assert [a.show_alert for a in answers] == [False, False, False, True]
    assert answers[-1].text == "Too fast. Try again in 1 s."
    shown = await ann.wait_until(lambda ms: (ms[0].text or "").startswith("How to connect"))
    # The 4th press did not go back; edits of the message waiting together went out as one.
    assert shown[0].message_id == menu.message_id and 1 <= len(shown[0].edits) <= 3

    # A purchase: 1 per 2.5 s; the second press of a double press is refused before it is handled.
    bob = make_user(6002, first_name="Bob")
    await bob.send("/start")
    await fund(db, 6002, 30_000)
    await bob.press("🛒 Buy a plan")
    await bob.press("1 month — 150 ₽")
    confirm = await bob.last()
    data = confirm.button("✅ Pay 150 ₽").callback_data
    # A double press: the second comes before the first's screen (which waits for the chat's second).
    presses = [
        await telegram.control.press(bob.id, message_id=confirm.message_id, data=data, forge=True)
        for _ in range(2)
    ]
    first, second = [await telegram.control.callback_answer(p.callback_query_id, timeout=10) for p in presses]
    assert first.text is None and second.text == "Too fast. Try again in 3 s." and second.show_alert
    assert await db.fetchval("SELECT count(*) FROM purchases") == 1
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 6002") == 15_000

    # A message flood: up to the burst handled, one notice, the rest dropped silently.
    cat = make_user(6003, first_name="Cat")
    await cat.send("/start")
    for _ in range(8):
        await cat.send_silently("/help")
    await cat.wait_until(lambda ms: any(m.text == "Too fast. Try again in 1 s." for m in ms))
    await asyncio.sleep(1.0)  # a token comes back (1 per 0.8 s): a later /help is served again
    await cat.send("/help")
    # The replies go one a second (Telegram's per-chat limit): wait for all of them.
    shown = await cat.wait_until(
        lambda ms: sum((m.text or "").startswith("How to connect") for m in ms) >= 4, timeout=20
    )
    texts = [m.text or "" for m in shown]
    assert sum(t.startswith("How to connect") for t in texts) == 4  # 3 of the flood + the last
    assert sum(t.startswith("Too fast") for t in texts) == 1


class RedisProxy:
    """A TCP proxy in front of Redis that a test can cut and restore."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


@pytest.fixture
async def redis_proxy(redis_url: str) -> AsyncIterator[RedisProxy]:
    parts = urlsplit(redis_url)
    proxy = RedisProxy(parts.hostname or "127.0.0.1", parts.port or 6379)
    await proxy.start()
    yield proxy
    if proxy._server is not None and proxy._server.is_serving():
        await proxy.cut()


async def test_the_bot_keeps_serving_when_redis_is_unreachable(
    start_bot: Callable[..., object],
    panels: list[Panel],
    make_user: MakeUser,
    db: asyncpg.Pool,
    redis_url: str,
    redis_proxy: RedisProxy,
    bot_env: dict[str, str],
    http_session: aiohttp.ClientSession,
) -> None:
    db_number = urlsplit(redis_url).path
    await start_bot(REDIS_URL=f"redis://127.0.0.1:{redis_proxy.port}{db_number}")  # type: ignore[misc]
    ann = make_user(6004, first_name="Ann")
    await ann.send("/start")
    await redis_proxy.cut()
    # No rate limit, no FSM state: menu presses are still answered from Postgres.
    answer = await ann.press("📅 Subscription", timeout=30)
    assert not answer.show_alert
    assert (await ann.last()).text.startswith("Subscription")  # type: ignore[union-attr]
    shown = await ann.send("/help", timeout=30)
    assert (shown.text or "").startswith("How to connect")
    metrics_url = f"http://127.0.0.1:{bot_env['BOT_HTTP_PORT']}/metrics"

    async def errors_counted() -> bool:
        async with http_session.get(metrics_url) as resp:
            return "orbit_ratelimit_redis_errors_total 2.0" in await resp.text()

    await eventually(errors_counted)
    await redis_proxy.start()  # back before the bot stops, so it exits cleanly
