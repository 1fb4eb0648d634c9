"""The sandbox's chat page: a Telegram-like web client for the emulated bot.

An aiohttp app serving `static/` (plain HTML, CSS and JavaScript) and a small JSON
API the page calls. Everything it does goes through the emulators' control APIs
(`backends.py`, `TelegramControl`); live updates reach the browser as server-sent
events relayed from the Telegram emulator's long poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import msgspec
from aiohttp import web

from orbit.sandbox.page.backends import BackendError, Backends, Endpoints
from orbit.sandbox.page.roster import NewProfile, ProfileError, Roster
from orbit.sandbox.telegram_control import ControlError, TelegramControl

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
MAX_TEXT = 4096
# A long poll on the emulator per open chat; an SSE comment keeps proxies and the
# browser from timing the stream out meanwhile.
POLL_SECONDS = 20.0
PANELS_EVERY_SECONDS = 1.0
BYTES_PER_GB = 1024**3

_T = TypeVar("_T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _Send(msgspec.Struct, forbid_unknown_fields=True):
    text: str


class _Press(msgspec.Struct, forbid_unknown_fields=True):
    message_id: int
    data: str


class _Pay(msgspec.Struct, forbid_unknown_fields=True):
    message_id: int


class _Ton(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    user_id: int
    amount: str
    comment: str | None = None


class _CryptoPay(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    link: str
    asset: str | None = None


class _Node(msgspec.Struct, forbid_unknown_fields=True):
    up: bool


class _Usage(msgspec.Struct, forbid_unknown_fields=True):
    gb: float


class _Clock(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    hours: float = 0.0
    days: float = 0.0


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(body), status=status, content_type="application/json")


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Local only, and no cross-site writes: another site's page cannot drive the bot
    from a visitor's browser (DNS rebinding changes Host; a cross-origin JSON POST
    needs a preflight this server never grants)."""
    if request.url.host not in LOCAL_HOSTS:
        return _json({"error": "the sandbox page answers on 127.0.0.1 only"}, 403)
    if request.method == "POST" and request.content_type != "application/json":
        return _json({"error": "send JSON"}, 415)
    try:
        return await handler(request)
    except _BadRequest as exc:
        return _json({"error": exc.message}, exc.status)
    except (BackendError, ControlError) as exc:
        status = exc.status if 400 <= exc.status < 500 else 502
        return _json({"error": exc.message}, status)
    except ProfileError as exc:
        return _json({"error": str(exc)}, 400)
    except aiohttp.ClientError as exc:
        return _json({"error": f"an emulator did not answer: {exc}"}, 502)


async def _body(request: web.Request, shape: type[_T]) -> _T:
    try:
        return msgspec.json.decode(await request.read(), type=shape)
    except msgspec.DecodeError as exc:
        raise _BadRequest(400, f"bad request: {exc}") from None


def _int(request: web.Request, name: str) -> int:
    try:
        return int(request.match_info[name])
    except ValueError:
        raise _BadRequest(400, f"{name} must be an integer") from None


