"""The panel's state as records: inbounds, nodes, users, requests, and the faults it is told to play."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec


class Inbound(msgspec.Struct, frozen=True, kw_only=True):
    """One Xray inbound of the panel; `/api/inbounds` shows tag/protocol/network/tls/port."""

    tag: str
    protocol: str
    network: str
    port: int | str  # a port range ("20000-20010") is a string, as the real panel sends it
    tls: str = "none"
    path: str = ""
    sni: str = ""
    fp: str = ""
    pbk: str = ""
    sid: str = ""


DEFAULT_INBOUNDS = (
    Inbound(tag="VMess TCP", protocol="vmess", network="tcp", port=8081),
    Inbound(tag="VMess Websocket", protocol="vmess", network="ws", port=8082, path="/vmess"),
    Inbound(
        tag="VLESS TCP REALITY",
        protocol="vless",
        network="tcp",
        port=8443,
        tls="reality",
        sni="www.example.com",
        fp="chrome",
        pbk="T6GhOsRorElfM5DoWddtXo70mAaBW0WiHedxG8xiQZQ",
    ),
    Inbound(tag="VLESS Websocket", protocol="vless", network="ws", port=8083, path="/vless"),
)


class NodeSpec(msgspec.Struct, kw_only=True):
    """A node the panel starts with (or that a control adds)."""

    name: str
    address: str = "127.0.0.1"
    port: int = 62050
    api_port: int = 62051
    usage_coefficient: float = 1.0
    status: str = "connected"
    message: str | None = None
    # What the next (re)connect attempt ends in: connected, or error "Connection refused".
    reachable: bool = True
    add_as_new_host: bool = False
    uplink: int = 0
    downlink: int = 0


class RequestRecord(msgspec.Struct, kw_only=True):
    """One API request the panel received; `status` is None while (or if never) answered."""

    method: str
    path: str
    query: str
    body: str
    at: float
    status: int | None = None


class _Node(msgspec.Struct, kw_only=True):
    id: int
    name: str
    address: str
    port: int
    api_port: int
    usage_coefficient: float
    status: str
    message: str | None
    xray_version: str | None
    reachable: bool
    connect_at: float | None = None


class _User(msgspec.Struct, kw_only=True):
    username: str
    proxies: dict[str, dict[str, str]]
    excluded: dict[str, list[str]]
    status: str
    expire: int | None
    data_limit: int | None
    data_limit_reset_strategy: str
    note: str | None
    on_hold_expire_duration: int | None
    on_hold_timeout: datetime | None
    auto_delete_in_days: int | None
    next_plan: dict[str, Any] | None
    created_at: datetime
    sub_key: str
    edit_at: datetime | None = None
    online_at: datetime | None = None
    sub_updated_at: datetime | None = None
    sub_last_user_agent: str | None = None
    used_traffic: int = 0
    traffic_before_resets: int = 0
    # (unix time, node id or None for the master core, bytes already × coefficient)
    usages: list[tuple[float, int | None, int]] = []


class _Failure(msgspec.Struct, kw_only=True):
    status: int
    remaining: int | None
    method: str | None
    path: str | None


class _Delay(msgspec.Struct, kw_only=True):
    seconds: float
    method: str | None
    path: str | None


class _Hang(msgspec.Struct, kw_only=True):
    seconds: float
    remaining: int | None


class _Hold(msgspec.Struct, kw_only=True):
    seconds: float
    remaining: int | None
    method: str | None
    path: str | None
