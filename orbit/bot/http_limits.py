"""What a stranger can make the bot's HTTP listeners hold: a bounded amount, briefly.

aiohttp on its own waits for request headers and bodies indefinitely (its idle
timeout is an hour) and accepts every connection, so a few hundred half-sent
requests hold as many sockets, and enough of them exhaust the process' file
descriptors, its connections to Telegram, Postgres, Redis and the panels included.
Here:

- headers: aiohttp's keep-alive timer runs from the moment a connection opens (and
  after each response) and closes a connection still waiting for a complete request
  line and headers when it fires, so it is the header timeout;
- bodies: `read_body_in_time` reads the body before any handler, within
  `body_timeout`, else answers 408 and closes the connection (no lingering read of
  the rest); a body larger than
  `max_body_bytes` is refused by aiohttp (413) as it arrives;
- connections: `ConnectionCap` stands in front of aiohttp's protocol factory; over
  `max_connections` a new connection gets a 503 and is closed at once;
- a client that goes away mid-body is one log line, not a traceback.

Production should still put the webhook behind a buffering reverse proxy (README).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from orbit.metrics import Metrics

log = logging.getLogger(__name__)

_BUSY = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


class HttpLimits(msgspec.Struct, frozen=True, kw_only=True):
    header_timeout: float = 10.0
    body_timeout: float = 10.0
    max_connections: int = 256
    max_body_bytes: int = 65_536


def read_body_in_time(limits: HttpLimits, metrics: Metrics) -> Callable[..., Awaitable[web.StreamResponse]]:
    """A middleware: the request body read within `limits.body_timeout` (then cached
    by aiohttp for the handler), or a 408; a client gone mid-body is routine."""

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.body_exists:
            try:
                async with asyncio.timeout(limits.body_timeout):
                    await request.read()
            except TimeoutError:
                metrics.inc("http_refused_total", reason="body_timeout")
                log.info("%s %s: body not received within %.0fs, closing", request.method, request.path,
                         limits.body_timeout)  # fmt: skip
                raise web.HTTPRequestTimeout(headers={"Connection": "close"}) from None
            except ConnectionResetError:  # aiohttp's ClientConnectionResetError too
                metrics.inc("http_refused_total", reason="client_gone")
                log.info("%s %s: client went away mid-body", request.method, request.path)
                raise web.HTTPBadRequest(headers={"Connection": "close"}) from None
        return await handler(request)

    return middleware


class _Busy(asyncio.Protocol):
    """A connection over the cap: told 503 and closed, before any byte is read."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(_BUSY)
        transport.close()


class ConnectionCap:
    """aiohttp's `Server` (the protocol factory a site listens with), refusing a new
    connection while `limit` are open; everything else is the server's."""

    def __init__(self, server: web.Server, limit: int, metrics: Metrics) -> None:
        self._server = server
        self._limit = limit
        self._metrics = metrics

    def __call__(self) -> asyncio.BaseProtocol:
        if len(self._server.connections) >= self._limit:
            self._metrics.inc("http_refused_total", reason="too_many_connections")
            return _Busy()
        return self._server()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)


class BoundedAppRunner(web.AppRunner):
    """An AppRunner whose sites accept at most `limits.max_connections` at once and
    drop connections that do not send their headers within `limits.header_timeout`."""

    def __init__(self, app: web.Application, limits: HttpLimits, metrics: Metrics) -> None:
        # keepalive_timeout: see the module docstring (it times the headers too).
        # lingering_time: after a refused body aiohttp would keep reading the rest for
        # 10 s more; every body is read (or refused) before a handler, so close at once.
        super().__init__(
            app, access_log=None, keepalive_timeout=limits.header_timeout, lingering_time=0
        )
        self._limits = limits
        self._metrics = metrics

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        return ConnectionCap(server, self._limits.max_connections, self._metrics)  # type: ignore[return-value]
