"""Subscription endpoints a VPN client fetches: ``/sub/{token}[/info|/usage|/{client}]``."""

from __future__ import annotations

import base64

from aiohttp import web

from orbit.sandbox.marzban.validation import _ApiError, _json


class _SubscriptionApi:
    """``/sub/...``."""

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
