"""An aiohttp client for one Marzban v0.8.4 panel.

- Login is the OAuth2 password form (`POST /api/admin/token`). The token is kept
  in Redis under `marzban:{id}:token` with a TTL a little shorter than its JWT
  expiry, so every process shares one token and the panel sees one login (each
  login fires the panel's login notification). One process logs in at a time
  (`marzban:{id}:token:lock`); the others wait for its token.
- A 401 on a cached token drops that token (only if nobody replaced it yet),
  logs in again and repeats the request once. A panel refuses tokens issued in
  the same second as an admin password change, so a fresh token refused is
  dropped too (never cached), and after a second one more login is tried; a
  third 401 is `PanelAuthFailed`.
- Every request has a total timeout. Only calls that are safe to repeat are
  retried, a bounded number of times: reads, `PUT` (it sets fields), `DELETE`
  (a repeat answers 404, which callers count as done) and the usage reset.
  Creating a user is never retried here: provisioning checks the panel first.
- Errors map to `orbit.marzban.errors`: network errors, timeouts and 5xx →
  `PanelUnavailable`; 404 `User not found` → `PanelUserNotFound`; 409 →
  `PanelUserExists`; other 4xx → `PanelRejected` (422 `fields` keyed by field).

If Redis is unreachable the client still works: it logs in for itself.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from orbit import keys, metrics
from orbit.marzban.errors import (
    PanelAuthFailed,
    PanelRejected,
    PanelUnavailable,
    PanelUserExists,
    PanelUserNotFound,
)
from orbit.marzban.instances import Instance
from orbit.marzban.models import (
    Admin,
    ErrorBody,
    Inbound,
    NewUser,
    Node,
    NodesUsage,
    NodeUsage,
    PanelUser,
    RawUsersPage,
    SystemStats,
    Token,
    UsersPage,
)
from orbit.marzban.passwords import PanelPasswords, PasswordKeyError
from orbit.redis_owned import delete_if_owner

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_TIMEOUT = 10.0
DEFAULT_RETRIES = 1  # extra attempts for safe calls
DEFAULT_TOKEN_TTL = 3600  # when the token carries no readable `exp`
TOKEN_MARGIN = 60.0  # drop a cached token this long before it expires
RETRY_DELAY = 0.2  # doubled per attempt
# Marzban compares a token's whole-second `iat` with the exact time of the last
# password change: a token issued in that second is refused; one a second later works.
FRESH_TOKEN_RETRY_DELAY = 1.05
_TOKEN_WAIT_STEP = 0.05



def token_ttl(token: str, now: float | None = None) -> int:
    """Seconds to cache `token`: its JWT `exp` minus a margin; 0 = do not cache."""
    now = time.time() if now is None else now
    try:
        payload = token.split(".")[1]
        claims = msgspec.json.decode(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        exp = float(claims["exp"])
    except (IndexError, ValueError, KeyError, TypeError, msgspec.DecodeError):
        return DEFAULT_TOKEN_TTL
    remaining = exp - now
    return max(0, int(remaining - min(TOKEN_MARGIN, remaining * 0.1)))


def utc_param(moment: datetime) -> str:
    """A query date with its zone: the panel reads a date without one in its host's
    local time. A naive `moment` is taken as UTC."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def absolute_url(base_url: str, url: str) -> str:
    """Marzban returns `/sub/<token>` unless a prefix is configured: make it absolute."""
    if url.startswith(("http://", "https://")):
        return url
    return base_url.rstrip("/") + "/" + url.lstrip("/")


