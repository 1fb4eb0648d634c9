"""The panel's API for nodes: settings, create, read, modify, delete, reconnect, usage."""

from __future__ import annotations

import base64
import hashlib

from aiohttp import web

from orbit.sandbox.marzban.constants import NODE_STATUSES
from orbit.sandbox.marzban.models import NodeSpec
from orbit.sandbox.marzban.validation import (
    _ApiError,
    _bool,
    _choice,
    _Fields,
    _int,
    _json,
    _positive_float,
    _str,
)
from orbit.sandbox.marzban.wire import _body_object, _json_body


class _NodeApi:
    """``/api/node*`` and ``/api/nodes*``."""

    # -- HTTP: nodes ------------------------------------------------------------------------

    async def _get_node_settings(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        certificate = (
            "-----BEGIN CERTIFICATE-----\n"
            + base64.encodebytes(hashlib.sha512(self._sub_secret.encode()).digest() * 6).decode()
            + "-----END CERTIFICATE-----\n"
        )
        return _json({"min_node_version": "v0.2.0", "certificate": certificate})

    async def _add_node(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        self._authenticate(request)
        fields = _Fields(_body_object(body))
        fields.take("name", _str, required=True)
        fields.take("address", _str, required=True)
        fields.take("port", _int)
        fields.take("api_port", _int)
        fields.take("usage_coefficient", _positive_float)
        fields.take("add_as_new_host", _bool)
        values = fields.check()
        name = values["name"]
        if any(node.name == name for node in self._nodes.values()):
            raise _ApiError(409, f'Node "{name}" already exists')
        node = self._add_node_from_spec(
            NodeSpec(
                name=name,
                address=values["address"],
                port=values.get("port", 62050),
                api_port=values.get("api_port", 62051),
                status="connecting",
                reachable=self.new_nodes_reachable,
                add_as_new_host=values.get("add_as_new_host", True),
            )
        )
        return _json(self._node_json(node))

    async def _get_node(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        return _json(self._node_json(self._node_or_404(request)))

    async def _modify_node(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        self._authenticate(request)
        node = self._node_or_404(request)
        fields = _Fields(_body_object(body))
        for name, parse in (
            ("name", _str),
            ("address", _str),
            ("port", _int),
            ("api_port", _int),
            ("usage_coefficient", _positive_float),
            ("status", lambda value: _choice(value, NODE_STATUSES)),
        ):
            fields.take(name, lambda value, parse=parse: None if value is None else parse(value))
        values = fields.check()
        new_name = values.get("name")
        if new_name is not None and any(
            other.name == new_name and other.id != node.id for other in self._nodes.values()
        ):
            raise _ApiError(409, f'Node "{new_name}" already exists')
        for name in ("name", "address", "port", "api_port"):
            if values.get(name) is not None:
                setattr(node, name, values[name])
        if values.get("usage_coefficient"):
            node.usage_coefficient = values["usage_coefficient"]
        if values.get("status") == "disabled":
            node.status, node.message, node.xray_version = "disabled", None, None
            node.connect_at = None
        else:
            self._reconnect(node)
        return _json(self._node_json(node))

    async def _delete_node(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        node = self._node_or_404(request)
        del self._nodes[node.id]
        return _json({})

    async def _reconnect_node(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        node = self._node_or_404(request)
        if node.status != "disabled":
            self._reconnect(node)
        return _json({"detail": "Reconnection task scheduled"})

    async def _get_nodes(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        return _json([self._node_json(node) for node in self._nodes.values()])

    async def _get_nodes_usage(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        start, end = self._window(request)
        rows = []
        for node_id, name in [(None, "Master")] + [(n.id, n.name) for n in self._nodes.values()]:
            uplink, downlink = self._node_totals(node_id, start, end)
            rows.append({"node_id": node_id, "node_name": name, "uplink": uplink, "downlink": downlink})
        return _json({"usages": rows})
