"""The emulator's HTTP control API under ``/_emulator`` (docs/marzban-emulator.md)."""

from __future__ import annotations

import msgspec
from aiohttp import web

from orbit.sandbox.marzban.commands import (
    _DownCmd,
    _FailCmd,
    _HangCmd,
    _HoldCmd,
    _NodePatchCmd,
    _PasswordCmd,
    _SlowCmd,
    _SystemCmd,
    _UserPatchCmd,
    _UsersCmd,
)
from orbit.sandbox.marzban.constants import NODE_STATUSES, USER_STATUSES
from orbit.sandbox.marzban.models import NodeSpec
from orbit.sandbox.marzban.validation import _ApiError, _FieldError, _json
from orbit.sandbox.marzban.wire import _decode


class _ControlApi:
    """``/_emulator/...``: the controls of `_Controls` over HTTP."""

    # -- HTTP: controls ---------------------------------------------------------------------

    async def _ctl_state(self, request: web.Request) -> web.Response:
        return _json(self.state())

    async def _ctl_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return _json(self.state())

    async def _ctl_requests(self, request: web.Request) -> web.Response:
        return _json(
            {
                "requests": msgspec.to_builtins(self.requests),
                "counters": dict(self.counters),
                "logins": self.logins,
            }
        )

    async def _ctl_clear_requests(self, request: web.Request) -> web.Response:
        self.clear_requests()
        return _json({"requests": [], "counters": {}, "logins": 0})

    async def _ctl_slow(self, request: web.Request) -> web.Response:
        command = await _decode(request, _SlowCmd)
        self.slow(command.seconds, method=command.method, path=command.path)
        return _json(self.state())

    async def _ctl_fail(self, request: web.Request) -> web.Response:
        command = await _decode(request, _FailCmd)
        if not 400 <= command.status <= 599:
            raise _ApiError(400, "status must be 400..599")
        self.fail(command.status, command.times, method=command.method, path=command.path)
        return _json(self.state())

    async def _ctl_clear_fail(self, request: web.Request) -> web.Response:
        self.clear_failures()
        return _json(self.state())

    async def _ctl_down(self, request: web.Request) -> web.StreamResponse:
        command = await _decode(request, _DownCmd)
        if command.seconds <= 0:
            raise _ApiError(400, "seconds must be > 0 (nothing could bring the panel up again)")
        response = _json({"down_for": command.seconds, "base_url": self.base_url})
        await response.prepare(request)
        await response.write_eof()
        self._spawn(self.down_for(command.seconds))
        return response

    async def _ctl_expire_tokens(self, request: web.Request) -> web.Response:
        self.expire_tokens()
        return _json(self.state())

    async def _ctl_admin_password(self, request: web.Request) -> web.Response:
        command = await _decode(request, _PasswordCmd)
        self.set_admin_password(command.password)
        return _json(self.state())

    async def _ctl_hang(self, request: web.Request) -> web.Response:
        command = await _decode(request, _HangCmd)
        self.hang_after_create(command.seconds, command.times)
        return _json(self.state())

    async def _ctl_hold(self, request: web.Request) -> web.Response:
        command = await _decode(request, _HoldCmd)
        self.hold_after(command.seconds, method=command.method, path=command.path, times=command.times)
        return _json(self.state())

    async def _ctl_system(self, request: web.Request) -> web.Response:
        command = await _decode(request, _SystemCmd)
        fields = {k: v for k, v in msgspec.structs.asdict(command).items() if v is not None}
        self.set_system(**fields)
        return _json(self.system_stats())

    async def _ctl_add_node(self, request: web.Request) -> web.Response:
        spec = await _decode(request, NodeSpec)
        if spec.status not in NODE_STATUSES:
            raise _ApiError(400, f"status must be one of {NODE_STATUSES}")
        return _json(self._node_json(self._add_node_from_spec(spec)))

    def _ctl_node_id(self, request: web.Request) -> int:
        try:
            node_id = int(request.match_info["node_id"])
        except ValueError:
            raise _ApiError(400, "node id must be an integer") from None
        if node_id not in self._nodes:
            raise _ApiError(404, "Node not found")
        return node_id

    async def _ctl_patch_node(self, request: web.Request) -> web.Response:
        node_id = self._ctl_node_id(request)
        command = await _decode(request, _NodePatchCmd)
        if command.status is not None and command.status not in NODE_STATUSES:
            raise _ApiError(400, f"status must be one of {NODE_STATUSES}")
        return _json(self.set_node(node_id, **msgspec.structs.asdict(command)))

    async def _ctl_remove_node(self, request: web.Request) -> web.Response:
        self.remove_node(self._ctl_node_id(request))
        return _json({})

    async def _ctl_add_users(self, request: web.Request) -> web.Response:
        command = await _decode(request, _UsersCmd)
        if command.count < 0 or command.status not in USER_STATUSES:
            raise _ApiError(400, "count must be >= 0 and status a user status")
        names = self.add_users(
            command.count,
            prefix=command.prefix,
            used_traffic=command.used_traffic,
            online=command.online,
            status=command.status,
        )
        return _json({"usernames": names, "total": len(self._users)})

    async def _ctl_patch_user(self, request: web.Request) -> web.Response:
        username = request.match_info["username"]
        if username not in self._users:
            raise _ApiError(404, "User not found")
        command = await _decode(request, _UserPatchCmd)
        if command.status is not None and command.status not in USER_STATUSES:
            raise _ApiError(400, f"status must be one of {USER_STATUSES}")
        if command.add_traffic:
            if command.node_id is not None and command.node_id not in self._nodes:
                raise _ApiError(404, "Node not found")
            self.add_user_traffic(username, command.add_traffic, command.node_id)
        try:
            return _json(
                self.set_user(
                    username,
                    used_traffic=command.used_traffic,
                    online_at=command.online_at,
                    status=command.status,
                    expire=command.expire,
                    data_limit=command.data_limit,
                )
            )
        except _FieldError as exc:
            raise _ApiError(400, f"online_at: {exc.message}") from None
