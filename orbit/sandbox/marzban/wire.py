"""Small pure helpers: JSON bodies, base64url, ISO dates, query windows, LIKE patterns."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timezone
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from orbit.sandbox.marzban.constants import USAGE_WINDOW
from orbit.sandbox.marzban.validation import _MISSING, _ApiError, _FieldError, _int

_T = TypeVar("_T")


# -- small pure helpers ---------------------------------------------------------------------


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
