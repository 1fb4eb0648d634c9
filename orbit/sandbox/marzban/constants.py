"""What a Marzban v0.8.4 panel accepts and answers with: versions, enums, patterns, defaults."""

from __future__ import annotations

import re
from datetime import timedelta

PANEL_VERSION = "0.8.4"
XRAY_VERSION = "1.8.24"
CONTROL_PREFIX = "/_emulator"

PROTOCOLS = ("vmess", "vless", "trojan", "shadowsocks")
PROTOCOL_ENUM_NAMES = {
    "vmess": "VMess",
    "vless": "VLESS",
    "trojan": "Trojan",
    "shadowsocks": "Shadowsocks",
}
USER_STATUSES = ("active", "disabled", "limited", "expired", "on_hold")
CREATE_STATUSES = ("active", "on_hold")
MODIFY_STATUSES = ("active", "disabled", "on_hold")
RESET_STRATEGIES = ("no_reset", "day", "week", "month", "year")
XTLS_FLOWS = ("", "xtls-rprx-vision")
SHADOWSOCKS_METHODS = (
    "aes-128-gcm",
    "aes-256-gcm",
    "chacha20-ietf-poly1305",
    "xchacha20-poly1305",
)
SORT_FIELDS = ("username", "used_traffic", "data_limit", "expire", "created_at")
NODE_STATUSES = ("connected", "connecting", "error", "disabled")

USERNAME_RE = re.compile(r"^(?=\w{3,32}\b)[a-zA-Z0-9-_@.]+(?:_[a-zA-Z0-9-_@.]+)*$")
USERNAME_ERROR = (
    "Value error, Username only can be 3 to 32 characters and contain a-z, 0-9, and underscores in between."
)
NOTE_MAX = 500
NODE_REFUSED = "[Errno 111] Connection refused"
DEFAULT_HOST_REMARK = "🚀 Marz ({USERNAME}) [{PROTOCOL} - {TRANSPORT}]"
USAGE_WINDOW = timedelta(days=30)
ONLINE_WINDOW = timedelta(hours=24)
SUB_SIGNATURE_LEN = 10
JWT_HEADER = b'{"alg":"HS256","typ":"JWT"}'
BEARER = {"WWW-Authenticate": "Bearer"}

BASE_MEM_USED = 512 * 1024 * 1024
MEM_PER_USER = 64 * 1024
DEFAULT_MEM_TOTAL = 8 * 1024 * 1024 * 1024
DEFAULT_CPU_CORES = 2
SYSTEM_OVERRIDABLE = frozenset(
    {
        "mem_total",
        "mem_used",
        "cpu_cores",
        "cpu_usage",
        "incoming_bandwidth_speed",
        "outgoing_bandwidth_speed",
    }
)
