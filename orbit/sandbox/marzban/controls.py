"""The emulator's controls on the object: faults, outages, nodes, users, traffic, and what it saw."""

from __future__ import annotations

import secrets
from collections import Counter
from datetime import datetime
from typing import Any

import msgspec

from orbit.sandbox.marzban.constants import (
    BASE_MEM_USED,
    DEFAULT_CPU_CORES,
    DEFAULT_MEM_TOTAL,
    MEM_PER_USER,
    NODE_REFUSED,
    NODE_STATUSES,
    ONLINE_WINDOW,
    PANEL_VERSION,
    SYSTEM_OVERRIDABLE,
    USER_STATUSES,
    XRAY_VERSION,
)
from orbit.sandbox.marzban.models import NodeSpec, _Delay, _Failure, _Hang, _Hold
from orbit.sandbox.marzban.validation import _datetime, _proxy_settings


class _Controls:
    """What tests call on the emulator directly (the HTTP control API wraps the same)."""

    # -- controls ---------------------------------------------------------------------------

    def slow(self, seconds: float, *, method: str | None = None, path: str | None = None) -> None:
        """Delay every matching API request by `seconds` (0 clears). `path` is a glob."""
        self._delay = _Delay(seconds=seconds, method=method, path=path) if seconds > 0 else None

    def fail(
        self,
        status: int = 500,
        times: int | None = None,
        *,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        """Answer matching API requests with `status` (text body), `times` times or until cleared."""
        self._failure = _Failure(status=status, remaining=times, method=method, path=path)

    def clear_failures(self) -> None:
        self._failure = None

    def hang_after_create(self, seconds: float, times: int | None = 1) -> None:
        """POST /api/user creates the user, then waits `seconds` before answering (0 clears)."""
        self._hang = _Hang(seconds=seconds, remaining=times) if seconds > 0 else None

    def hold_after(
        self,
        seconds: float,
        *,
        method: str | None = None,
        path: str | None = None,
        times: int | None = 1,
    ) -> None:
        """Matching API requests take effect, then their (successful) answer waits
        `seconds`: a client that dies meanwhile never learns it succeeded (0 clears)."""
        self._hold = (
            _Hold(seconds=seconds, remaining=times, method=method, path=path) if seconds > 0 else None
        )

    def expire_tokens(self) -> None:
        """Every access token issued so far answers 401 from now on."""
        self._jwt_secret = secrets.token_bytes(32)

    def set_admin_password(self, password: str) -> None:
        """Change the password as the real panel does: it records the moment, and every
        token whose `iat` (whole seconds) is before it is refused, so tokens issued in
        the same second as the change are refused too; a login a second later works."""
        self.admin_password = password
        self._password_reset_at = self._clock()

    def in_xray(self, username: str) -> bool:
        """Whether the Xray core still serves the user (it can connect)."""
        return username in self._xray

    def restart_xray(self) -> None:
        """Xray restarted: it serves exactly the users the database says are active."""
        self._xray = {u.username for u in self._users.values() if u.status in ("active", "on_hold")}

    def set_system(self, **fields: float) -> None:
        """Override hardware figures of /api/system (mem_*, cpu_*, *_bandwidth_speed)."""
        unknown = set(fields) - SYSTEM_OVERRIDABLE
        if unknown:
            raise ValueError(f"not overridable: {sorted(unknown)}")
        self._system.update(fields)

    def add_node(self, name: str, **fields: Any) -> int:
        """Add a node directly (no API call); returns its id. Fields as in NodeSpec."""
        return self._add_node_from_spec(NodeSpec(name=name, **fields)).id

    def remove_node(self, node_id: int) -> None:
        self._nodes.pop(node_id, None)

    def set_node(
        self,
        node_id: int,
        *,
        name: str | None = None,
        address: str | None = None,
        status: str | None = None,
        message: str | msgspec.UnsetType | None = msgspec.UNSET,
        xray_version: str | msgspec.UnsetType | None = msgspec.UNSET,
        usage_coefficient: float | None = None,
        uplink: int | None = None,
        downlink: int | None = None,
        reachable: bool | None = None,
    ) -> dict[str, Any]:
        """Change a node as its health check or traffic recorder would; returns its JSON."""
        node = self._nodes[node_id]
        if name is not None:
            node.name = name
        if address is not None:
            node.address = address
        if reachable is not None:
            node.reachable = reachable
        if usage_coefficient is not None:
            node.usage_coefficient = usage_coefficient
        if status is not None:
            if status not in NODE_STATUSES:
                raise ValueError(f"status must be one of {NODE_STATUSES}")
            node.status = status
            node.connect_at = None
            if status == "connecting":
                node.connect_at = self._clock() + self.node_connect_delay
            node.xray_version = XRAY_VERSION if status == "connected" else None
            if status != "connecting":  # reconnecting keeps the last error's message
                node.message = NODE_REFUSED if status == "error" else None
        if not isinstance(message, msgspec.UnsetType):
            node.message = message
        if not isinstance(xray_version, msgspec.UnsetType):
            node.xray_version = xray_version
        if uplink is not None or downlink is not None:
            up_now, down_now = self._node_totals(node_id)
            self._node_usages.append(
                (
                    self._clock(),
                    node_id,
                    (uplink - up_now) if uplink is not None else 0,
                    (downlink - down_now) if downlink is not None else 0,
                )
            )
        return self._node_json(node)

    def add_node_traffic(
        self, node_id: int | None, uplink: int, downlink: int, *, at: float | None = None
    ) -> None:
        """Record raw traffic on a node (None = the master core) for /api/nodes/usage,
        now or at unix time `at`."""
        self._node_usages.append((self._clock() if at is None else at, node_id, uplink, downlink))

    def add_users(
        self,
        count: int,
        *,
        prefix: str = "load",
        used_traffic: int = 0,
        online: bool = False,
        status: str = "active",
    ) -> list[str]:
        """Create `count` users with VLESS+VMess on every inbound; returns their names."""
        if status not in USER_STATUSES:
            raise ValueError(f"status must be one of {USER_STATUSES}")
        created = []
        while len(created) < count:
            self._synthetic_seq += 1
            username = f"{prefix}_{self._synthetic_seq:05d}"
            if username in self._users:
                continue
            protocols = [p for p in ("vless", "vmess") if self._tags(p)] or [
                inbound.protocol for inbound in self.inbounds[:1]
            ]
            user = self._new_user(
                username=username,
                proxies={p: _proxy_settings(p, {}) for p in protocols},
                excluded={p: [] for p in protocols},
                status=status,
            )
            user.used_traffic = used_traffic
            if online:
                user.online_at = self._now()
            self._users[username] = user
            self._sync_xray(user)
            created.append(username)
        return created

    def set_user(
        self,
        username: str,
        *,
        used_traffic: int | None = None,
        online_at: datetime | str | msgspec.UnsetType | None = msgspec.UNSET,
        status: str | None = None,
        expire: int | msgspec.UnsetType | None = msgspec.UNSET,
        data_limit: int | msgspec.UnsetType | None = msgspec.UNSET,
    ) -> dict[str, Any]:
        """Set fields the panel's own jobs would change; `online_at="now"` marks it online."""
        user = self._users[username]
        if used_traffic is not None:
            self._admin_users_usage += max(0, used_traffic - user.used_traffic)
            user.used_traffic = used_traffic
        if not isinstance(online_at, msgspec.UnsetType):
            if online_at == "now":
                user.online_at = self._now()
            elif isinstance(online_at, str):
                user.online_at = _datetime(online_at)
            else:
                user.online_at = online_at
        if status is not None:
            if status not in USER_STATUSES:
                raise ValueError(f"status must be one of {USER_STATUSES}")
            user.status = status
            self._sync_xray(user)
        if not isinstance(expire, msgspec.UnsetType):
            user.expire = expire or None
        if not isinstance(data_limit, msgspec.UnsetType):
            user.data_limit = data_limit or None
        return self._user_json(user)

    def add_user_traffic(self, username: str, nbytes: int, node_id: int | None = None) -> None:
        """Traffic the user made through a node (None = master), as the usage recorder sees it.

        used_traffic grows by nbytes × the node's usage_coefficient; the node's raw
        uplink/downlink grow by 10 % / 90 % of nbytes; the user becomes online now.
        """
        user = self._users[username]
        coefficient = 1.0 if node_id is None else self._nodes[node_id].usage_coefficient
        counted = int(nbytes * coefficient)
        now = self._clock()
        user.used_traffic += counted
        user.usages.append((now, node_id, counted))
        user.online_at = self._now()
        self._admin_users_usage += counted
        uplink = nbytes // 10
        self._node_usages.append((now, node_id, uplink, nbytes - uplink))

    def user(self, username: str) -> dict[str, Any] | None:
        """What GET /api/user/{username} would answer, or None."""
        user = self._users.get(username)
        return None if user is None else self._user_json(user)

    @property
    def usernames(self) -> list[str]:
        return list(self._users)

    def node(self, node_id: int) -> dict[str, Any] | None:
        self._settle_nodes()
        node = self._nodes.get(node_id)
        return None if node is None else self._node_json(node)

    def nodes(self) -> list[dict[str, Any]]:
        self._settle_nodes()
        return [self._node_json(node) for node in self._nodes.values()]

    def count(self, method: str, route: str) -> int:
        """How many requests hit a route, e.g. count("POST", "/api/user/{username}/reset")."""
        return self.counters[f"{method.upper()} {route}"]

    def clear_requests(self) -> None:
        self.requests.clear()
        self.counters.clear()
        self.logins = 0

    def review_users(self) -> None:
        """The panel's review job: active → limited/expired, on_hold → active."""
        now = self._clock()
        now_dt = self._now()
        for user in self._users.values():
            if user.status == "active":
                if user.data_limit and user.used_traffic >= user.data_limit:
                    user.status = "limited"
                elif user.expire and user.expire <= now:
                    user.status = "expired"
                self._sync_xray(user)
            elif user.status == "on_hold":
                base = user.edit_at or user.created_at
                came_online = user.online_at is not None and user.online_at >= base
                timed_out = user.on_hold_timeout is not None and user.on_hold_timeout <= now_dt
                if came_online or timed_out:
                    user.status = "active"
                    user.expire = int(now) + (user.on_hold_expire_duration or 0)

    def system_stats(self) -> dict[str, Any]:
        self.review_users()
        statuses = Counter(user.status for user in self._users.values())
        since = self._now() - ONLINE_WINDOW
        online = sum(1 for u in self._users.values() if u.online_at is not None and u.online_at >= since)
        uplink, downlink = self._node_totals(None)
        total = len(self._users)
        system = self._system
        return {
            "version": PANEL_VERSION,
            "mem_total": int(system.get("mem_total", DEFAULT_MEM_TOTAL)),
            "mem_used": int(system.get("mem_used", BASE_MEM_USED + MEM_PER_USER * total)),
            "cpu_cores": int(system.get("cpu_cores", DEFAULT_CPU_CORES)),
            "cpu_usage": float(system.get("cpu_usage", round(min(100.0, 1.0 + 0.1 * online), 1))),
            "total_user": total,
            "online_users": online,
            "users_active": statuses["active"],
            "users_on_hold": statuses["on_hold"],
            "users_disabled": statuses["disabled"],
            "users_expired": statuses["expired"],
            "users_limited": statuses["limited"],
            "incoming_bandwidth": uplink,
            "outgoing_bandwidth": downlink,
            "incoming_bandwidth_speed": int(system.get("incoming_bandwidth_speed", 0)),
            "outgoing_bandwidth_speed": int(system.get("outgoing_bandwidth_speed", 0)),
        }

    def state(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "down": self.is_down,
            "admin": self.admin_username,
            "users": len(self._users),
            "nodes": self.nodes(),
            "system": self.system_stats(),
            "slow": None if self._delay is None else msgspec.to_builtins(self._delay),
            "fail": None if self._failure is None else msgspec.to_builtins(self._failure),
            "hang_after_create": None if self._hang is None else msgspec.to_builtins(self._hang),
            "hold_after": None if self._hold is None else msgspec.to_builtins(self._hold),
            "logins": self.logins,
            "counters": dict(self.counters),
        }
