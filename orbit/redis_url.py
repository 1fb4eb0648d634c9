"""`REDIS_URL` forms: redis-py's own (`redis://`, `rediss://`, `unix://`) and a
Sentinel-managed master, which redis-py has no URL for:

    redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service_name[/db]

The sentinels default to port 26379; the password (if any) is the master's. The
processes ask the sentinels for the current master of `service_name` and follow a
failover by themselves (redis.asyncio.sentinel). Checked by `load_settings`, so a
malformed URL is a one-line start-up error (exit 2), never a traceback.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import msgspec

SENTINEL_SCHEME = "redis+sentinel"
SCHEMES = ("redis", "rediss", "unix", SENTINEL_SCHEME)
DEFAULT_SENTINEL_PORT = 26379
SHAPE = "redis+sentinel://[:password@]host[:port][,host[:port]...]/service_name[/db]"


class RedisUrlError(ValueError):
    """What is wrong with the URL, without the URL (it may hold a password)."""


class SentinelUrl(msgspec.Struct, frozen=True):
    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None


def check(url: str) -> None:
    """Raise RedisUrlError unless `url` is a form the processes can connect with."""
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme not in SCHEMES:
        raise RedisUrlError(f"expected a URL starting with {', '.join(s + '://' for s in SCHEMES)}")
    if scheme == SENTINEL_SCHEME:
        parse_sentinel(url)


def is_sentinel(url: str) -> bool:
    return url.lower().startswith(SENTINEL_SCHEME + "://")


def parse_sentinel(url: str) -> SentinelUrl:
    try:
        parts = urlsplit(url)
    except ValueError:
        raise RedisUrlError(f"expected {SHAPE}") from None
    if parts.scheme.lower() != SENTINEL_SCHEME:
        raise RedisUrlError(f"expected {SHAPE}")
    if parts.query or parts.fragment:
        raise RedisUrlError(f"expected {SHAPE} (no query or fragment)")
    userinfo, at, hosts = parts.netloc.rpartition("@")
    username = password = None
    if at:
        user, has_password, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if has_password else None
    sentinels = tuple(_host_port(h) for h in hosts.split(","))
    path_text = parts.path.removeprefix("/").removesuffix("/")
    path = path_text.split("/") if path_text else []
    if not path or not path[0] or len(path) > 2:
        raise RedisUrlError(f"expected {SHAPE}: the master's service name is missing")
    db = 0
    if len(path) == 2:
        if not path[1].isdigit():
            raise RedisUrlError(f"expected {SHAPE}: the db must be a number, got {path[1]!r}")
        db = int(path[1])
    return SentinelUrl(sentinels, unquote(path[0]), db, username, password)


def _host_port(text: str) -> tuple[str, int]:
    text = text.strip()
    if text.startswith("["):  # [ipv6]:port
        host, _, rest = text[1:].partition("]")
        port_text = rest.removeprefix(":")
    else:
        host, _, port_text = text.partition(":")
    if not host:
        raise RedisUrlError(f"expected {SHAPE}: a sentinel host is empty")
    if not port_text:
        return host, DEFAULT_SENTINEL_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise RedisUrlError(f"expected {SHAPE}: bad sentinel port {port_text!r}")
    return host, int(port_text)
