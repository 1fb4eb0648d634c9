"""Share links (vmess://, vless://, trojan://, ss://) as the panel builds them for a user."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote, urlencode

from orbit.sandbox.marzban.models import Inbound


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
