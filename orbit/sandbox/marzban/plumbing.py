"""HTTP plumbing: the middleware (faults, records, errors), admin tokens, lookups by path."""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import hmac
import http
import logging
import time
from collections.abc import Iterable
from typing import Any

import msgspec
from aiohttp import web

from orbit.sandbox.marzban.constants import BEARER, CONTROL_PREFIX, JWT_HEADER, PROTOCOL_ENUM_NAMES
from orbit.sandbox.marzban.models import RequestRecord, _Delay, _Failure, _Hold, _Node, _User
from orbit.sandbox.marzban.validation import _ApiError, _FieldError, _int, _json
from orbit.sandbox.marzban.wire import _b64url, _b64url_decode

logger = logging.getLogger(__name__)


class _Plumbing:
    """What every request passes through before its handler."""

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
