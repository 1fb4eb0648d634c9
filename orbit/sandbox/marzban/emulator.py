"""The emulator: one Marzban panel on its own port, assembled from the mixins beside it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta, timezone
from typing import Any

import msgspec
from aiohttp import web

from orbit.sandbox.marzban.api_nodes import _NodeApi
from orbit.sandbox.marzban.api_subscription import _SubscriptionApi
from orbit.sandbox.marzban.api_system import _SystemApi
from orbit.sandbox.marzban.api_users import _UserApi
from orbit.sandbox.marzban.constants import CONTROL_PREFIX, DEFAULT_HOST_REMARK
from orbit.sandbox.marzban.control_api import _ControlApi
from orbit.sandbox.marzban.controls import _Controls
from orbit.sandbox.marzban.models import (
    DEFAULT_INBOUNDS,
    Inbound,
    NodeSpec,
    RequestRecord,
    _Delay,
    _Failure,
    _Hang,
    _Hold,
    _Node,
    _User,
)
from orbit.sandbox.marzban.panel import _PanelState
from orbit.sandbox.marzban.persistence import _Persistence
from orbit.sandbox.marzban.plumbing import _Plumbing

logger = logging.getLogger(__name__)


class MarzbanEmulator(
    _ControlApi,
    _SubscriptionApi,
    _NodeApi,
    _UserApi,
    _SystemApi,
    _Plumbing,
    _PanelState,
    _Controls,
    _Persistence,
):
    """One in-memory Marzban panel on its own port; run several side by side."""

    def __init__(
        self,
        admin_username: str = "admin",
        admin_password: str = "admin",
        nodes: Iterable[NodeSpec | Mapping[str, Any]] = (),
        inbounds: Iterable[Inbound] = DEFAULT_INBOUNDS,
        token_ttl_seconds: float = 86400,
        *,
        subscription_url_prefix: str = "",
        server_address: str = "127.0.0.1",
        node_connect_delay: float = 0.5,
        new_nodes_reachable: bool = True,
        sudo_from_env: bool = False,
        local_utc_offset: timedelta = timedelta(0),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.admin_username = admin_username
        # The admin Marzban makes from SUDO_USERNAME/SUDO_PASSWORD: no DB row, so its
        # users show `admin: null` and deleting one crashes (500) before Xray drops it.
        self.sudo_from_env = sudo_from_env
        # The panel host's time zone: dates without a zone are read in it.
        self.local_tz = timezone(local_utc_offset)
        self._initial_password = admin_password
        self._node_specs = [
            spec if isinstance(spec, NodeSpec) else msgspec.convert(spec, NodeSpec) for spec in nodes
        ]
        self.inbounds = tuple(inbounds)
        self._inbound_by_tag = {inbound.tag: inbound for inbound in self.inbounds}
        self.token_ttl_seconds = token_ttl_seconds
        self.subscription_url_prefix = subscription_url_prefix.rstrip("/")
        self.server_address = server_address
        self.node_connect_delay = node_connect_delay
        self.new_nodes_reachable = new_nodes_reachable
        self._clock = clock
        self._sub_secret = secrets.token_hex(32)
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._host = "127.0.0.1"
        self._port = 0
        self.base_url: str | None = None
        self.reset()

    async def __aenter__(self) -> MarzbanEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def reset(self) -> None:
        """Back to a freshly installed panel: the constructor's nodes, no users, no faults.

        Tokens issued before are no longer valid (a fresh panel has a fresh JWT secret).
        """
        self.admin_password = self._initial_password
        self._jwt_secret = secrets.token_bytes(32)
        self._password_reset_at: float | None = None
        self._xray: set[str] = set()  # usernames the Xray core serves right now
        self._admin_users_usage = 0
        self._users: dict[str, _User] = {}
        self._nodes: dict[int, _Node] = {}
        self._next_node_id = 1
        self._node_usages: list[tuple[float, int | None, int, int]] = []
        self._hosts: dict[str, list[tuple[str, str]]] = {
            inbound.tag: [(DEFAULT_HOST_REMARK, self.server_address)] for inbound in self.inbounds
        }
        self._system: dict[str, float] = {}
        self._synthetic_seq = 0
        self.requests: list[RequestRecord] = []
        self.counters: Counter[str] = Counter()
        self.logins = 0
        self._delay: _Delay | None = None
        self._failure: _Failure | None = None
        self._hang: _Hang | None = None
        self._hold: _Hold | None = None
        for spec in self._node_specs:
            self._add_node_from_spec(spec)

    # -- lifecycle --------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        add = app.router
        add.add_post("/api/admin/token", self._login)
        add.add_get("/api/admin", self._get_admin)
        add.add_get("/api/system", self._get_system)
        add.add_get("/api/inbounds", self._get_inbounds)
        add.add_get("/api/core", self._get_core)
        add.add_get("/api/core/config", self._get_core_config)
        add.add_post("/api/user", self._add_user)
        add.add_get("/api/user/{username}", self._get_user)
        add.add_put("/api/user/{username}", self._modify_user)
        add.add_delete("/api/user/{username}", self._delete_user)
        add.add_post("/api/user/{username}/reset", self._reset_user)
        add.add_post("/api/user/{username}/revoke_sub", self._revoke_sub)
        add.add_get("/api/user/{username}/usage", self._get_user_usage)
        add.add_get("/api/users", self._get_users)
        add.add_get("/api/users/usage", self._get_users_usage)
        add.add_get("/api/users/expired", self._get_expired_users)
        add.add_get("/api/node/settings", self._get_node_settings)
        add.add_post("/api/node", self._add_node)
        add.add_get("/api/node/{node_id}", self._get_node)
        add.add_put("/api/node/{node_id}", self._modify_node)
        add.add_delete("/api/node/{node_id}", self._delete_node)
        add.add_post("/api/node/{node_id}/reconnect", self._reconnect_node)
        add.add_get("/api/nodes", self._get_nodes)
        add.add_get("/api/nodes/usage", self._get_nodes_usage)
        add.add_get("/sub/{token}", self._get_subscription)
        add.add_get("/sub/{token}/info", self._get_subscription_info)
        add.add_get("/sub/{token}/usage", self._get_subscription_usage)
        add.add_get("/sub/{token}/{client_type}", self._get_subscription_typed)
        control = CONTROL_PREFIX
        add.add_get(f"{control}/state", self._ctl_state)
        add.add_post(f"{control}/reset", self._ctl_reset)
        add.add_get(f"{control}/requests", self._ctl_requests)
        add.add_delete(f"{control}/requests", self._ctl_clear_requests)
        add.add_post(f"{control}/slow", self._ctl_slow)
        add.add_post(f"{control}/fail", self._ctl_fail)
        add.add_delete(f"{control}/fail", self._ctl_clear_fail)
        add.add_post(f"{control}/down", self._ctl_down)
        add.add_post(f"{control}/expire_tokens", self._ctl_expire_tokens)
        add.add_post(f"{control}/admin_password", self._ctl_admin_password)
        add.add_post(f"{control}/hang_after_create", self._ctl_hang)
        add.add_post(f"{control}/hold_after", self._ctl_hold)
        add.add_post(f"{control}/system", self._ctl_system)
        add.add_post(f"{control}/nodes", self._ctl_add_node)
        add.add_patch(f"{control}/nodes/{{node_id}}", self._ctl_patch_node)
        add.add_delete(f"{control}/nodes/{{node_id}}", self._ctl_remove_node)
        add.add_post(f"{control}/users", self._ctl_add_users)
        add.add_patch(f"{control}/users/{{username}}", self._ctl_patch_user)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        self._host = host
        self._site = web.TCPSite(self._runner, host, port)
        await self._site.start()
        self._port = self._site.port
        self.base_url = f"http://{host}:{self._port}"
        logger.info("marzban emulator listening on %s", self.base_url)
        return self.base_url

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self._site = None
            logger.info("marzban emulator on %s stopped", self.base_url)

    @property
    def is_down(self) -> bool:
        return self._runner is not None and self._site is None

    async def down(self) -> None:
        """Stop listening (connection refused) and drop open connections; `up()` reopens."""
        if self._runner is None or self._site is None:
            return
        site, self._site = self._site, None
        await site.stop()
        server = self._runner.server
        if server is not None:
            await server.shutdown(0.05)
        logger.info("marzban emulator on %s is down", self.base_url)

    async def up(self) -> None:
        """Listen again on the same host and port."""
        if self._runner is None or self._site is not None:
            return
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        self._site = site
        logger.info("marzban emulator on %s is up", self.base_url)

    async def down_for(self, seconds: float) -> None:
        await self.down()
        await asyncio.sleep(seconds)
        await self.up()
