"""Shapes of a Marzban v0.8.4 panel's answers (see reference/marzban-api.md), as
msgspec structs. Unknown fields are ignored so a newer panel does not break us."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

# Byte counts as Postgres stores them (bigint): a panel answering a negative or larger
# number is refused as a malformed answer (PanelUnavailable), never stored or compared.
Bytes = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]

NODE_CONNECTED = "connected"
NODE_CONNECTING = "connecting"
NODE_STATUSES = ("connected", "connecting", "error", "disabled")


class Token(msgspec.Struct, frozen=True):
    access_token: str
    token_type: str = "bearer"


class Admin(msgspec.Struct, frozen=True, kw_only=True):
    username: str
    is_sudo: bool = False
    # None for the admin Marzban makes from SUDO_USERNAME/SUDO_PASSWORD (no DB row):
    # deleting its users answers 500 before Xray drops them.
    users_usage: int | None = None

    @property
    def from_environment(self) -> bool:
        return self.is_sudo and self.users_usage is None


class PanelUser(msgspec.Struct, frozen=True, kw_only=True):
    username: str
    status: str
    expire: int | None = None  # unix seconds; None = never
    data_limit: Bytes | None = None  # None = unlimited
    data_limit_reset_strategy: str = "no_reset"
    used_traffic: Bytes = 0
    lifetime_used_traffic: Bytes = 0
    proxies: dict[str, dict[str, Any]] = {}
    inbounds: dict[str, list[str]] = {}
    note: str | None = None
    online_at: str | None = None  # ISO-8601 without timezone (UTC)
    subscription_url: str = ""  # relative (/sub/...) unless the panel sets a prefix
    links: list[str] = []


def decode_user(raw: msgspec.Raw) -> PanelUser | None:
    """One user of a `RawUsersPage`; None for one the panel mangled (the rest still count)."""
    try:
        return msgspec.json.decode(raw, type=PanelUser)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None


class UsersPage(msgspec.Struct, frozen=True):
    users: list[PanelUser]
    total: int


class RawUsersPage(msgspec.Struct, frozen=True):
    """A page of `GET /api/users` whose users are decoded one by one, so one user
    the panel mangled does not hide the rest of the page (reconciliation)."""

    users: list[msgspec.Raw]
    total: int = 0


class Node(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    name: str
    status: str
    usage_coefficient: float = 1.0
    address: str = ""
    message: str | None = None
    xray_version: str | None = None


class NodeUsage(msgspec.Struct, frozen=True, kw_only=True):
    node_id: int | None  # None is the panel's own core ("Master")
    node_name: str
    uplink: int = 0
    downlink: int = 0


class NodesUsage(msgspec.Struct, frozen=True):
    usages: list[NodeUsage]


class SystemStats(msgspec.Struct, frozen=True, kw_only=True):
    version: str = ""
    total_user: int = 0
    users_active: int = 0
    online_users: int = 0
    cpu_usage: float = 0.0
    mem_used: int = 0
    mem_total: int = 0
    incoming_bandwidth: int = 0
    outgoing_bandwidth: int = 0


class Inbound(msgspec.Struct, frozen=True, kw_only=True):
    tag: str
    protocol: str
    network: str = ""
    tls: str = ""
    port: int | str | None = None  # a port range is a string: "20000-20010"


class ErrorBody(msgspec.Struct, frozen=True):
    """`{"detail": "text"}` or, for 422, `{"detail": {"field": "message"}}`."""

    detail: str | dict[str, str] = ""


class NewUser(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """`POST /api/user`. Always carries `inbounds`: without it the user gets none."""

    username: str
    proxies: dict[str, dict[str, Any]]
    inbounds: dict[str, list[str]]
    expire: int = 0  # 0 = never
    data_limit: int = 0  # 0 = unlimited
    data_limit_reset_strategy: str = "no_reset"
    status: str = "active"
    note: str = ""
