"""The panel's state as bytes: what the sandbox keeps across its restarts.

Users, nodes, hosts, usage and the secrets that signed tokens and subscription
links, so the configs in Orbit's database still point at users that exist and
links handed out keep working. Faults, delays and the request log are not kept:
a restarted panel starts healthy.
"""

from __future__ import annotations

import msgspec

from orbit.sandbox.marzban.models import _Node, _User


class PanelState(msgspec.Struct, kw_only=True):
    admin_password: str
    jwt_secret: bytes
    sub_secret: str
    password_reset_at: float | None
    users: dict[str, _User]
    nodes: dict[int, _Node]
    next_node_id: int
    node_usages: list[tuple[float, int | None, int, int]]
    hosts: dict[str, list[tuple[str, str]]]
    system: dict[str, float]
    xray: list[str]
    admin_users_usage: int
    synthetic_seq: int


class _Persistence:
    """`dump_state()` / `load_state()` on the emulator."""

    def dump_state(self) -> bytes:
        return msgspec.json.encode(
            PanelState(
                admin_password=self.admin_password,
                jwt_secret=self._jwt_secret,
                sub_secret=self._sub_secret,
                password_reset_at=self._password_reset_at,
                users=self._users,
                nodes=self._nodes,
                next_node_id=self._next_node_id,
                node_usages=self._node_usages,
                hosts=self._hosts,
                system=self._system,
                xray=sorted(self._xray),
                admin_users_usage=self._admin_users_usage,
                synthetic_seq=self._synthetic_seq,
            )
        )

    def load_state(self, data: bytes) -> None:
        """Replace users, nodes and secrets with a dump's (faults and the request log stay cleared)."""
        state = msgspec.json.decode(data, type=PanelState)
        self.admin_password = state.admin_password
        self._jwt_secret = state.jwt_secret
        self._sub_secret = state.sub_secret
        self._password_reset_at = state.password_reset_at
        self._users = state.users
        self._nodes = state.nodes
        self._next_node_id = state.next_node_id
        self._node_usages = state.node_usages
        self._hosts = state.hosts
        self._system = state.system
        self._xray = set(state.xray)
        self._admin_users_usage = state.admin_users_usage
        self._synthetic_seq = state.synthetic_seq
