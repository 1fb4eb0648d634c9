"""The bot's HTTP listeners against strangers, over real sockets (issue 16, defects 3 and 6):
half-sent requests are closed after the timeouts, connections are capped, a client gone
mid-body is one log line, and /healthz and /metrics never face the network by default."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import aiohttp
import asyncpg
import msgspec
import pytest
from redis.asyncio import Redis

from orbit.bot.process import start_http
from orbit.i18n import create_translator
from orbit.metrics import Metrics
from orbit.plans import load_plans
from orbit.runtime import Context
from orbit.settings import Settings
from tests.e2e.conftest import free_port

TIMEOUT = 1.0  # header and body timeouts of these tests (10 s in production)


@pytest.fixture
async def http_session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


class Listeners:
    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics

    @property
    def webhook(self) -> str:
        return f"http://127.0.0.1:{self.settings.bot_http_port}"


@pytest.fixture
async def serve(
    settings: Settings, db: asyncpg.Pool, redis: Redis, http_session: aiohttp.ClientSession
) -> AsyncIterator[object]:
    """`await serve(**settings)`: the bot's listeners as `start_http` builds them."""
    async with AsyncExitStack() as stack:

        async def start(redis_client: Redis = redis, **changes: object) -> Listeners:
            values = {
                "bot_http_port": free_port(),
                "bot_http_header_timeout_seconds": TIMEOUT,
                "bot_http_body_timeout_seconds": TIMEOUT,
                "cryptobot_token": "1234:AAA",
                **changes,
            }
            s = msgspec.structs.replace(settings, **values)
            ctx = Context("bot", s, db, redis_client, http_session, load_plans(s))
            metrics = Metrics()
            await start_http(ctx, stack, metrics, create_translator())
            return Listeners(s, metrics)

        yield start


async def _open(port: int, payload: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    await writer.drain()
    return reader, writer


async def _closed_by_server(reader: asyncio.StreamReader, within: float) -> bool:
    """Whether the server ends the connection (EOF, after any answer) within `within` seconds."""
    try:
        async with asyncio.timeout(within):
            while await reader.read(4096):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return True


HALF_HEADERS = b"GET /healthz HTTP/1.1\r\nHost: orbit\r\nX-Slow: "
HALF_BODY = (
    b"POST /cryptobot/webhook HTTP/1.1\r\nHost: orbit\r\nContent-Type: application/json\r\n"
    b"Content-Length: 500\r\n\r\n{\"update_id\": 1, "
)


async def test_200_half_sent_requests_are_closed_after_the_timeout(
    serve: object, http_session: aiohttp.ClientSession
) -> None:
    listeners: Listeners = await serve()  # type: ignore[operator]
    port = listeners.settings.bot_http_port
    opened = [await _open(port, HALF_HEADERS if i % 2 else HALF_BODY) for i in range(200)]
    started = time.monotonic()
    # While they hang, the server still answers.
    async with http_session.get(f"{listeners.webhook}/healthz") as resp:
        assert resp.status == 200
    closed = await asyncio.gather(*(_closed_by_server(r, within=TIMEOUT + 4) for r, _ in opened))
    assert all(closed), f"{closed.count(False)} of 200 half-sent requests still open"
    assert time.monotonic() - started < TIMEOUT + 4
    for _, writer in opened:
        writer.close()
    assert listeners.metrics.value("http_refused_total", reason="body_timeout") == 100
    async with http_session.get(f"{listeners.webhook}/healthz") as resp:
        assert resp.status == 200


async def test_connections_over_the_cap_get_503_and_are_closed(
    serve: object, http_session: aiohttp.ClientSession
) -> None:
    listeners: Listeners = await serve(bot_http_max_connections=20)  # type: ignore[operator]
    port = listeners.settings.bot_http_port
    held = [await _open(port, HALF_HEADERS) for _ in range(20)]
    await asyncio.sleep(0.1)  # the server has registered them
    reader, writer = await _open(port, b"GET /healthz HTTP/1.1\r\nHost: orbit\r\n\r\n")
    async with asyncio.timeout(2):
        answer = await reader.read()
    assert answer.startswith(b"HTTP/1.1 503")
    writer.close()
    assert listeners.metrics.value("http_refused_total", reason="too_many_connections") >= 1
    for _, w in held:
        w.close()
    await asyncio.sleep(0.2)
    async with http_session.get(f"{listeners.webhook}/healthz") as resp:
        assert resp.status == 200


async def test_a_client_gone_mid_body_logs_no_traceback(
    serve: object, caplog: pytest.LogCaptureFixture
) -> None:
    listeners: Listeners = await serve(bot_http_body_timeout_seconds=10.0)  # type: ignore[operator]
    caplog.set_level(logging.INFO)
    for _ in range(3):
        _, writer = await _open(listeners.settings.bot_http_port, HALF_BODY)
        await asyncio.sleep(0.1)
        writer.transport.abort()  # a reset, as a dropped client looks
    await asyncio.sleep(0.5)
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records]
    gone = [r for r in caplog.records if "client went away mid-body" in r.getMessage()]
    assert len(gone) == 3


async def test_health_and_metrics_stay_on_loopback_by_default(
    serve: object, http_session: aiohttp.ClientSession
) -> None:
    # The default: the webhook listener is on loopback, and serves them.
    local: Listeners = await serve()  # type: ignore[operator]
    async with http_session.get(f"{local.webhook}/metrics") as resp:
        assert resp.status == 200
    # A webhook listener open to the network does not, unless they get their own port.
    public: Listeners = await serve(bot_http_host="0.0.0.0")  # type: ignore[operator]
    for path in ("/metrics", "/healthz"):
        async with http_session.get(f"{public.webhook}{path}") as resp:
            assert resp.status == 404
    metrics_port = free_port()
    apart: Listeners = await serve(bot_http_host="0.0.0.0", metrics_port=metrics_port)  # type: ignore[operator]
    async with http_session.get(f"{apart.webhook}/metrics") as resp:
        assert resp.status == 404
    async with http_session.get(f"http://127.0.0.1:{metrics_port}/metrics") as resp:
        assert resp.status == 200
    async with http_session.get(f"http://127.0.0.1:{metrics_port}/healthz") as resp:
        assert resp.status == 200 and await resp.json() == {"ok": True, "postgres": "ok", "redis": "ok"}
    async with http_session.post(f"{apart.webhook}/cryptobot/webhook", data=b"{}") as resp:
        assert resp.status in (400, 401)  # the webhook is there (and refuses an unsigned body)


async def test_healthz_says_failing_without_the_error_text(
    serve: object, http_session: aiohttp.ClientSession
) -> None:
    dead = Redis.from_url("redis://:S3cr3tRedisPw@127.0.0.1:1/0", socket_connect_timeout=1)
    try:
        listeners: Listeners = await serve(redis_client=dead)  # type: ignore[operator]
        async with http_session.get(f"{listeners.webhook}/healthz") as resp:
            assert resp.status == 503
            body = await resp.text()
    finally:
        await dead.aclose()
    assert msgspec.json.decode(body) == {"ok": False, "postgres": "ok", "redis": "failing"}
