"""The emulator: one object serving the Bot API and the control API, assembled from the mixins beside it."""

from __future__ import annotations

import asyncio
import time

import aiohttp
from aiohttp import web

from orbit.sandbox import telegram_control as ctl
from orbit.sandbox.telegram.api_bot import _BotMethods
from orbit.sandbox.telegram.api_messages import _MessageMethods
from orbit.sandbox.telegram.api_payments import _PaymentMethods
from orbit.sandbox.telegram.api_updates import _UpdateMethods
from orbit.sandbox.telegram.constants import CALLBACK_DEADLINE, MAX_UPLOAD
from orbit.sandbox.telegram.control_knobs import _Knobs
from orbit.sandbox.telegram.control_users import _UserControls
from orbit.sandbox.telegram.errors import _ControlError
from orbit.sandbox.telegram.messages import _Messages
from orbit.sandbox.telegram.params import _Method
from orbit.sandbox.telegram.persistence import _Persistence
from orbit.sandbox.telegram.state import _Changes, _World
from orbit.sandbox.telegram.transport import _Transport


class TelegramEmulator(
    _Knobs,
    _UserControls,
    _PaymentMethods,
    _MessageMethods,
    _UpdateMethods,
    _BotMethods,
    _Messages,
    _Transport,
    _Persistence,
):
    """A fake api.telegram.org for one or more bots, with a control API for the users' side."""

    def __init__(
        self,
        *,
        callback_deadline: float = CALLBACK_DEADLINE,
        rate_limits: ctl.RateLimits | None = None,
    ) -> None:
        self.base_url: str | None = None
        self.rate_limits = rate_limits or ctl.RateLimits()
        self._callback_deadline = callback_deadline
        self._worlds: dict[int, _World] = {}
        self._unclaimed: _World | None = None
        self._memberships: dict[tuple[int | str, int], str] = {}
        self._invalid_tokens: set[str] = set()
        self._bad_gateway: set[str] = set()  # lower-cased methods answered with BAD_GATEWAY_HTML
        self._clock_offset = 0.0
        self._hold: ctl.HoldIn | None = None
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self._methods: dict[str, tuple[str, _Method]] = {
            name.lower(): (name, handler)
            for name, handler in (
                ("getMe", self._get_me),
                ("logOut", self._accept),
                ("close", self._accept),
                ("getUpdates", self._get_updates),
                ("setWebhook", self._set_webhook),
                ("deleteWebhook", self._delete_webhook),
                ("getWebhookInfo", self._get_webhook_info),
                ("sendMessage", self._send_message),
                ("sendPhoto", self._send_photo),
                ("sendDocument", self._send_document),
                ("sendChatAction", self._send_chat_action),
                ("editMessageText", self._edit_message_text),
                ("editMessageCaption", self._edit_message_caption),
                ("editMessageReplyMarkup", self._edit_message_reply_markup),
                ("deleteMessage", self._delete_message),
                ("deleteMessages", self._delete_messages),
                ("answerCallbackQuery", self._answer_callback_query),
                ("getFile", self._get_file),
                ("sendInvoice", self._send_invoice),
                ("createInvoiceLink", self._create_invoice_link),
                ("answerPreCheckoutQuery", self._answer_pre_checkout_query),
                ("refundStarPayment", self._refund_star_payment),
                ("getStarTransactions", self._get_star_transactions),
                ("getChatMember", self._get_chat_member),
                ("setMyCommands", self._set_my_commands),
                ("getMyCommands", self._get_my_commands),
                ("deleteMyCommands", self._delete_my_commands),
                ("setMyName", self._setting("setMyName")),
                ("setMyDescription", self._setting("setMyDescription")),
                ("setMyShortDescription", self._setting("setMyShortDescription")),
                ("setChatMenuButton", self._setting("setChatMenuButton")),
            )
        }

    # --- lifecycle -----------------------------------------------------------------------

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_UPLOAD, middlewares=[self._control_errors])
        app.on_startup.append(self._on_startup)
        app.on_shutdown.append(self._on_shutdown)
        app.on_cleanup.append(self._on_cleanup)
        r = app.router
        r.add_route("*", "/bot{token}/{method}", self._handle_api)
        r.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        r.add_post("/control/reset", self._c_reset)
        r.add_post("/control/messages", self._c_send_text)
        r.add_post("/control/groups", self._c_groups)
        r.add_post("/control/press", self._c_press)
        r.add_post("/control/pay", self._c_pay)
        r.add_post("/control/block", self._c_block)
        r.add_post("/control/unblock", self._c_unblock)
        r.add_post("/control/members", self._c_members)
        r.add_get("/control/users", self._c_users)
        r.add_get("/control/chats/{chat_id}/messages", self._c_messages)
        r.add_get("/control/chats/{chat_id}/events", self._c_events)
        r.add_get("/control/callbacks/{callback_id}", self._c_callback)
        r.add_get("/control/calls", self._c_calls)
        r.add_get("/control/rate", self._c_rate_stats)
        r.add_post("/control/rate", self._c_set_rate)
        r.add_post("/control/flood", self._c_flood)
        r.add_post("/control/updates", self._c_inject)
        r.add_get("/control/charges", self._c_charges)
        r.add_post("/control/charges", self._c_charge)
        r.add_post("/control/charges/{charge_id}/refund", self._c_refund_charge)
        r.add_post("/control/tokens", self._c_tokens)
        r.add_post("/control/bad_gateway", self._c_bad_gateway)
        r.add_post("/control/clock", self._c_clock)
        r.add_post("/control/hold", self._c_hold)
        r.add_get("/control/files/{file_id}", self._c_file)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on host:port (0 = any free port); returns the base URL."""
        if self._runner is not None:
            raise RuntimeError("emulator already started")
        runner = web.AppRunner(
            self.make_app(), shutdown_timeout=1.0, handler_cancellation=True, access_log=None
        )
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        self._runner = runner
        bound = runner.addresses[0][1]
        self.base_url = f"http://[{host}]:{bound}" if ":" in host else f"http://{host}:{bound}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def reset(self) -> None:
        """Forget every bot, user, message, payment and setting."""
        worlds = self._all_worlds()
        tasks = [task for world in worlds if (task := self._drop_webhook(world))]
        for world in worlds:
            world.changes.close()
        self._worlds.clear()
        self._unclaimed = None
        self._memberships.clear()
        self._invalid_tokens.clear()
        self._bad_gateway.clear()
        self.rate_limits = ctl.RateLimits()
        self._clock_offset = 0.0
        self._hold = None
        if tasks:
            await asyncio.wait(tasks)

    async def _on_startup(self, app: web.Application) -> None:
        self._closing = False
        for world in self._all_worlds():
            world.changes = _Changes()

    async def _on_shutdown(self, app: web.Application) -> None:
        # Before the server waits for its handlers: long polls must end now.
        self._closing = True
        for world in self._all_worlds():
            world.changes.close()

    async def _on_cleanup(self, app: web.Application) -> None:
        tasks = [task for world in self._all_worlds() if (task := self._drop_webhook(world))]
        if tasks:
            await asyncio.wait(tasks)
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _all_worlds(self) -> list[_World]:
        worlds = list(self._worlds.values())
        if self._unclaimed is not None:
            worlds.append(self._unclaimed)
        return worlds

    def _world_for_bot(self, bot_id: int) -> _World:
        world = self._worlds.get(bot_id)
        if world is None:
            # Users may write before the bot first calls: the first bot adopts that world.
            world, self._unclaimed = self._unclaimed or _World(bot_id), None
            world.bot_id = bot_id
            self._worlds[bot_id] = world
        return world

    def _control_world(self, request: web.Request) -> _World:
        raw = request.query.get("bot_id")
        if raw:
            try:
                return self._world_for_bot(int(raw))
            except ValueError:
                raise _ControlError(400, "bot_id must be an integer") from None
        if len(self._worlds) == 1:
            return next(iter(self._worlds.values()))
        if self._worlds:
            raise _ControlError(400, "several bots use this emulator: pass ?bot_id=")
        if self._unclaimed is None:
            self._unclaimed = _World(None)
        return self._unclaimed

    def _now(self) -> int:
        return int(time.time() + self._clock_offset)

    def _mono(self) -> float:
        return time.monotonic() + self._clock_offset

    def _client(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession()
        return self._http
