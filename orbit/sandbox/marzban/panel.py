"""The panel's state behind the API: nodes, users, Xray, subscription tokens, JSON shapes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from orbit.sandbox.marzban.constants import NODE_REFUSED, NODE_STATUSES, SUB_SIGNATURE_LEN, XRAY_VERSION
from orbit.sandbox.marzban.links import _link, _remark
from orbit.sandbox.marzban.models import NodeSpec, _Node, _User
from orbit.sandbox.marzban.validation import _ApiError
from orbit.sandbox.marzban.wire import _b64url, _b64url_decode, _iso


class _PanelState:
    """Internals shared by the API handlers and the controls."""

    # -- internals: state -------------------------------------------------------------------

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC).replace(tzinfo=None)

    def _tags(self, protocol: str) -> list[str]:
        return [inbound.tag for inbound in self.inbounds if inbound.protocol == protocol]

    def _add_node_from_spec(self, spec: NodeSpec) -> _Node:
        if spec.status not in NODE_STATUSES:
            raise ValueError(f"status must be one of {NODE_STATUSES}")
        node = _Node(
            id=self._next_node_id,
            name=spec.name,
            address=spec.address,
            port=spec.port,
            api_port=spec.api_port,
            usage_coefficient=float(spec.usage_coefficient),
            status=spec.status,
            message=spec.message,
            xray_version=XRAY_VERSION if spec.status == "connected" else None,
            reachable=spec.reachable,
        )
        if spec.status == "error" and spec.message is None:
            node.message = NODE_REFUSED
        if spec.status == "connecting":
            node.connect_at = self._clock() + self.node_connect_delay
        self._next_node_id += 1
        self._nodes[node.id] = node
        if spec.uplink or spec.downlink:
            self._node_usages.append((self._clock(), node.id, spec.uplink, spec.downlink))
        if spec.add_as_new_host:
            self._add_node_host(node)
        return node

    def _add_node_host(self, node: _Node) -> None:
        remark = f"{node.name} ({{USERNAME}}) [{{PROTOCOL}} - {{TRANSPORT}}]"
        for hosts in self._hosts.values():
            hosts.append((remark, node.address))

    def _settle_nodes(self) -> None:
        now = self._clock()
        for node in self._nodes.values():
            if node.status == "connecting" and node.connect_at is not None and node.connect_at <= now:
                node.connect_at = None
                if node.reachable:
                    node.status, node.message, node.xray_version = "connected", None, XRAY_VERSION
                else:
                    node.status, node.message, node.xray_version = "error", NODE_REFUSED, None

    def _reconnect(self, node: _Node) -> None:
        # The real panel keeps the last error's message while it reconnects.
        node.status, node.xray_version = "connecting", None
        node.connect_at = self._clock() + self.node_connect_delay

    def _sync_xray(self, user: _User) -> None:
        """What the panel pushes to Xray after a change: active users in, others out."""
        if user.status in ("active", "on_hold"):
            self._xray.add(user.username)
        else:
            self._xray.discard(user.username)

    def _node_totals(
        self, node_id: int | None, start: float = -math.inf, end: float = math.inf
    ) -> tuple[int, int]:
        uplink = downlink = 0
        for at, usage_node, up, down in self._node_usages:
            if usage_node == node_id and start <= at <= end:
                uplink += up
                downlink += down
        return uplink, downlink

    def _new_user(
        self,
        *,
        username: str,
        proxies: dict[str, dict[str, str]],
        excluded: dict[str, list[str]],
        status: str = "active",
        expire: int | None = None,
        data_limit: int | None = None,
        data_limit_reset_strategy: str = "no_reset",
        note: str | None = None,
        on_hold_expire_duration: int | None = None,
        on_hold_timeout: datetime | None = None,
        auto_delete_in_days: int | None = None,
        next_plan: dict[str, Any] | None = None,
    ) -> _User:
        return _User(
            username=username,
            proxies=proxies,
            excluded=excluded,
            status=status,
            expire=expire or None,
            data_limit=data_limit or None,
            data_limit_reset_strategy=data_limit_reset_strategy,
            note=note,
            on_hold_expire_duration=on_hold_expire_duration or None,
            on_hold_timeout=on_hold_timeout or None,
            auto_delete_in_days=auto_delete_in_days,
            next_plan=next_plan,
            created_at=self._now(),
            sub_key=secrets.token_hex(8),
        )

    def _user_inbounds(self, user: _User) -> dict[str, list[str]]:
        return {
            protocol: [tag for tag in self._tags(protocol) if tag not in user.excluded.get(protocol, [])]
            for protocol in user.proxies
        }

    def _links(self, user: _User, inbounds: dict[str, list[str]]) -> list[str]:
        links = []
        for protocol, tags in inbounds.items():
            settings = user.proxies[protocol]
            for tag in tags:
                inbound = self._inbound_by_tag[tag]
                for template, address in self._hosts.get(tag, []):
                    remark = _remark(template, user.username, inbound)
                    links.append(_link(protocol, settings, inbound, address, remark))
        return links

    def _sub_token(self, user: _User) -> str:
        data = f"{user.username},{math.ceil(self._clock())}"
        encoded = _b64url(data.encode())
        return encoded + self._sub_signature(encoded, user.sub_key)

    def _sub_signature(self, encoded: str, key: str) -> str:
        digest = hashlib.sha256((encoded + self._sub_secret + key).encode()).digest()
        return base64.urlsafe_b64encode(digest).decode()[:SUB_SIGNATURE_LEN]

    def _subscription_url(self, user: _User) -> str:
        prefix = self.subscription_url_prefix.replace("*", secrets.token_hex(8))
        return f"{prefix}/sub/{self._sub_token(user)}"

    def _user_by_sub_token(self, token: str) -> _User:
        not_found = _ApiError(404, "Not Found")
        if len(token) <= SUB_SIGNATURE_LEN:
            raise not_found
        encoded, signature = token[:-SUB_SIGNATURE_LEN], token[-SUB_SIGNATURE_LEN:]
        try:
            username, _, issued = _b64url_decode(encoded).decode().rpartition(",")
            int(issued)
        except ValueError:
            raise not_found from None
        user = self._users.get(username)
        if user is None or not hmac.compare_digest(signature, self._sub_signature(encoded, user.sub_key)):
            raise not_found
        return user

    def _admin_json(self) -> dict[str, Any]:
        return {
            "username": self.admin_username,
            "is_sudo": True,
            "telegram_id": None,
            "discord_webhook": None,
            "users_usage": None if self.sudo_from_env else self._admin_users_usage,
        }

    def _user_json(self, user: _User) -> dict[str, Any]:
        inbounds = self._user_inbounds(user)
        return {
            "proxies": {protocol: dict(settings) for protocol, settings in user.proxies.items()},
            "expire": user.expire,
            "data_limit": user.data_limit,
            "data_limit_reset_strategy": user.data_limit_reset_strategy,
            "inbounds": inbounds,
            "note": user.note,
            "sub_updated_at": _iso(user.sub_updated_at),
            "sub_last_user_agent": user.sub_last_user_agent,
            "online_at": _iso(user.online_at),
            "on_hold_expire_duration": user.on_hold_expire_duration,
            "on_hold_timeout": _iso(user.on_hold_timeout),
            "auto_delete_in_days": user.auto_delete_in_days,
            "next_plan": None if user.next_plan is None else dict(user.next_plan),
            "username": user.username,
            "status": user.status,
            "used_traffic": user.used_traffic,
            "lifetime_used_traffic": user.traffic_before_resets + user.used_traffic,
            "created_at": _iso(user.created_at),
            "links": self._links(user, inbounds),
            "subscription_url": self._subscription_url(user),
            "excluded_inbounds": {
                protocol: list(user.excluded.get(protocol, [])) for protocol in user.proxies
            },
            "admin": None if self.sudo_from_env else self._admin_json(),
        }

    def _node_json(self, node: _Node) -> dict[str, Any]:
        return {
            "name": node.name,
            "address": node.address,
            "port": node.port,
            "api_port": node.api_port,
            "usage_coefficient": node.usage_coefficient,
            "id": node.id,
            "xray_version": node.xray_version,
            "status": node.status,
            "message": node.message,
        }

    def _usage_rows(self, users: Iterable[_User], start: float, end: float) -> list[dict]:
        totals: dict[int | None, int] = {None: 0}
        names: dict[int | None, str] = {None: "Master"}
        for node in self._nodes.values():
            totals[node.id] = 0
            names[node.id] = node.name
        for user in users:
            for at, node_id, counted in user.usages:
                if node_id in totals and start <= at <= end:
                    totals[node_id] += counted
        return [
            {"node_id": node_id, "node_name": names[node_id], "used_traffic": used}
            for node_id, used in totals.items()
        ]
