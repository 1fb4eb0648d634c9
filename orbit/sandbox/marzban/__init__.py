"""A local Marzban v0.8.4 panel: admin auth, users, nodes, subscriptions, system stats.

Paths, request bodies, response shapes, status codes and error bodies follow what a real
v0.8.4 panel answered (``reference/marzban-api.md``), so a client written against this
emulator works unchanged against a real panel. Test controls live under ``/_emulator``
and on the ``MarzbanEmulator`` object; ``docs/marzban-emulator.md`` lists both and says
what is simplified.

One module per concern: ``constants``, ``models`` (the state's records), ``commands``
(control request bodies), ``validation`` (Marzban's 422s), ``wire`` (JSON, dates),
``links`` (share links), ``panel`` (state internals), ``plumbing`` (middleware, tokens),
``api_*`` (the panel's API by area), ``controls`` and ``control_api`` (the test controls),
``emulator`` (the assembled class), ``run`` (alone).

Run alone: ``python -m orbit.sandbox.marzban --port 8001 --port 8002``.
"""

from __future__ import annotations

from orbit.sandbox.marzban.constants import (
    BASE_MEM_USED,
    BEARER,
    CONTROL_PREFIX,
    CREATE_STATUSES,
    DEFAULT_CPU_CORES,
    DEFAULT_HOST_REMARK,
    DEFAULT_MEM_TOTAL,
    JWT_HEADER,
    MEM_PER_USER,
    MODIFY_STATUSES,
    NODE_REFUSED,
    NODE_STATUSES,
    NOTE_MAX,
    ONLINE_WINDOW,
    PANEL_VERSION,
    PROTOCOL_ENUM_NAMES,
    PROTOCOLS,
    RESET_STRATEGIES,
    SHADOWSOCKS_METHODS,
    SORT_FIELDS,
    SUB_SIGNATURE_LEN,
    SYSTEM_OVERRIDABLE,
    USAGE_WINDOW,
    USER_STATUSES,
    USERNAME_ERROR,
    USERNAME_RE,
    XRAY_VERSION,
    XTLS_FLOWS,
)
from orbit.sandbox.marzban.emulator import MarzbanEmulator
from orbit.sandbox.marzban.models import DEFAULT_INBOUNDS, Inbound, NodeSpec, RequestRecord
from orbit.sandbox.marzban.run import main, serve

__all__ = [
    "BASE_MEM_USED",
    "BEARER",
    "CONTROL_PREFIX",
    "CREATE_STATUSES",
    "DEFAULT_CPU_CORES",
    "DEFAULT_HOST_REMARK",
    "DEFAULT_INBOUNDS",
    "DEFAULT_MEM_TOTAL",
    "JWT_HEADER",
    "MEM_PER_USER",
    "MODIFY_STATUSES",
    "NODE_REFUSED",
    "NODE_STATUSES",
    "NOTE_MAX",
    "ONLINE_WINDOW",
    "PANEL_VERSION",
    "PROTOCOLS",
    "PROTOCOL_ENUM_NAMES",
    "RESET_STRATEGIES",
    "SHADOWSOCKS_METHODS",
    "SORT_FIELDS",
    "SUB_SIGNATURE_LEN",
    "SYSTEM_OVERRIDABLE",
    "USAGE_WINDOW",
    "USERNAME_ERROR",
    "USERNAME_RE",
    "USER_STATUSES",
    "XRAY_VERSION",
    "XTLS_FLOWS",
    "Inbound",
    "MarzbanEmulator",
    "NodeSpec",
    "RequestRecord",
    "main",
    "serve",
]