class PageServer:
    """`await PageServer(endpoints, admin_id).start(host, port)` → the page's URL."""

    def __init__(self, endpoints: Endpoints, admin_id: int, *, bot_name: str = "Orbit Sandbox") -> None:
        self.endpoints = endpoints
        self.admin_id = admin_id
        self.bot_name = bot_name
        self.roster = Roster(admin_id)
        self.base_url: str | None = None
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self._stopping = asyncio.Event()
        self._tokens: dict[str, Any] = {}  # panel tokens, kept across requests

    @property
    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            raise RuntimeError("PageServer is not started")
        return self._http

    @property
    def _telegram(self) -> TelegramControl:
        return TelegramControl(self.endpoints.telegram_url, self._session)

    @property
    def _backends(self) -> Backends:
        return Backends(self.endpoints, self._session, self._tokens)

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[_guard])
        r = app.router
        r.add_get("/", self._index)
        r.add_static("/static/", STATIC)
        r.add_get("/api/config", self._config)
        r.add_get("/api/users", self._users)
        r.add_post("/api/users", self._create_user)
        r.add_get("/api/chats/{user_id}/messages", self._messages)
        r.add_get("/api/chats/{user_id}/events", self._chat_events)
        r.add_post("/api/chats/{user_id}/send", self._send)
        r.add_post("/api/chats/{user_id}/press", self._press)
        r.add_post("/api/chats/{user_id}/pay", self._pay)
        r.add_get("/api/files/{file_id}", self._file)
        r.add_post("/api/wallet/ton", self._send_ton)
        r.add_post("/api/wallet/cryptopay", self._pay_cryptopay)
        r.add_get("/api/panels", self._panels)
        r.add_get("/api/panels/events", self._panel_events)
        r.add_post("/api/panels/{panel_id}/nodes/{node_id}", self._set_node)
        r.add_post("/api/panels/{panel_id}/users/{username}/usage", self._add_usage)
        r.add_get("/api/clock", self._clock)
        r.add_post("/api/clock", self._advance_clock)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._stopping.clear()
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=POLL_SECONDS + 15))
        self._runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        bound_host, bound_port = self._runner.addresses[0][:2]
        self.base_url = f"http://{bound_host}:{bound_port}"
        log.info("sandbox page on %s", self.base_url)
        return self.base_url

    async def stop(self) -> None:
        self._stopping.set()  # ends every open event stream
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._http is not None:
            await self._http.close()
            self._http = None

    # --- page and users ------------------------------------------------------------------

    async def _index(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def _config(self, request: web.Request) -> web.Response:
        return _json(
            {
                "bot_name": self.bot_name,
                "admin_id": self.admin_id,
                "ton_address": self.endpoints.ton_address,
                "clock": self.endpoints.clock_url is not None,
            }
        )

    async def _users(self, request: web.Request) -> web.Response:
        # Users the bot met some other way (curl, a test, a page before a restart) are listed too.
        for user in await self._telegram.users():
            self.roster.adopt(user.id, user.first_name, user.username, user.language_code)
        return _json(self.roster.all())

    async def _create_user(self, request: web.Request) -> web.Response:
        profile = self.roster.create(await _body(request, NewProfile))
        return _json(profile, 201)

    def _profile(self, request: web.Request) -> Any:
        profile = self.roster.get(_int(request, "user_id"))
        if profile is None:
            raise _BadRequest(404, "no such test user; create one first")
        return profile

    # --- the chat ----------------------------------------------------------------------------

    async def _messages(self, request: web.Request) -> web.Response:
        profile = self._profile(request)
        shown = await self._telegram.messages(profile.id, include_user=True)
        seq = await self._telegram.last_seq(profile.id)
        return _json({"messages": shown, "last_seq": seq})

    async def _chat_events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: every message sent, edited, deleted or received in the chat."""
        profile = self._profile(request)
        after = int(request.headers.get("Last-Event-ID") or request.query.get("after") or 0)
        response = await _open_stream(request)

        async def relay() -> None:
            nonlocal after
            while True:
                events = await self._poll_chat(profile.id, after)
                if not events:
                    await response.write(b": idle\n\n")
                for event in events:
                    after = max(after, event.seq)
                    payload = msgspec.json.encode(event)
                    await response.write(b"id: %d\nevent: chat\ndata: %s\n\n" % (event.seq, payload))

        await self._until_closed(relay())
        return response

    async def _poll_chat(self, user_id: int, after: int) -> list[Any]:
        try:
            return await self._telegram.wait_for(user_id, after, POLL_SECONDS, include_user=True)
        except TimeoutError:
            return []

    async def _until_closed(self, work: Awaitable[None]) -> None:
        """Run a stream's loop until the browser goes away or the server stops."""
        task = asyncio.ensure_future(work)
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pending in (task, stop):
                pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, aiohttp.ClientError):
                await task
            with contextlib.suppress(asyncio.CancelledError):
                await stop

    async def _send(self, request: web.Request) -> web.Response:
        profile = self._profile(request)
        body = await _body(request, _Send)
        text = body.text.strip()
        if not text or len(text) > MAX_TEXT:
            raise _BadRequest(400, f"a message is 1 to {MAX_TEXT} characters")
        sent = await self._telegram.send_text(
            profile.id,
            text,
            first_name=profile.first_name,
            username=profile.username,
            language_code=profile.language,
        )
        return _json(sent)

    async def _press(self, request: web.Request) -> web.Response:
        """Press an inline button; answer with the bot's callback answer (toast or alert)."""
        profile = self._profile(request)
        body = await _body(request, _Press)
        pressed = await self._telegram.press(profile.id, message_id=body.message_id, data=body.data)
        answer = await self._telegram.callback_answer(pressed.callback_query_id, timeout=15.0)
        return _json(answer)

    async def _pay(self, request: web.Request) -> web.Response:
        """Pay a Stars invoice: pre-checkout, the bot's answer, then the payment."""
        profile = self._profile(request)
        body = await _body(request, _Pay)
        return _json(await self._telegram.pay(profile.id, body.message_id))

    async def _file(self, request: web.Request) -> web.Response:
        data = await self._telegram.file(request.match_info["file_id"])
        return web.Response(body=data, content_type=_sniff(data), headers={"Cache-Control": "max-age=3600"})

    # --- wallet ------------------------------------------------------------------------------

    async def _send_ton(self, request: web.Request) -> web.Response:
        body = await _body(request, _Ton)
        return _json(await self._backends.send_ton(body.user_id, body.amount, body.comment))

    async def _pay_cryptopay(self, request: web.Request) -> web.Response:
        body = await _body(request, _CryptoPay)
        return _json(await self._backends.pay_cryptopay(body.link, body.asset))

    # --- panels and clock ------------------------------------------------------------------

    async def _panels(self, request: web.Request) -> web.Response:
        return _json(await self._backends.panels())

    async def _panel_events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: the panels' state whenever it changed (checked every second)."""
        response = await _open_stream(request)

        async def relay() -> None:
            last = b""
            async for snapshot in self._panel_snapshots():
                if snapshot != last:
                    await response.write(b"event: panels\ndata: %s\n\n" % snapshot)
                    last = snapshot
                else:
                    await response.write(b": same\n\n")

        await self._until_closed(relay())
        return response

    async def _panel_snapshots(self) -> AsyncIterator[bytes]:
        while True:
            yield msgspec.json.encode(await self._backends.panels())
            await asyncio.sleep(PANELS_EVERY_SECONDS)

    async def _set_node(self, request: web.Request) -> web.Response:
        body = await _body(request, _Node)
        node = await self._backends.set_node_up(
            request.match_info["panel_id"], _int(request, "node_id"), body.up
        )
        return _json(node)

    async def _add_usage(self, request: web.Request) -> web.Response:
        body = await _body(request, _Usage)
        if not 0 < body.gb <= 10_000:
            raise _BadRequest(400, "add between 0 and 10000 GB")
        user = await self._backends.add_usage(
            request.match_info["panel_id"], request.match_info["username"], int(body.gb * BYTES_PER_GB)
        )
        return _json(user)

    async def _clock(self, request: web.Request) -> web.Response:
        return _json(await self._backends.clock())

    async def _advance_clock(self, request: web.Request) -> web.Response:
        body = await _body(request, _Clock)
        return _json(await self._backends.advance_clock(body.hours * 3600 + body.days * 86400))


async def _open_stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    await response.write(b"retry: 1000\n\n")
    return response


def _sniff(data: bytes) -> str:
    """The content type of a file the bot sent (photos are what the page shows inline)."""
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if data[:4] == b"GIF8":
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"
