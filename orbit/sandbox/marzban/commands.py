"""Request bodies of the emulator's control API (``/_emulator/...``)."""

from __future__ import annotations

import msgspec

# -- control request bodies -----------------------------------------------------------------


class _SlowCmd(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    seconds: float
    method: str | None = None
    path: str | None = None


class _FailCmd(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    status: int = 500
    times: int | None = None
    method: str | None = None
    path: str | None = None


class _DownCmd(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    seconds: float


class _HangCmd(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    seconds: float
    times: int | None = 1


class _HoldCmd(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    seconds: float
    method: str | None = None
    path: str | None = None
    times: int | None = 1


class _UsersCmd(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    count: int
    prefix: str = "load"
    used_traffic: int = 0
    online: bool = False
    status: str = "active"


class _UserPatchCmd(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    used_traffic: int | None = None
    add_traffic: int | None = None
    node_id: int | None = None
    online_at: str | msgspec.UnsetType | None = msgspec.UNSET
    status: str | None = None
    expire: int | msgspec.UnsetType | None = msgspec.UNSET
    data_limit: int | msgspec.UnsetType | None = msgspec.UNSET


class _NodePatchCmd(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str | None = None
    address: str | None = None
    status: str | None = None
    message: str | msgspec.UnsetType | None = msgspec.UNSET
    xray_version: str | msgspec.UnsetType | None = msgspec.UNSET
    usage_coefficient: float | None = None
    uplink: int | None = None
    downlink: int | None = None
    reachable: bool | None = None


class _SystemCmd(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    mem_total: int | None = None
    mem_used: int | None = None
    cpu_cores: int | None = None
    cpu_usage: float | None = None
    incoming_bandwidth_speed: int | None = None
    outgoing_bandwidth_speed: int | None = None


class _PasswordCmd(msgspec.Struct, forbid_unknown_fields=True):
    password: str
