"""The panel's API: admin token, admin, system stats, inbounds, core."""

from __future__ import annotations

import hmac
from typing import Any

from aiohttp import web

from orbit.sandbox.marzban.constants import BEARER, PROTOCOLS, XRAY_VERSION
from orbit.sandbox.marzban.validation import _ApiError, _json


class _SystemApi:
    """``/api/admin*``, ``/api/system``, ``/api/inbounds``, ``/api/core*``."""

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
