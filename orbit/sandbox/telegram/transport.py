"""The Bot API over HTTP: tokens, method dispatch, files, and Telegram's flood limits."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from typing import Any

from aiohttp import web

from orbit.sandbox import telegram_control as ctl
from orbit.sandbox.telegram.constants import (
    _TOKEN_RE,
    BAD_GATEWAY_HTML,
    NOT_FOUND,
    RATE_LIMITED_METHODS,
    UNAUTHORIZED,
)
from orbit.sandbox.telegram.errors import BotApiError
from orbit.sandbox.telegram.params import _json_response, _Params, _read_params
from orbit.sandbox.telegram.state import _RateState, _World

logger = logging.getLogger(__name__)


class _Transport:
    """Serving `/bot<token>/<method>` and `/file/bot<token>/...`, within the rate limits."""

    # --- Bot API transport ---------------------------------------------------------------

    async def _handle_api(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        match = _TOKEN_RE.fullmatch(token)
        if match is None or token in self._invalid_tokens:
            return _json_response({"ok": False, "error_code": 401, "description": UNAUTHORIZED}, 401)
        if request.match_info["method"].lower() in self._bad_gateway:
            return web.Response(status=502, text=BAD_GATEWAY_HTML, content_type="text/html")
        world = self._world_for_bot(int(match[1]))
        try:
            raw = await _read_params(request)
        except BotApiError as exc:
            return _json_response(
                {"ok": False, "error_code": exc.code, "description": exc.description}, exc.code
            )
        status, body = await self._invoke(world, request.match_info["method"], raw)
        await self._held(request.match_info["method"], status)
        return _json_response(body, status)

    async def _held(self, method: str, status: int) -> None:
        """`/control/hold`: the call took effect; its answer is kept back (a crash window)."""
        hold = self._hold
        if hold is None or status != 200 or hold.method.lower() != method.lower():
            return
        if hold.times is not None:
            hold.times -= 1
            if hold.times <= 0:
                self._hold = None
        await asyncio.sleep(hold.seconds)

    async def _invoke(self, world: _World, method: str, raw: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        started = time.perf_counter()
        entry = self._methods.get(method.lower())
        params = _Params(raw)
        world.call_seq += 1
        call = ctl.ApiCall(
            seq=world.call_seq,
            at=time.time() + self._clock_offset,
            bot_id=world.bot_id or 0,
            method=entry[0] if entry else method,
            params=params.describe(),
        )
        world.calls.append(call)
        try:
            if entry is None:
                raise BotApiError(404, NOT_FOUND)
            result = await entry[1](world, params)
        except BotApiError as exc:
            call.ok, call.error_code, call.description = False, exc.code, exc.description
            status = exc.code
            body: dict[str, Any] = {
                "ok": False,
                "error_code": exc.code,
                "description": exc.description,
            }
            if exc.parameters:
                body["parameters"] = exc.parameters
        else:
            call.ok = True
            status, body = 200, {"ok": True, "result": result}
        logger.debug(
            "bot %s %s -> %s in %.1f ms",
            world.bot_id,
            call.method,
            status,
            (time.perf_counter() - started) * 1000,
        )
        return status, body

    async def _handle_file(self, request: web.Request) -> web.Response:
        match = _TOKEN_RE.fullmatch(request.match_info["token"])
        if match is None or request.match_info["token"] in self._invalid_tokens:
            raise web.HTTPUnauthorized()
        stored = self._world_for_bot(int(match[1])).file_paths.get(request.match_info["path"])
        if stored is None or stored.data is None:
            raise web.HTTPNotFound()
        return web.Response(body=stored.data, content_type=stored.mime_type or "application/octet-stream")

    # --- rate limits ---------------------------------------------------------------------

    def _throttle(self, world: _World, method: str, chat_id: int) -> None:
        limits = self.rate_limits
        if not limits.enabled or method not in RATE_LIMITED_METHODS:
            return
        rate = world.rate
        now = self._mono()
        self._prune(rate, chat_id, now)
        for key in (chat_id, None):
            until = rate.floods.get(key)
            if until is None:
                continue
            if now >= until:
                del rate.floods[key]
                rate.flood_told.discard(key)
                continue
            told = key in rate.flood_told
            rate.flood_told.add(key)
            rate.early_retries += told
            self._too_many(world, method, chat_id, key, math.ceil(until - now), early=told)
        for key in (chat_id, None):
            until = rate.penalties.get(key)
            if until is None:
                continue
            if now >= until:
                del rate.penalties[key]
                continue
            rate.early_retries += 1
            self._too_many(world, method, chat_id, key, math.ceil(until - now), early=True)
        chat_window = rate.chat_windows.get(chat_id) or deque()
        if len(chat_window) >= limits.per_chat_per_sec:
            key, oldest = chat_id, chat_window[-limits.per_chat_per_sec]
        elif len(rate.global_window) >= limits.global_per_sec:
            key, oldest = None, rate.global_window[-limits.global_per_sec]
        else:
            return
        retry_after = max(1, math.ceil(oldest + 1.0 - now))
        rate.penalties[key] = now + retry_after
        self._too_many(world, method, chat_id, key, retry_after, early=False)

    def _too_many(
        self,
        world: _World,
        method: str,
        chat_id: int,
        key: int | None,
        retry_after: int,
        *,
        early: bool,
    ) -> None:
        world.rate.given.append(
            ctl.TooManyRequests(
                at=time.time() + self._clock_offset,
                method=method,
                chat_id=chat_id,
                scope="global" if key is None else "chat",
                retry_after=retry_after,
                early=early,
            )
        )
        raise BotApiError(429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after})

    def _count(self, world: _World, method: str, chat_id: int) -> None:
        if method not in RATE_LIMITED_METHODS:
            return
        rate = world.rate
        now = self._mono()
        rate.global_window.append(now)
        rate.chat_windows.setdefault(chat_id, deque()).append(now)
        self._prune(rate, chat_id, now)
        rate.max_global_window = max(rate.max_global_window, len(rate.global_window))
        rate.max_chat_window = max(rate.max_chat_window, len(rate.chat_windows[chat_id]))
        second = int(time.time() + self._clock_offset)
        rate.per_second[second] = rate.per_second.get(second, 0) + 1
        rate.accepted_total += 1

    @staticmethod
    def _prune(rate: _RateState, chat_id: int, now: float) -> None:
        horizon = now - 1.0
        while rate.global_window and rate.global_window[0] <= horizon:
            rate.global_window.popleft()
        window = rate.chat_windows.get(chat_id)
        if window is not None:
            while window and window[0] <= horizon:
                window.popleft()
            if not window:
                del rate.chat_windows[chat_id]
