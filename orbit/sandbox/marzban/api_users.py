"""The panel's API for users: create, read, modify, delete, reset, revoke, usage, lists."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from orbit.sandbox.marzban.constants import (
    CREATE_STATUSES,
    MODIFY_STATUSES,
    PROTOCOLS,
    RESET_STRATEGIES,
    SORT_FIELDS,
    USER_STATUSES,
)
from orbit.sandbox.marzban.models import _User
from orbit.sandbox.marzban.validation import (
    _ApiError,
    _choice,
    _choices,
    _data_limit,
    _datetime,
    _FieldError,
    _Fields,
    _json,
    _next_plan,
    _note,
    _opt_int,
    _proxies,
    _revoked,
    _tag_list,
    _username,
    _zero_is_none_datetime,
    _zero_is_none_int,
)
from orbit.sandbox.marzban.wire import _body_object, _json_body, _like, _parse_window, _query_int


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


class _UserApi:
    """``/api/user*`` and ``/api/users*``."""

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
                u for u in users if like.search(u.username) or (u.note is not None and like.search(u.note))
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
