"""Errors and field validation as Marzban answers them (422: ``{"detail": {<field>: <msg>}}``)."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec
from aiohttp import web

from orbit.sandbox.marzban.constants import (
    NOTE_MAX,
    PROTOCOLS,
    SHADOWSOCKS_METHODS,
    USERNAME_ERROR,
    USERNAME_RE,
    XTLS_FLOWS,
)

# -- errors and field validation (Marzban's 422: {"detail": {<last loc element>: <msg>}}) ----


def _json(payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        body=msgspec.json.encode(payload),
        status=status,
        content_type="application/json",
        headers=headers,
    )


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
