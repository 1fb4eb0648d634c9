"""Bot API methods that deliver updates: getUpdates (long polling) and webhooks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from itertools import islice
from typing import Any

import aiohttp
import msgspec

from orbit.sandbox.telegram.constants import (
    _SECRET_RE,
    MAX_POLL_TIMEOUT,
    POLL_CONFLICT,
    SECRET_HEADER,
    WEBHOOK_CONFLICT,
    WEBHOOK_RETRY_MAX,
    WEBHOOK_RETRY_MIN,
    WEBHOOK_TIMEOUT,
)
from orbit.sandbox.telegram.errors import BotApiError, _bad
from orbit.sandbox.telegram.params import _Params, _read_webhook_reply
from orbit.sandbox.telegram.state import _Queued, _Webhook, _World

logger = logging.getLogger(__name__)


class _UpdateMethods:
    """getUpdates, setWebhook, deleteWebhook, getWebhookInfo, and delivering to a webhook."""

    async def _get_updates(self, world: _World, params: _Params) -> list[dict[str, Any]]:
        if world.webhook is not None:
            raise BotApiError(409, WEBHOOK_CONFLICT)
        offset = params.integer("offset") or 0
        limit = min(max(params.integer("limit") or 100, 1), 100)
        timeout = min(max(params.integer("timeout") or 0, 0), MAX_POLL_TIMEOUT)
        self._set_allowed_updates(world, params)
        if offset > 0:
            while world.updates and world.updates[0].update_id < offset:
                world.updates.popleft()
        elif offset < 0:
            while len(world.updates) > -offset:
                world.updates.popleft()
        world.poll_generation += 1
        generation = world.poll_generation
        world.changes.notify()
        if not world.updates and timeout > 0:
            await world.changes.wait_until(
                lambda: bool(world.updates) or world.poll_generation != generation, timeout
            )
        if world.poll_generation != generation:
            raise BotApiError(409, POLL_CONFLICT)
        return [queued.encode() for queued in islice(world.updates, limit)]

    @staticmethod
    def _set_allowed_updates(world: _World, params: _Params) -> None:
        allowed = params.json("allowed_updates")
        if allowed is None:
            return
        if not isinstance(allowed, list) or not all(isinstance(kind, str) for kind in allowed):
            raise _bad("can't parse allowed_updates JSON object")
        world.allowed_updates = frozenset(allowed) or None

    async def _set_webhook(self, world: _World, params: _Params) -> bool:
        url = params.string("url")
        if not url:
            return await self._delete_webhook(world, params)
        if not url.startswith(("http://", "https://")):
            raise _bad("bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.string("secret_token")
        if secret is not None and not _SECRET_RE.fullmatch(secret):
            raise _bad("secret token contains unallowed characters")
        self._set_allowed_updates(world, params)
        if params.flag("drop_pending_updates"):
            world.updates.clear()
        old = self._drop_webhook(world)
        if old is not None:
            await asyncio.wait([old])
        hook = _Webhook(
            url=url,
            secret_token=secret,
            max_connections=params.integer("max_connections") or 40,
            ip_address=params.string("ip_address"),
        )
        world.webhook = hook
        hook.task = asyncio.create_task(self._deliver(world, hook))
        return True

    async def _delete_webhook(self, world: _World, params: _Params) -> bool:
        if params.flag("drop_pending_updates"):
            world.updates.clear()
        task = self._drop_webhook(world)
        if task is not None:
            await asyncio.wait([task])
        return True

    @staticmethod
    def _drop_webhook(world: _World) -> asyncio.Task[None] | None:
        hook, world.webhook = world.webhook, None
        world.changes.notify()
        if hook is None or hook.task is None or hook.task is asyncio.current_task():
            return None
        hook.task.cancel()
        return hook.task

    async def _get_webhook_info(self, world: _World, params: _Params) -> dict[str, Any]:
        hook = world.webhook
        info: dict[str, Any] = {
            "url": hook.url if hook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(world.updates),
        }
        if hook is not None:
            info["max_connections"] = hook.max_connections
            if hook.ip_address:
                info["ip_address"] = hook.ip_address
            if hook.last_error_date is not None:
                info["last_error_date"] = hook.last_error_date
                info["last_error_message"] = hook.last_error_message
        if world.allowed_updates:
            info["allowed_updates"] = sorted(world.allowed_updates)
        return info

    async def _deliver(self, world: _World, hook: _Webhook) -> None:
        """As Telegram: updates leave in order over up to `max_connections` requests at
        once, one chat's updates too (Telegram keeps their order only loosely); an update
        answered non-2xx, or not at all, is sent again after its own backoff (0.1 s
        doubling to 5 s) while the others go on."""
        loop = asyncio.get_running_loop()
        posting: dict[int, asyncio.Task[None]] = {}  # update id → its request
        retry: dict[int, tuple[float, float]] = {}  # update id → (not before, last backoff)
        ended = [0]  # requests ended so far: the loop recomputes its wait after each

        def sendable() -> list[_Queued]:
            free, now, out = hook.max_connections - len(posting), loop.time(), []
            for queued in world.updates:
                if len(out) >= free:
                    break
                uid = queued.update_id
                if uid not in posting and retry.get(uid, (0.0, 0.0))[0] <= now:
                    out.append(queued)
            return out

        async def attempt(queued: _Queued) -> None:
            try:
                error = await self._post_update(world, hook, queued)
            finally:
                posting.pop(queued.update_id, None)
            if error is None:
                retry.pop(queued.update_id, None)
            else:
                hook.last_error_date = self._now()
                hook.last_error_message = error
                logger.info("webhook %s: update %s: %s", hook.url, queued.update_id, error)
                backoff = retry[queued.update_id][1] * 2 if queued.update_id in retry else WEBHOOK_RETRY_MIN
                backoff = min(backoff, WEBHOOK_RETRY_MAX)
                retry[queued.update_id] = (loop.time() + backoff, backoff)
            ended[0] += 1
            world.changes.notify()

        try:
            while world.webhook is hook and not self._closing:
                for queued in sendable():
                    posting[queued.update_id] = asyncio.create_task(attempt(queued))
                due = [
                    retry[q.update_id][0]
                    for q in world.updates
                    if q.update_id in retry and q.update_id not in posting
                ]
                full = len(posting) >= hook.max_connections  # then only a request's end matters
                timeout = max(0.0, min(due) - loop.time()) if due and not full else 60.0
                await world.changes.wait_until(
                    lambda seen=ended[0]: world.webhook is not hook or ended[0] != seen or bool(sendable()),
                    timeout,
                )
                if world.changes.closed:
                    return
        finally:
            for task in posting.values():
                task.cancel()

    async def _post_update(self, world: _World, hook: _Webhook, queued: _Queued) -> str | None:
        headers = {"Content-Type": "application/json"}
        if hook.secret_token:
            headers[SECRET_HEADER] = hook.secret_token
        try:
            async with self._client().post(
                hook.url,
                data=msgspec.json.encode(queued.encode()),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=WEBHOOK_TIMEOUT),
            ) as resp:
                if resp.status >= 300:
                    return f"Wrong response from the webhook: {resp.status} {resp.reason}"
                reply = await _read_webhook_reply(resp)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return f"Connection failed: {type(exc).__name__}"
        with contextlib.suppress(ValueError):  # gone already: drop_pending_updates
            world.updates.remove(queued)
        if reply is not None:
            method = str(reply.pop("method"))
            status, body = await self._invoke(world, method, reply)
            if status != 200:
                logger.info("webhook reply %s failed: %s", method, body.get("description"))
        return None