class MarzbanClient:
    def __init__(
        self,
        http: aiohttp.ClientSession,
        redis: Redis,
        instance: Instance,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        passwords: PanelPasswords | None = None,
    ) -> None:
        self.http = http
        # Opens the stored password (encrypted at rest); without it only plain text works.
        self.passwords = passwords or PanelPasswords(None)
        self.redis = redis
        self.instance = instance
        self.timeout = timeout
        self.retries = retries
        self._client_timeout = aiohttp.ClientTimeout(total=timeout)
        self._local_token: str | None = None  # used only while Redis is unreachable

    @property
    def instance_id(self) -> str:
        return self.instance.id

    def _url(self, path: str) -> str:
        return self.instance.base_url.rstrip("/") + path

    # --- users -------------------------------------------------------------

    async def get_user(self, username: str) -> PanelUser:
        return await self._call("GET", _user_path(username), PanelUser, safe=True, user=username)

    async def create_user(self, new: NewUser) -> PanelUser:
        """`POST /api/user`; never retried (a timeout may mean it was created)."""
        return await self._call(
            "POST", "/api/user", PanelUser, body=new, safe=False, user=new.username
        )

    async def modify_user(self, username: str, changes: Mapping[str, Any]) -> PanelUser:
        """`PUT /api/user/{username}` with only the fields to change (others stay)."""
        return await self._call(
            "PUT", _user_path(username), PanelUser, body=dict(changes), safe=True, user=username
        )

    async def delete_user(self, username: str) -> None:
        await self._call("DELETE", _user_path(username), ErrorBody, safe=True, user=username)

    async def reset_usage(self, username: str) -> PanelUser:
        return await self._call(
            "POST", _user_path(username) + "/reset", PanelUser, safe=True, user=username
        )

    async def list_users(
        self, *, offset: int = 0, limit: int = 100, search: str | None = None
    ) -> UsersPage:
        params: dict[str, str] = {"offset": str(offset), "limit": str(limit)}
        if search:
            params["search"] = search
        return await self._call("GET", "/api/users", UsersPage, params=params, safe=True)

    async def list_users_raw(self, *, offset: int, limit: int) -> RawUsersPage:
        """One page of users, each left undecoded (`msgspec.json.decode(raw, type=PanelUser)`)."""
        params = {"offset": str(offset), "limit": str(limit)}
        return await self._call("GET", "/api/users", RawUsersPage, params=params, safe=True)

    # --- panel -------------------------------------------------------------

    async def get_inbounds(self) -> dict[str, list[Inbound]]:
        return await self._call("GET", "/api/inbounds", dict[str, list[Inbound]], safe=True)

    async def get_admin(self) -> Admin:
        """The admin we log in as; `users_usage` is null for the `SUDO_USERNAME` one."""
        return await self._call("GET", "/api/admin", Admin, safe=True)

    async def get_system(self) -> SystemStats:
        return await self._call("GET", "/api/system", SystemStats, safe=True)

    async def get_nodes(self) -> list[Node]:
        return await self._call("GET", "/api/nodes", list[Node], safe=True)

    async def get_nodes_usage(
        self, start: datetime | None = None, end: datetime | None = None
    ) -> list[NodeUsage]:
        params = {}
        if start is not None:
            params["start"] = utc_param(start)
        if end is not None:
            params["end"] = utc_param(end)
        page = await self._call("GET", "/api/nodes/usage", NodesUsage, params=params, safe=True)
        return page.usages

    # --- auth --------------------------------------------------------------

    async def login(self) -> str:
        """Log in with the instance's credentials, bypassing the shared cache."""
        try:
            password = self.passwords.open(self.instance.password, self.instance_id)
        except PasswordKeyError as exc:
            raise PanelAuthFailed(self.instance_id, str(exc)) from None
        form = {"username": self.instance.username, "password": password}
        status, body = await self._send("POST", "/api/admin/token", form=form, token=None)
        if status == 200:
            try:
                return msgspec.json.decode(body, type=Token).access_token
            except msgspec.ValidationError as exc:
                raise PanelUnavailable(self.instance_id, f"malformed token answer: {exc}") from None
        if status in (401, 403):
            raise PanelAuthFailed(self.instance_id, f"login refused: {_detail(body)}")
        raise self._error(status, body, safe=True, user=None)

    async def token(self) -> str:
        """The shared token: from Redis, or logged in for (and stored in Redis)."""
        key = keys.marzban_token(self.instance_id)
        try:
            cached = await self.redis.get(key)
        except (RedisError, OSError) as exc:
            log.warning("panel %s: token cache unreachable (%s); logging in locally", self.instance_id, exc)
            return await self._local_login()
        if cached:
            return str(cached)
        return await self._shared_login(stale=None)

    async def _local_login(self) -> str:
        if self._local_token is None or token_ttl(self._local_token) <= 0:
            self._local_token = await self.login()
        return self._local_token

    async def _shared_login(self, stale: str | None) -> str:
        """Log in once for every process; return a token other than `stale`."""
        key = keys.marzban_token(self.instance_id)
        lock = keys.marzban_token_lock(self.instance_id)
        owner = f"{os.getpid()}:{id(self)}:{time.monotonic_ns()}"
        deadline = time.monotonic() + self.timeout * (1 + self.retries) + 1.0
        try:
            while True:
                if await self.redis.set(lock, owner, nx=True, px=int(self.timeout * 1000) + 2000):
                    try:
                        current = await self.redis.get(key)
                        if current and current != stale:
                            return str(current)
                        token = await self.login()
                        ttl = token_ttl(token)
                        if ttl > 0:
                            await self.redis.set(key, token, ex=ttl)
                        log.info("panel %s: logged in, token cached for %ds", self.instance_id, ttl)
                        return token
                    finally:
                        await delete_if_owner(self.redis, lock, owner)
                await asyncio.sleep(_TOKEN_WAIT_STEP)
                current = await self.redis.get(key)
                if current and current != stale:
                    return str(current)
                if time.monotonic() > deadline:
                    raise PanelUnavailable(self.instance_id, "timed out waiting for another login")
        except (RedisError, OSError) as exc:
            log.warning("panel %s: token cache unreachable (%s); logging in locally", self.instance_id, exc)
            return await self._local_login()

    async def _drop_token(self, token: str) -> None:
        if token == self._local_token:
            self._local_token = None
        try:
            # Only if it is still the token that got the 401.
            await delete_if_owner(self.redis, keys.marzban_token(self.instance_id), token)
        except (RedisError, OSError) as exc:
            log.warning("panel %s: cannot drop the cached token: %s", self.instance_id, exc)

    # --- transport ---------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        expect: type[T],
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        safe: bool,
        user: str | None = None,
    ) -> T:
        attempts = 1 + (self.retries if safe else 0)
        for attempt in range(attempts):
            try:
                return await self._authorized(method, path, expect, body, params, safe, user)
            except PanelAuthFailed:
                raise
            except PanelUnavailable as exc:
                if attempt + 1 >= attempts:
                    raise
                delay = RETRY_DELAY * 2**attempt
                log.warning(
                    "panel %s: %s %s failed (%s); retry %d/%d in %.1fs",
                    self.instance_id, method, path, exc.reason, attempt + 1, attempts - 1, delay,
                )  # fmt: skip
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _authorized(
        self,
        method: str,
        path: str,
        expect: type[T],
        body: Any,
        params: Mapping[str, str] | None,
        safe: bool,
        user: str | None,
    ) -> T:
        token = await self.token()
        status, raw = await self._send(method, path, json=body, params=params, token=token)
        for wait in (0.0, FRESH_TOKEN_RETRY_DELAY):
            if status != 401:
                break
            log.info("panel %s: token refused (%s); logging in again", self.instance_id, _detail(raw))
            await self._drop_token(token)
            if wait:
                await asyncio.sleep(wait)
            token = await self._shared_login(stale=token)
            status, raw = await self._send(method, path, json=body, params=params, token=token)
        if status == 401:
            await self._drop_token(token)  # never keep a token the panel just refused
            raise PanelAuthFailed(self.instance_id, f"a fresh token was refused: {_detail(raw)}")
        if 200 <= status < 300:
            try:
                return msgspec.json.decode(raw, type=expect)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                raise PanelUnavailable(
                    self.instance_id, f"unexpected answer to {method} {path}: {exc}"
                ) from None
        raise self._error(status, raw, safe=safe, user=user)

    async def _send(
        self,
        method: str,
        path: str,
        *,
        token: str | None,
        json: Any = None,
        form: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> tuple[int, bytes]:
        headers = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data: bytes | aiohttp.FormData | None = None
        if json is not None:
            data = msgspec.json.encode(json)
            headers["Content-Type"] = "application/json"
        elif form is not None:
            data = aiohttp.FormData(dict(form))
        started = time.monotonic()
        try:
            async with self.http.request(
                method,
                self._url(path),
                data=data,
                params=params,
                headers=headers,
                timeout=self._client_timeout,
                allow_redirects=False,
            ) as resp:
                raw = await resp.read()
                status = resp.status
        except TimeoutError:
            metrics.count("panel_errors_total", instance=self.instance_id, error="timeout")
            raise PanelUnavailable(
                self.instance_id,
                f"{method} {path} timed out after {self.timeout:g}s",
                outcome_unknown=True,
            ) from None
        except aiohttp.ClientConnectorError as exc:
            metrics.count("panel_errors_total", instance=self.instance_id, error="connect")
            raise PanelUnavailable(self.instance_id, f"cannot connect: {exc.os_error}") from None
        except aiohttp.ClientError as exc:
            metrics.count("panel_errors_total", instance=self.instance_id, error="network")
            raise PanelUnavailable(
                self.instance_id,
                f"{method} {path} failed: {exc.__class__.__name__}: {exc}",
                outcome_unknown=True,
            ) from None
        elapsed = time.monotonic() - started
        metrics.observe("panel_request_duration_seconds", elapsed, instance=self.instance_id)
        log.debug("panel %s: %s %s -> %d in %.3fs", self.instance_id, method, path, status, elapsed)
        return status, raw

    def _error(self, status: int, raw: bytes, *, safe: bool, user: str | None) -> Exception:
        detail = _detail(raw)
        metrics.count("panel_errors_total", instance=self.instance_id, error=f"http_{status}")
        if status >= 500:
            return PanelUnavailable(
                self.instance_id, f"answered {status}: {detail}", outcome_unknown=not safe
            )
        if status == 404 and user is not None and detail == "User not found":
            return PanelUserNotFound(self.instance_id, user)
        if status == 409:
            return PanelUserExists(self.instance_id, status, detail)
        return PanelRejected(self.instance_id, status, detail, _fields(raw))


def _user_path(username: str) -> str:
    return "/api/user/" + quote(username, safe="")


def _decode_error(raw: bytes) -> ErrorBody | None:
    try:
        return msgspec.json.decode(raw, type=ErrorBody)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None


def _detail(raw: bytes) -> str:
    body = _decode_error(raw)
    if body is None:
        return raw[:200].decode("utf-8", "replace").strip() or "(empty body)"
    if isinstance(body.detail, dict):
        return "; ".join(f"{k}: {v}" for k, v in body.detail.items())
    return body.detail


def _fields(raw: bytes) -> dict[str, str]:
    body = _decode_error(raw)
    if body is not None and isinstance(body.detail, dict):
        return dict(body.detail)
    return {}
