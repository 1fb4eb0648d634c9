"""A local Marzban v0.8.4 panel: admin auth, users, nodes, subscriptions, system stats.

Paths, request bodies, response shapes, status codes and error bodies follow what a real
v0.8.4 panel answered (``reference/marzban-api.md``), so a client written against this
emulator works unchanged against a real panel. Test controls live under ``/_emulator``
and on the ``MarzbanEmulator`` object; ``docs/marzban-emulator.md`` lists both and says
what is simplified.

Run alone: ``python -m orbit.sandbox.marzban --port 8001 --port 8002``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fnmatch
import hashlib
import hmac
import http
import json
import logging
import math
import re
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import msgspec
from aiohttp import web

from orbit.sandbox import standalone

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

PANEL_VERSION = "0.8.4"
XRAY_VERSION = "1.8.24"
CONTROL_PREFIX = "/_emulator"

PROTOCOLS = ("vmess", "vless", "trojan", "shadowsocks")
PROTOCOL_ENUM_NAMES = {
    "vmess": "VMess",
    "vless": "VLESS",
    "trojan": "Trojan",
    "shadowsocks": "Shadowsocks",
}
USER_STATUSES = ("active", "disabled", "limited", "expired", "on_hold")
CREATE_STATUSES = ("active", "on_hold")
MODIFY_STATUSES = ("active", "disabled", "on_hold")
RESET_STRATEGIES = ("no_reset", "day", "week", "month", "year")
XTLS_FLOWS = ("", "xtls-rprx-vision")
SHADOWSOCKS_METHODS = (
    "aes-128-gcm",
    "aes-256-gcm",
    "chacha20-ietf-poly1305",
    "xchacha20-poly1305",
)
SORT_FIELDS = ("username", "used_traffic", "data_limit", "expire", "created_at")
NODE_STATUSES = ("connected", "connecting", "error", "disabled")

USERNAME_RE = re.compile(r"^(?=\w{3,32}\b)[a-zA-Z0-9-_@.]+(?:_[a-zA-Z0-9-_@.]+)*$")
USERNAME_ERROR = (
    "Value error, Username only can be 3 to 32 characters and contain a-z, 0-9, and underscores in between."
)
NOTE_MAX = 500
NODE_REFUSED = "[Errno 111] Connection refused"
DEFAULT_HOST_REMARK = "🚀 Marz ({USERNAME}) [{PROTOCOL} - {TRANSPORT}]"
USAGE_WINDOW = timedelta(days=30)
ONLINE_WINDOW = timedelta(hours=24)
SUB_SIGNATURE_LEN = 10
JWT_HEADER = b'{"alg":"HS256","typ":"JWT"}'
BEARER = {"WWW-Authenticate": "Bearer"}

BASE_MEM_USED = 512 * 1024 * 1024
MEM_PER_USER = 64 * 1024
DEFAULT_MEM_TOTAL = 8 * 1024 * 1024 * 1024
DEFAULT_CPU_CORES = 2
SYSTEM_OVERRIDABLE = frozenset(
    {
        "mem_total",
        "mem_used",
        "cpu_cores",
        "cpu_usage",
        "incoming_bandwidth_speed",
        "outgoing_bandwidth_speed",
    }
)


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


# -- errors and field validation (Marzban's 422: {"detail": {<last loc element>: <msg>}}) ----


class _ApiError(Exception):
    def __init__(self, status: int, detail: Any, headers: Mapping[str, str] | None = None):
        super().__init__(status, detail)
        self.status = status
        self.detail = detail
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        return _json({"detail": self.detail}, self.status, self.headers)


class _FieldError(Exception):
    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.message = message
        self.key = key


class _Missing:
    pass


_MISSING = _Missing()


class _Fields:
    """Validates a body field by field, keeping one message per field like the panel."""

    def __init__(self, body: Mapping[str, Any]):
        self.body = body
        self.values: dict[str, Any] = {}
        self.errors: dict[str, str] = {}

    def take(self, name: str, parse: Callable[[Any], Any], *, required: bool = False) -> None:
        if name not in self.body:
            if required:
                self.errors[name] = "Field required"
            return
        try:
            self.values[name] = parse(self.body[name])
        except _FieldError as exc:
            self.errors[exc.key or name] = exc.message

    def check(self) -> dict[str, Any]:
        if self.errors:
            raise _ApiError(422, self.errors)
        return self.values


def _choices(options: Iterable[str]) -> str:
    quoted = [f"'{option}'" for option in options]
    if len(quoted) == 1:
        return quoted[0]
    return ", ".join(quoted[:-1]) + " or " + quoted[-1]


def _choice(value: Any, options: tuple[str, ...], key: str | None = None) -> str:
    if isinstance(value, str) and value in options:
        return value
    raise _FieldError(f"Input should be {_choices(options)}", key)


def _int(value: Any) -> int:
    if isinstance(value, bool | int):
        return int(value)
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        raise _FieldError("Input should be a valid integer, got a number with a fractional part")
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            raise _FieldError(
                "Input should be a valid integer, unable to parse string as an integer"
            ) from None
    raise _FieldError("Input should be a valid integer")


def _opt_int(value: Any) -> int | None:
    return None if value is None else _int(value)


def _float(value: Any) -> float:
    if isinstance(value, bool | int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            raise _FieldError("Input should be a valid number, unable to parse string as a number") from None
    raise _FieldError("Input should be a valid number")


def _positive_float(value: Any) -> float:
    number = _float(value)
    if number <= 0:
        raise _FieldError("Input should be greater than 0")
    return number


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "t", "yes", "y", "on", "1"):
            return True
        if lowered in ("false", "f", "no", "n", "off", "0"):
            return False
        raise _FieldError("Input should be a valid boolean, unable to interpret input")
    raise _FieldError("Input should be a valid boolean")


def _str(value: Any, key: str | None = None) -> str:
    if isinstance(value, str):
        return value
    raise _FieldError("Input should be a valid string", key)


def _datetime(value: Any) -> datetime:
    if isinstance(value, bool):
        raise _FieldError("Input should be a valid datetime")
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC).replace(tzinfo=None)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise _FieldError("Input should be a valid datetime or date, invalid character in year") from None
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(UTC).replace(tzinfo=None)
        return parsed
    raise _FieldError("Input should be a valid datetime")


def _data_limit(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, float):
        value = int(value)
    if not isinstance(value, int):
        raise _FieldError("Value error, data_limit must be an integer or a float, not a string")
    if value < 0:
        raise _FieldError("Input should be greater than or equal to 0")
    return int(value)


def _note(value: Any) -> str | None:
    if value is None:
        return None
    text = _str(value)
    if len(text) > NOTE_MAX:
        raise _FieldError("Value error, User's note can be a maximum of 500 character")
    return text


def _zero_is_none_int(value: Any) -> int | None:
    return None if value in (0, None) else _int(value)


def _zero_is_none_datetime(value: Any) -> datetime | None:
    return None if value in (0, None) else _datetime(value)


def _username(value: Any) -> str:
    name = _str(value)
    if not USERNAME_RE.match(name):
        raise _FieldError(USERNAME_ERROR)
    return name


def _next_plan(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _FieldError("Input should be a valid dictionary or instance of NextPlanModel")
    plan = {
        "data_limit": None,
        "expire": None,
        "add_remaining_traffic": False,
        "fire_on_either": True,
    }
    for key in ("data_limit", "expire"):
        if key in value:
            try:
                plan[key] = _opt_int(value[key])
            except _FieldError as exc:
                raise _FieldError(exc.message, key) from None
    for key in ("add_remaining_traffic", "fire_on_either"):
        if key in value:
            try:
                plan[key] = _bool(value[key])
            except _FieldError as exc:
                raise _FieldError(exc.message, key) from None
    return plan


def _random_password() -> str:
    return secrets.token_urlsafe(16)


def _uuid(value: Any) -> str:
    if not isinstance(value, str):
        raise _FieldError("UUID input should be a string, bytes or UUID object", "id")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise _FieldError("Input should be a valid UUID, unable to parse string as a UUID", "id") from None


def _proxy_settings(protocol: str, raw: Any) -> dict[str, str]:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise _FieldError("Input should be a valid dictionary", protocol)
    if protocol in ("vmess", "vless"):
        settings = {"id": _uuid(raw["id"]) if "id" in raw else str(uuid.uuid4())}
        if protocol == "vless":
            settings["flow"] = _choice(raw.get("flow", ""), XTLS_FLOWS, "flow")
        return settings
    password = _str(raw["password"], "password") if "password" in raw else _random_password()
    if protocol == "trojan":
        return {"password": password, "flow": _choice(raw.get("flow", ""), XTLS_FLOWS, "flow")}
    method = _choice(raw.get("method", "chacha20-ietf-poly1305"), SHADOWSOCKS_METHODS, "method")
    return {"password": password, "method": method}


def _proxies(value: Any, *, create: bool) -> dict[str, dict[str, str]] | None:
    if create and not value:
        raise _FieldError("Value error, Each user needs at least one proxy")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _FieldError("Input should be a valid dictionary")
    proxies = {}
    for protocol, settings in value.items():
        if protocol not in PROTOCOLS:
            raise _FieldError(f"Value error, '{protocol}' is not a valid ProxyTypes")
        proxies[protocol] = _proxy_settings(protocol, settings)
    return proxies


def _revoked(protocol: str, settings: dict[str, str]) -> dict[str, str]:
    fresh = dict(settings)
    if protocol in ("vmess", "vless"):
        fresh["id"] = str(uuid.uuid4())
    else:
        fresh["password"] = _random_password()
    return fresh


def _tag_list(value: Any, protocol: str) -> list[str]:
    if not isinstance(value, list):
        raise _FieldError("Input should be a valid list", protocol)
    return [_str(tag, str(index)) for index, tag in enumerate(value)]


# -- small pure helpers ---------------------------------------------------------------------


def _json(payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        body=msgspec.json.encode(payload),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _is_json_content_type(value: str | None) -> bool:
    if not value:
        return True
    mime = value.split(";", 1)[0].strip().lower()
    maintype, _, subtype = mime.partition("/")
    return maintype == "application" and (subtype == "json" or subtype.endswith("+json"))


async def _json_body(request: web.Request) -> Any:
    """The body as FastAPI sees it: parsed JSON, raw bytes (other types) or _MISSING."""
    raw = await request.read()
    if not raw:
        return _MISSING
    if not _is_json_content_type(request.headers.get("Content-Type")):
        return raw
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            position = exc.pos if isinstance(exc, json.JSONDecodeError) else exc.start
            raise _ApiError(422, {str(position): "JSON decode error"}) from None


def _body_object(body: Any) -> dict[str, Any]:
    if body is _MISSING:
        raise _ApiError(422, {"body": "Field required"})
    if not isinstance(body, dict):
        raise _ApiError(422, {"body": "Input should be a valid dictionary or object to extract fields from"})
    return body


def _query_int(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        return _int(raw)
    except _FieldError as exc:
        raise _ApiError(422, {name: exc.message}) from None


def _parse_window(
    start: str | None, end: str | None, now: datetime, local: timezone = UTC
) -> tuple[float, float]:
    """Marzban's validate_dates: ISO datetimes, default the last 30 days, end after start.

    A date without a zone is read in the panel host's local time (`local`), as the
    real panel does; `...Z` or an offset is taken as given.
    """
    try:
        start_at = _aware(datetime.fromisoformat(start), local) if start else now - USAGE_WINDOW
        end_at = _aware(datetime.fromisoformat(end), local) if end else now
    except ValueError:
        raise _ApiError(400, "Invalid date range or format") from None
    if end and end_at < start_at:
        raise _ApiError(400, "Start date must be before end date")
    return start_at.timestamp(), end_at.timestamp()


def _aware(moment: datetime, local: timezone = UTC) -> datetime:
    return moment.replace(tzinfo=local) if moment.tzinfo is None else moment


def _like(pattern: str) -> re.Pattern[str]:
    """SQL `ILIKE '%pattern%'` as the panel's search runs it: `_` and `%` are wildcards."""
    parts = [".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern]
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


async def _decode(request: web.Request, kind: type[_T]) -> _T:
    raw = await request.read()
    try:
        return msgspec.json.decode(raw or b"{}", type=kind)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise _ApiError(400, str(exc)) from None


def _remark(template: str, username: str, inbound: Inbound) -> str:
    return (
        template.replace("{USERNAME}", username)
        .replace("{PROTOCOL}", inbound.protocol.upper())
        .replace("{TRANSPORT}", inbound.network)
    )


def _link(protocol: str, settings: dict[str, str], inbound: Inbound, address: str, remark: str) -> str:
    tls = "" if inbound.tls == "none" else inbound.tls
    if protocol == "vmess":
        payload = {
            "add": address,
            "aid": "0",
            "host": "",
            "id": settings["id"],
            "net": inbound.network,
            "path": inbound.path,
            "port": inbound.port,
            "ps": remark,
            "scy": "auto",
            "tls": tls,
            "type": "none",
            "v": "2",
        }
        encoded = base64.b64encode(json.dumps(payload, sort_keys=True).encode()).decode()
        return f"vmess://{encoded}"
    if protocol == "shadowsocks":
        secret = f"{settings['method']}:{settings['password']}"
        encoded = base64.b64encode(secret.encode()).decode()
        return f"ss://{encoded}@{address}:{inbound.port}#{quote(remark)}"
    query: dict[str, str] = {
        "security": inbound.tls,
        "type": inbound.network,
        "headerType": "",
        "path": inbound.path,
        "host": "",
    }
    if inbound.tls in ("tls", "reality"):
        query["sni"] = inbound.sni
        query["fp"] = inbound.fp
    if inbound.tls == "reality":
        query["pbk"] = inbound.pbk
        query["sid"] = inbound.sid
    flow = settings.get("flow", "")
    if flow and inbound.tls in ("tls", "reality") and inbound.network in ("tcp", "kcp"):
        query["flow"] = flow
    secret = settings["id"] if protocol == "vless" else settings["password"]
    return f"{protocol}://{secret}@{address}:{inbound.port}?{urlencode(query)}#{quote(remark)}"


class MarzbanEmulator:
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

    # -- internals: state -------------------------------------------------------------------

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC).replace(tzinfo=None)

    def _tags(self, protocol: str) -> list[str]:
        return [inbound.tag for inbound in self.inbounds if inbound.protocol == protocol]

    def _add_node_from_spec(self, spec: NodeSpec) -> _Node:
        if spec.status not in NODE_STATUSES:
            raise ValueError(f"status must be one of {NODE_STATUSES}")
        node = _Node(
            id=self._next_node_id,
            name=spec.name,
            address=spec.address,
            port=spec.port,
            api_port=spec.api_port,
            usage_coefficient=float(spec.usage_coefficient),
            status=spec.status,
            message=spec.message,
            xray_version=XRAY_VERSION if spec.status == "connected" else None,
            reachable=spec.reachable,
        )
        if spec.status == "error" and spec.message is None:
            node.message = NODE_REFUSED
        if spec.status == "connecting":
            node.connect_at = self._clock() + self.node_connect_delay
        self._next_node_id += 1
        self._nodes[node.id] = node
        if spec.uplink or spec.downlink:
            self._node_usages.append((self._clock(), node.id, spec.uplink, spec.downlink))
        if spec.add_as_new_host:
            self._add_node_host(node)
        return node

    def _add_node_host(self, node: _Node) -> None:
        remark = f"{node.name} ({{USERNAME}}) [{{PROTOCOL}} - {{TRANSPORT}}]"
        for hosts in self._hosts.values():
            hosts.append((remark, node.address))

    def _settle_nodes(self) -> None:
        now = self._clock()
        for node in self._nodes.values():
            if node.status == "connecting" and node.connect_at is not None and node.connect_at <= now:
                node.connect_at = None
                if node.reachable:
                    node.status, node.message, node.xray_version = "connected", None, XRAY_VERSION
                else:
                    node.status, node.message, node.xray_version = "error", NODE_REFUSED, None

    def _reconnect(self, node: _Node) -> None:
        # The real panel keeps the last error's message while it reconnects.
        node.status, node.xray_version = "connecting", None
        node.connect_at = self._clock() + self.node_connect_delay

    def _sync_xray(self, user: _User) -> None:
        """What the panel pushes to Xray after a change: active users in, others out."""
        if user.status in ("active", "on_hold"):
            self._xray.add(user.username)
        else:
            self._xray.discard(user.username)

    def _node_totals(
        self, node_id: int | None, start: float = -math.inf, end: float = math.inf
    ) -> tuple[int, int]:
        uplink = downlink = 0
        for at, usage_node, up, down in self._node_usages:
            if usage_node == node_id and start <= at <= end:
                uplink += up
                downlink += down
        return uplink, downlink

    def _new_user(
        self,
        *,
        username: str,
        proxies: dict[str, dict[str, str]],
        excluded: dict[str, list[str]],
        status: str = "active",
        expire: int | None = None,
        data_limit: int | None = None,
        data_limit_reset_strategy: str = "no_reset",
        note: str | None = None,
        on_hold_expire_duration: int | None = None,
        on_hold_timeout: datetime | None = None,
        auto_delete_in_days: int | None = None,
        next_plan: dict[str, Any] | None = None,
    ) -> _User:
        return _User(
            username=username,
            proxies=proxies,
            excluded=excluded,
            status=status,
            expire=expire or None,
            data_limit=data_limit or None,
            data_limit_reset_strategy=data_limit_reset_strategy,
            note=note,
            on_hold_expire_duration=on_hold_expire_duration or None,
            on_hold_timeout=on_hold_timeout or None,
            auto_delete_in_days=auto_delete_in_days,
            next_plan=next_plan,
            created_at=self._now(),
            sub_key=secrets.token_hex(8),
        )

    def _user_inbounds(self, user: _User) -> dict[str, list[str]]:
        return {
            protocol: [tag for tag in self._tags(protocol) if tag not in user.excluded.get(protocol, [])]
            for protocol in user.proxies
        }

    def _links(self, user: _User, inbounds: dict[str, list[str]]) -> list[str]:
        links = []
        for protocol, tags in inbounds.items():
            settings = user.proxies[protocol]
            for tag in tags:
                inbound = self._inbound_by_tag[tag]
                for template, address in self._hosts.get(tag, []):
                    remark = _remark(template, user.username, inbound)
                    links.append(_link(protocol, settings, inbound, address, remark))
        return links

    def _sub_token(self, user: _User) -> str:
        data = f"{user.username},{math.ceil(self._clock())}"
        encoded = _b64url(data.encode())
        return encoded + self._sub_signature(encoded, user.sub_key)

    def _sub_signature(self, encoded: str, key: str) -> str:
        digest = hashlib.sha256((encoded + self._sub_secret + key).encode()).digest()
        return base64.urlsafe_b64encode(digest).decode()[:SUB_SIGNATURE_LEN]

    def _subscription_url(self, user: _User) -> str:
        prefix = self.subscription_url_prefix.replace("*", secrets.token_hex(8))
        return f"{prefix}/sub/{self._sub_token(user)}"

    def _user_by_sub_token(self, token: str) -> _User:
        not_found = _ApiError(404, "Not Found")
        if len(token) <= SUB_SIGNATURE_LEN:
            raise not_found
        encoded, signature = token[:-SUB_SIGNATURE_LEN], token[-SUB_SIGNATURE_LEN:]
        try:
            username, _, issued = _b64url_decode(encoded).decode().rpartition(",")
            int(issued)
        except ValueError:
            raise not_found from None
        user = self._users.get(username)
        if user is None or not hmac.compare_digest(signature, self._sub_signature(encoded, user.sub_key)):
            raise not_found
        return user

    def _admin_json(self) -> dict[str, Any]:
        return {
            "username": self.admin_username,
            "is_sudo": True,
            "telegram_id": None,
            "discord_webhook": None,
            "users_usage": None if self.sudo_from_env else self._admin_users_usage,
        }

    def _user_json(self, user: _User) -> dict[str, Any]:
        inbounds = self._user_inbounds(user)
        return {
            "proxies": {protocol: dict(settings) for protocol, settings in user.proxies.items()},
            "expire": user.expire,
            "data_limit": user.data_limit,
            "data_limit_reset_strategy": user.data_limit_reset_strategy,
            "inbounds": inbounds,
            "note": user.note,
            "sub_updated_at": _iso(user.sub_updated_at),
            "sub_last_user_agent": user.sub_last_user_agent,
            "online_at": _iso(user.online_at),
            "on_hold_expire_duration": user.on_hold_expire_duration,
            "on_hold_timeout": _iso(user.on_hold_timeout),
            "auto_delete_in_days": user.auto_delete_in_days,
            "next_plan": None if user.next_plan is None else dict(user.next_plan),
            "username": user.username,
            "status": user.status,
            "used_traffic": user.used_traffic,
            "lifetime_used_traffic": user.traffic_before_resets + user.used_traffic,
            "created_at": _iso(user.created_at),
            "links": self._links(user, inbounds),
            "subscription_url": self._subscription_url(user),
            "excluded_inbounds": {
                protocol: list(user.excluded.get(protocol, [])) for protocol in user.proxies
            },
            "admin": None if self.sudo_from_env else self._admin_json(),
        }

    def _node_json(self, node: _Node) -> dict[str, Any]:
        return {
            "name": node.name,
            "address": node.address,
            "port": node.port,
            "api_port": node.api_port,
            "usage_coefficient": node.usage_coefficient,
            "id": node.id,
            "xray_version": node.xray_version,
            "status": node.status,
            "message": node.message,
        }

    def _usage_rows(self, users: Iterable[_User], start: float, end: float) -> list[dict]:
        totals: dict[int | None, int] = {None: 0}
        names: dict[int | None, str] = {None: "Master"}
        for node in self._nodes.values():
            totals[node.id] = 0
            names[node.id] = node.name
        for user in users:
            for at, node_id, counted in user.usages:
                if node_id in totals and start <= at <= end:
                    totals[node_id] += counted
        return [
            {"node_id": node_id, "node_name": names[node_id], "used_traffic": used}
            for node_id, used in totals.items()
        ]

    # -- internals: HTTP plumbing -----------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    def _matches(rule: _Delay | _Failure | _Hold, request: web.Request) -> bool:
        if rule.method is not None and rule.method.upper() != request.method:
            return False
        return rule.path is None or fnmatch.fnmatchcase(request.path, rule.path)

    def _take_failure(self, request: web.Request) -> int | None:
        failure = self._failure
        if failure is None or not self._matches(failure, request):
            return None
        if failure.remaining is not None:
            failure.remaining -= 1
            if failure.remaining <= 0:
                self._failure = None
        return failure.status

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith(CONTROL_PREFIX + "/"):
            http_exception = request.match_info.http_exception
            if http_exception is not None:
                return _json({"detail": http_exception.reason}, http_exception.status)
            try:
                return await handler(request)
            except _ApiError as exc:
                return exc.response()
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else request.path
        body = await request.read()
        record = RequestRecord(
            method=request.method,
            path=request.path,
            query=request.query_string,
            body=body.decode("utf-8", "replace"),
            at=self._clock(),
        )
        self.requests.append(record)
        self.counters[f"{request.method} {route}"] += 1
        started = time.monotonic()
        response = await self._serve_api(request, handler)
        record.status = response.status
        logger.debug(
            "marzban emulator %s: %s %s -> %s in %.3fs",
            self.base_url,
            request.method,
            request.path_qs,
            response.status,
            time.monotonic() - started,
        )
        return response

    async def _serve_api(self, request: web.Request, handler: Any) -> web.StreamResponse:
        delay = self._delay
        if delay is not None and self._matches(delay, request):
            await asyncio.sleep(delay.seconds)
        status = self._take_failure(request)
        if status is not None:
            return web.Response(status=status, text=http.HTTPStatus(status).phrase)
        http_exception = request.match_info.http_exception
        if http_exception is not None:
            if http_exception.status == 405:
                return _json({"detail": "Method Not Allowed"}, 405)
            return await self._not_found(request)
        self._settle_nodes()
        self.review_users()
        try:
            response = await handler(request)
        except _ApiError as exc:
            return exc.response()
        hold = self._hold
        if hold is not None and response.status < 400 and self._matches(hold, request):
            if hold.remaining is not None:
                hold.remaining -= 1
                if hold.remaining <= 0:
                    self._hold = None
            await asyncio.sleep(hold.seconds)
        return response

    async def _not_found(self, request: web.Request) -> web.Response:
        path = request.path
        if len(path) > 1 and path.endswith("/"):
            stripped = path.rstrip("/") or "/"
            match = await request.app.router.resolve(request.clone(rel_url=stripped))
            if match.http_exception is None or match.http_exception.status == 405:
                location = request.url.with_path(stripped, keep_query=True)
                return web.Response(status=307, headers={"Location": str(location)})
        return _json({"detail": "Not Found"}, 404)

    def _authenticate(self, request: web.Request) -> None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if not header or scheme.lower() != "bearer":
            raise _ApiError(401, "Not authenticated", BEARER)
        if not self._token_valid(token):
            raise _ApiError(401, "Could not validate credentials", BEARER)

    def _issue_token(self) -> str:
        now = self._clock()
        payload = {
            "sub": self.admin_username,
            "access": "sudo",
            "iat": int(now),
            "exp": int(now + self.token_ttl_seconds),
        }
        signing_input = f"{_b64url(JWT_HEADER)}.{_b64url(msgspec.json.encode(payload))}"
        signature = hmac.new(self._jwt_secret, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64url(signature)}"

    def _token_valid(self, token: str) -> bool:
        try:
            header, payload, signature = token.split(".")
            expected = hmac.new(self._jwt_secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(_b64url_decode(signature), expected):
                return False
            claims = msgspec.json.decode(_b64url_decode(payload))
        except (ValueError, msgspec.DecodeError):
            return False
        if not isinstance(claims, dict) or claims.get("sub") != self.admin_username:
            return False
        issued = claims.get("iat")
        reset_at = self._password_reset_at
        if reset_at is not None and (not isinstance(issued, int) or reset_at > issued):
            return False
        expires = claims.get("exp")
        return isinstance(expires, int | float) and expires > self._clock()

    def _user_or_404(self, request: web.Request) -> _User:
        user = self._users.get(request.match_info["username"])
        if user is None:
            raise _ApiError(404, "User not found")
        return user

    def _node_or_404(self, request: web.Request) -> _Node:
        raw = request.match_info["node_id"]
        try:
            node_id = _int(raw)
        except _FieldError as exc:
            raise _ApiError(422, {"node_id": exc.message}) from None
        node = self._nodes.get(node_id)
        if node is None:
            raise _ApiError(404, "Node not found")
        return node

    def _check_protocols(self, proxies: Iterable[str]) -> None:
        for protocol in proxies:
            if not self._tags(protocol):
                raise _ApiError(
                    400,
                    f"Protocol ProxyTypes.{PROTOCOL_ENUM_NAMES[protocol]} is disabled on your server",
                )

    # -- HTTP: admin, system, core ----------------------------------------------------------

    async def _login(self, request: web.Request) -> web.Response:
        form = await request.post()
        errors = {}
        for field in ("username", "password"):
            if field not in form:
                errors[field] = "Field required"
        grant_type = form.get("grant_type")
        if grant_type is not None and grant_type != "password":
            errors["grant_type"] = "String should match pattern '^password$'"
        if errors:
            raise _ApiError(422, errors)
        username_ok = hmac.compare_digest(str(form["username"]).encode(), self.admin_username.encode())
        password_ok = hmac.compare_digest(str(form["password"]).encode(), self.admin_password.encode())
        if not (username_ok and password_ok):
            raise _ApiError(401, "Incorrect username or password", BEARER)
        self.logins += 1
        return _json({"access_token": self._issue_token(), "token_type": "bearer"})

    async def _get_admin(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        return _json(self._admin_json())

    async def _get_system(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        return _json(self.system_stats())

    async def _get_inbounds(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        grouped: dict[str, list[dict[str, Any]]] = {}
        for inbound in self.inbounds:
            if inbound.protocol in PROTOCOLS:
                grouped.setdefault(inbound.protocol, []).append(
                    {
                        "tag": inbound.tag,
                        "protocol": inbound.protocol,
                        "network": inbound.network,
                        "tls": inbound.tls,
                        "port": inbound.port,
                    }
                )
        return _json(grouped)

    async def _get_core(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        return _json({"version": XRAY_VERSION, "started": True, "logs_websocket": "/api/core/logs"})

    async def _get_core_config(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        inbounds = []
        for inbound in self.inbounds:
            stream: dict[str, Any] = {"network": inbound.network, "security": inbound.tls}
            if inbound.network == "ws":
                stream["wsSettings"] = {"path": inbound.path}
            if inbound.tls == "reality":
                stream["realitySettings"] = {
                    "show": False,
                    "dest": f"{inbound.sni}:443",
                    "serverNames": [inbound.sni],
                    "privateKey": "<redacted>",
                    "shortIds": [inbound.sid],
                }
            settings: dict[str, Any] = {"clients": []}
            if inbound.protocol == "vless":
                settings["decryption"] = "none"
            inbounds.append(
                {
                    "tag": inbound.tag,
                    "listen": "0.0.0.0",
                    "port": inbound.port,
                    "protocol": inbound.protocol,
                    "settings": settings,
                    "streamSettings": stream,
                    "sniffing": {"enabled": True, "destOverride": ["http", "tls", "quic"]},
                }
            )
        config = {
            "log": {"loglevel": "warning"},
            "routing": {"rules": [{"ip": ["geoip:private"], "outboundTag": "BLOCK", "type": "field"}]},
            "inbounds": inbounds,
            "outbounds": [
                {"protocol": "freedom", "tag": "DIRECT"},
                {"protocol": "blackhole", "tag": "BLOCK"},
            ],
        }
        return _json(config)

    # -- HTTP: users ------------------------------------------------------------------------

    def _validate_user(self, body: dict[str, Any], *, create: bool) -> dict[str, Any]:
        fields = _Fields(body)
        fields.take("proxies", lambda value: _proxies(value, create=create))
        fields.take("expire", _opt_int)
        fields.take("data_limit", _data_limit)
        fields.take(
            "data_limit_reset_strategy",
            lambda value: None if value is None else _choice(value, RESET_STRATEGIES),
        )
        if create:
            proxies = fields.values.get("proxies") or {}
            fields.take("inbounds", lambda value: self._create_inbounds(value, proxies))
        else:
            fields.take("inbounds", self._modify_inbounds)
        fields.take("note", _note)
        fields.take("on_hold_expire_duration", _zero_is_none_int)
        fields.take("on_hold_timeout", _zero_is_none_datetime)
        fields.take("auto_delete_in_days", _opt_int)
        fields.take("next_plan", _next_plan)
        if create:
            fields.take("username", _username, required=True)
        allowed = CREATE_STATUSES if create else MODIFY_STATUSES
        fields.take("status", lambda value: _user_status(value, allowed, fields.values))
        return fields.check()

    def _create_inbounds(self, value: Any, proxies: dict[str, Any]) -> dict[str, list[str]]:
        if not isinstance(value, dict):
            raise _FieldError("Input should be a valid dictionary")
        chosen: dict[str, list[str]] = {}
        for protocol in proxies:
            tags = value.get(protocol)
            if tags:
                tags = _tag_list(tags, protocol)
                for tag in tags:
                    if tag not in self._inbound_by_tag:
                        raise _FieldError(f"Value error, Inbound {tag} doesn't exist")
                chosen[protocol] = tags
            else:
                chosen[protocol] = self._tags(protocol)
        return chosen

    def _modify_inbounds(self, value: Any) -> dict[str, list[str]] | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise _FieldError("Input should be a valid dictionary")
        chosen: dict[str, list[str]] = {}
        for protocol, tags in value.items():
            tag_list = _tag_list(tags, protocol)
            for tag in tag_list:
                if tag not in self._inbound_by_tag:
                    raise _FieldError(f"Value error, Inbound {tag} doesn't exist")
            if protocol not in PROTOCOLS:
                raise _FieldError(f"Input should be {_choices(PROTOCOLS)}", "[key]")
            chosen[protocol] = tag_list
        return chosen

    def _excluded(self, protocol: str, chosen: list[str]) -> list[str]:
        return [tag for tag in self._tags(protocol) if tag not in chosen]

    async def _add_user(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        self._authenticate(request)
        values = self._validate_user(_body_object(body), create=True)
        proxies: dict[str, dict[str, str]] = values.get("proxies") or {}
        self._check_protocols(proxies)
        username = values["username"]
        if username in self._users:
            raise _ApiError(409, "User already exists")
        chosen = values.get("inbounds", {})
        user = self._new_user(
            username=username,
            proxies=proxies,
            excluded={p: self._excluded(p, chosen.get(p, [])) for p in proxies},
            status=values.get("status") or "active",
            expire=values.get("expire"),
            data_limit=values.get("data_limit"),
            data_limit_reset_strategy=values.get("data_limit_reset_strategy") or "no_reset",
            note=values.get("note"),
            on_hold_expire_duration=values.get("on_hold_expire_duration"),
            on_hold_timeout=values.get("on_hold_timeout"),
            auto_delete_in_days=values.get("auto_delete_in_days"),
            next_plan=values.get("next_plan"),
        )
        self._users[username] = user
        self._sync_xray(user)
        response = _json(self._user_json(user))
        hang = self._hang
        if hang is not None:
            if hang.remaining is not None:
                hang.remaining -= 1
                if hang.remaining <= 0:
                    self._hang = None
            await asyncio.sleep(hang.seconds)
        return response

    async def _get_user(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        return _json(self._user_json(self._user_or_404(request)))

    async def _modify_user(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        self._authenticate(request)
        user = self._user_or_404(request)
        values = self._validate_user(_body_object(body), create=False)
        proxies = values.get("proxies")
        if proxies:
            self._check_protocols(proxies)
        self._apply_modify(user, values)
        self._sync_xray(user)
        return _json(self._user_json(user))

    def _apply_modify(self, user: _User, values: dict[str, Any]) -> None:
        proxies = values.get("proxies")
        if proxies:
            user.excluded = {p: user.excluded.get(p, []) for p in proxies}
            user.proxies = dict(proxies)
        inbounds = values.get("inbounds")
        if inbounds:
            for protocol, tags in inbounds.items():
                if protocol in user.proxies:
                    user.excluded[protocol] = self._excluded(protocol, tags)
        if values.get("status") is not None:
            user.status = values["status"]
        if values.get("data_limit") is not None:
            user.data_limit = values["data_limit"] or None
            if user.status not in ("expired", "disabled"):
                if not user.data_limit or user.used_traffic < user.data_limit:
                    if user.status != "on_hold":
                        user.status = "active"
                else:
                    user.status = "limited"
        if values.get("expire") is not None:
            user.expire = values["expire"] or None
            if user.status in ("active", "expired"):
                if not user.expire or user.expire > self._clock():
                    user.status = "active"
                else:
                    user.status = "expired"
        if values.get("note") is not None:
            user.note = values["note"] or None
        if values.get("data_limit_reset_strategy") is not None:
            user.data_limit_reset_strategy = values["data_limit_reset_strategy"]
        if values.get("on_hold_timeout") is not None:
            user.on_hold_timeout = values["on_hold_timeout"]
        if values.get("on_hold_expire_duration") is not None:
            user.on_hold_expire_duration = values["on_hold_expire_duration"]
        if values.get("auto_delete_in_days") is not None:
            user.auto_delete_in_days = values["auto_delete_in_days"]
        if values.get("next_plan") is not None:
            user.next_plan = values["next_plan"]
        user.edit_at = self._now()

    async def _delete_user(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        user = self._user_or_404(request)
        del self._users[user.username]
        if self.sudo_from_env:
            # v0.8.4 reads the deleted user's owning admin, which the env admin's users
            # lack: the row is gone, the answer is a 500, and Xray still serves the user.
            return web.Response(status=500, text="Internal Server Error")
        self._xray.discard(user.username)
        return _json({"detail": "User successfully deleted"})

    async def _reset_user(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        user = self._user_or_404(request)
        user.traffic_before_resets += user.used_traffic
        user.used_traffic = 0
        user.usages.clear()
        # Marzban tests `status not in (expired or disabled)`: only `expired` stays.
        if user.status != "expired":
            user.status = "active"
        self._sync_xray(user)
        return _json(self._user_json(user))

    async def _revoke_sub(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        user = self._user_or_404(request)
        user.sub_key = secrets.token_hex(8)
        user.proxies = {p: _revoked(p, settings) for p, settings in user.proxies.items()}
        user.edit_at = self._now()
        return _json(self._user_json(user))

    async def _get_user_usage(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        user = self._user_or_404(request)
        start, end = self._window(request)
        return _json({"username": user.username, "usages": self._usage_rows([user], start, end)})

    async def _get_users(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        query = request.query
        offset = _query_int(request, "offset")
        limit = _query_int(request, "limit")
        status = query.get("status")
        if status is not None and status not in USER_STATUSES:
            raise _ApiError(422, {"status": f"Input should be {_choices(USER_STATUSES)}"})
        sort_keys: list[str] = []
        sort = query.get("sort")
        if sort is not None:
            for option in sort.strip(",").split(","):
                if option.lstrip("-") not in SORT_FIELDS or option.count("-") > 1:
                    raise _ApiError(400, f'"{option}" is not a valid sort option')
                sort_keys.append(option)
        users = list(self._users.values())
        usernames = query.getall("username", [])
        if usernames:
            users = [u for u in users if u.username in usernames]
        admins = query.getall("admin", [])
        if admins and self.admin_username not in admins:
            users = []
        search = query.get("search")
        if search:
            like = _like(search)
            users = [
                u
                for u in users
                if like.search(u.username) or (u.note is not None and like.search(u.note))
            ]
        if status is not None:
            users = [u for u in users if u.status == status]
        for option in reversed(sort_keys):
            users.sort(key=_sort_key(option.lstrip("-")), reverse=option.startswith("-"))
        total = len(users)
        if offset:
            users = users[max(offset, 0) :]
        if limit is not None:
            users = users[: max(limit, 0)]
        return _json({"users": [self._user_json(u) for u in users], "total": total})

    async def _get_users_usage(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        start, end = self._window(request)
        return _json({"usages": self._usage_rows(self._users.values(), start, end)})

    async def _get_expired_users(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        bounds = []
        for name in ("expired_after", "expired_before"):
            raw = request.query.get(name)
            try:
                bounds.append(None if raw is None else _datetime(raw))
            except _FieldError as exc:
                raise _ApiError(422, {name: exc.message}) from None
        after = bounds[0].replace(tzinfo=UTC) if bounds[0] else datetime.min.replace(tzinfo=UTC)
        before = bounds[1].replace(tzinfo=UTC) if bounds[1] else self._aware_now()
        names = [
            u.username
            for u in self._users.values()
            if u.status in ("expired", "limited")
            and u.expire is not None
            and after.timestamp() <= u.expire <= before.timestamp()
        ]
        return _json(names)

    def _aware_now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def _window(self, request: web.Request) -> tuple[float, float]:
        query = request.query
        return _parse_window(query.get("start"), query.get("end"), self._aware_now(), self.local_tz)

    # -- HTTP: nodes ------------------------------------------------------------------------

    async def _get_node_settings(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        certificate = (
            "-----BEGIN CERTIFICATE-----\n"
            + base64.encodebytes(hashlib.sha512(self._sub_secret.encode()).digest() * 6).decode()
            + "-----END CERTIFICATE-----\n"
        )
        return _json({"min_node_version": "v0.2.0", "certificate": certificate})

    async def _add_node(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        self._authenticate(request)
        fields = _Fields(_body_object(body))
        fields.take("name", _str, required=True)
        fields.take("address", _str, required=True)
        fields.take("port", _int)
        fields.take("api_port", _int)
        fields.take("usage_coefficient", _positive_float)
        fields.take("add_as_new_host", _bool)
        values = fields.check()
        name = values["name"]
        if any(node.name == name for node in self._nodes.values()):
            raise _ApiError(409, f'Node "{name}" already exists')
        node = self._add_node_from_spec(
            NodeSpec(
                name=name,
                address=values["address"],
                port=values.get("port", 62050),
                api_port=values.get("api_port", 62051),
                status="connecting",
                reachable=self.new_nodes_reachable,
                add_as_new_host=values.get("add_as_new_host", True),
            )
        )
        return _json(self._node_json(node))

    async def _get_node(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        return _json(self._node_json(self._node_or_404(request)))

    async def _modify_node(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        self._authenticate(request)
        node = self._node_or_404(request)
        fields = _Fields(_body_object(body))
        for name, parse in (
            ("name", _str),
            ("address", _str),
            ("port", _int),
            ("api_port", _int),
            ("usage_coefficient", _positive_float),
            ("status", lambda value: _choice(value, NODE_STATUSES)),
        ):
            fields.take(name, lambda value, parse=parse: None if value is None else parse(value))
        values = fields.check()
        new_name = values.get("name")
        if new_name is not None and any(
            other.name == new_name and other.id != node.id for other in self._nodes.values()
        ):
            raise _ApiError(409, f'Node "{new_name}" already exists')
        for name in ("name", "address", "port", "api_port"):
            if values.get(name) is not None:
                setattr(node, name, values[name])
        if values.get("usage_coefficient"):
            node.usage_coefficient = values["usage_coefficient"]
        if values.get("status") == "disabled":
            node.status, node.message, node.xray_version = "disabled", None, None
            node.connect_at = None
        else:
            self._reconnect(node)
        return _json(self._node_json(node))

    async def _delete_node(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        node = self._node_or_404(request)
        del self._nodes[node.id]
        return _json({})

    async def _reconnect_node(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        node = self._node_or_404(request)
        if node.status != "disabled":
            self._reconnect(node)
        return _json({"detail": "Reconnection task scheduled"})

    async def _get_nodes(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        return _json([self._node_json(node) for node in self._nodes.values()])

    async def _get_nodes_usage(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        start, end = self._window(request)
        rows = []
        for node_id, name in [(None, "Master")] + [(n.id, n.name) for n in self._nodes.values()]:
            uplink, downlink = self._node_totals(node_id, start, end)
            rows.append({"node_id": node_id, "node_name": name, "uplink": uplink, "downlink": downlink})
        return _json({"usages": rows})

    # -- HTTP: subscription -----------------------------------------------------------------

    def _subscription(self, request: web.Request) -> web.Response:
        user = self._user_by_sub_token(request.match_info["token"])
        user.sub_updated_at = self._now()
        user.sub_last_user_agent = request.headers.get("User-Agent", "")
        links = self._links(user, self._user_inbounds(user))
        body = base64.b64encode("\n".join(links).encode()).decode()
        headers = {
            "content-disposition": f'attachment; filename="{user.username}"',
            "profile-web-page-url": str(request.url),
            "support-url": "https://t.me/",
            "profile-title": "base64:" + base64.b64encode(b"Subscription").decode(),
            "profile-update-interval": "12",
            "subscription-userinfo": (
                f"upload=0; download={user.used_traffic}; "
                f"total={user.data_limit or 0}; expire={user.expire or 0}"
            ),
        }
        return web.Response(text=body, content_type="text/plain", charset="utf-8", headers=headers)

    async def _get_subscription(self, request: web.Request) -> web.Response:
        return self._subscription(request)

    async def _get_subscription_typed(self, request: web.Request) -> web.Response:
        if request.match_info["client_type"] != "v2ray":
            raise _ApiError(404, "Not Found")
        return self._subscription(request)

    async def _get_subscription_info(self, request: web.Request) -> web.Response:
        user = self._user_by_sub_token(request.match_info["token"])
        info = self._user_json(user)
        for hidden in ("admin", "excluded_inbounds", "note", "inbounds", "auto_delete_in_days"):
            del info[hidden]
        return _json(info)

    async def _get_subscription_usage(self, request: web.Request) -> web.Response:
        user = self._user_by_sub_token(request.match_info["token"])
        start, end = self._window(request)
        return _json({"usages": self._usage_rows([user], start, end), "username": user.username})

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


def _sort_key(field: str) -> Callable[[_User], Any]:
    """SQLite order: NULL before any value ascending (so after every value descending)."""
    if field in ("username", "created_at"):
        return lambda user: getattr(user, field)
    return lambda user: (getattr(user, field) is not None, getattr(user, field) or 0)


def _user_status(value: Any, allowed: tuple[str, ...], values: Mapping[str, Any]) -> str | None:
    if value == "on_hold":
        if not values.get("on_hold_expire_duration"):
            raise _FieldError("Value error, User cannot be on hold without a valid on_hold_expire_duration.")
        if values.get("expire"):
            raise _FieldError("Value error, User cannot be on hold with specified expire.")
    if value is None:
        return None
    return _choice(value, allowed)


# -- running alone --------------------------------------------------------------------------


async def serve(
    host: str,
    ports: list[int],
    *,
    username: str,
    password: str,
    nodes: int,
    users: int,
    subscription_url_prefix: str,
    sudo_from_env: bool = False,
    local_utc_offset_minutes: int = 0,
) -> None:
    panels = [
        MarzbanEmulator(
            admin_username=username,
            admin_password=password,
            nodes=[
                NodeSpec(name=f"panel{index}-node{n}", address=f"127.0.{index}.{n}")
                for n in range(1, nodes + 1)
            ],
            subscription_url_prefix=subscription_url_prefix,
            sudo_from_env=sudo_from_env,
            local_utc_offset=timedelta(minutes=local_utc_offset_minutes),
        )
        for index in range(1, len(ports) + 1)
    ]

    def ready() -> None:
        for index, panel in enumerate(panels, start=1):
            panel.add_users(users)
            logger.info(
                "marzban panel %d: %s (admin %s / %s, %d nodes, %d users)",
                index,
                panel.base_url,
                username,
                password,
                nodes,
                users,
            )

    await standalone.run_until_signal(host, list(zip(panels, ports, strict=True)), ready)


def main(argv: list[str] | None = None) -> None:
    parser = standalone.arguments("Local Marzban v0.8.4 panel(s)", prog="python -m orbit.sandbox.marzban")
    parser.add_argument("--port", type=int, action="append", help="one panel per --port (default 8001)")
    parser.add_argument("--username", default="admin", help="sudo admin username")
    parser.add_argument("--password", default="admin", help="sudo admin password")
    parser.add_argument("--nodes", type=int, default=0, help="connected nodes per panel")
    parser.add_argument("--users", type=int, default=0, help="synthetic users per panel")
    parser.add_argument(
        "--subscription-url-prefix",
        default="",
        help="like XRAY_SUBSCRIPTION_URL_PREFIX; empty keeps subscription_url relative",
    )
    parser.add_argument(
        "--sudo-from-env",
        action="store_true",
        help="the admin is the panel's SUDO_USERNAME one: users show admin null, DELETE answers 500",
    )
    parser.add_argument(
        "--local-utc-offset-minutes",
        type=int,
        default=0,
        help="the panel host's zone; usage dates without a zone are read in it (e.g. 210)",
    )
    args = standalone.parse(parser, argv)
    asyncio.run(
        serve(
            args.host,
            args.port or [8001],
            username=args.username,
            password=args.password,
            nodes=args.nodes,
            users=args.users,
            subscription_url_prefix=args.subscription_url_prefix,
            sudo_from_env=args.sudo_from_env,
            local_utc_offset_minutes=args.local_utc_offset_minutes,
        )
    )


if __name__ == "__main__":
    main()
