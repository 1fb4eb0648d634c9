"""The panel client against an emulated v0.8.4 panel over real HTTP."""

from __future__ import annotations

import asyncio
import base64
import time

import aiohttp
import msgspec
import pytest
from redis.asyncio import Redis

from orbit import keys
from orbit.marzban.client import MarzbanClient, absolute_url, token_ttl
from orbit.marzban.errors import (
    PanelAuthFailed,
    PanelRejected,
    PanelUnavailable,
    PanelUserExists,
    PanelUserNotFound,
)
from orbit.marzban.models import NewUser
from tests.marzban.conftest import TIMEOUT, Panels, instance_for


def client_for(
    http: aiohttp.ClientSession, redis: Redis, panels: Panels, instance_id: str = "a", **kw: object
) -> MarzbanClient:
    instance = instance_for(instance_id, panels.by_id[instance_id], **kw)
    return MarzbanClient(http, redis, instance, timeout=TIMEOUT)


def new_user(username: str) -> NewUser:
    return NewUser(
        username=username,
        proxies={"vless": {}, "vmess": {}},
        inbounds={"vless": ["VLESS TCP REALITY"], "vmess": ["VMess TCP"]},
        expire=int(time.time()) + 3600,
    )


def _jwt(claims: dict[str, object]) -> str:
    body = base64.urlsafe_b64encode(msgspec.json.encode(claims)).rstrip(b"=").decode()
    return f"eyJhbGciOiJIUzI1NiJ9.{body}.sig"


def test_token_ttl_follows_the_jwt_expiry() -> None:
    now = 1_000_000.0
    assert token_ttl(_jwt({"exp": now + 86400}), now) == 86400 - 60
    assert token_ttl(_jwt({"exp": now + 100}), now) == 90  # short tokens: 10 % margin
    assert token_ttl(_jwt({"exp": now - 5}), now) == 0  # never cache an expired token
    assert token_ttl("opaque-token", now) == 3600


def test_absolute_subscription_url() -> None:
    assert absolute_url("http://p:8000/", "/sub/abc") == "http://p:8000/sub/abc"
    assert absolute_url("http://p:8000", "https://sub.example/sub/x") == "https://sub.example/sub/x"


async def test_one_login_shared_by_every_client_and_cached_with_the_token_ttl(
    redis: Redis, http: aiohttp.ClientSession, panels: Panels
) -> None:
    # Two clients stand for two processes: one login between them.
    first, second = client_for(http, redis, panels), client_for(http, redis, panels)
    await asyncio.gather(*(c.get_system() for c in (first, second) for _ in range(5)))
    assert panels.a.logins == 1
    request = next(r for r in panels.a.requests if r.path == "/api/admin/token")
    assert "username=admin" in request.body and "password=admin" in request.body  # a form
    ttl = await redis.ttl(keys.marzban_token("a"))
    assert 86400 - 60 - 5 <= ttl <= 86400 - 60


async def test_a_401_logs_in_again_once_and_the_call_succeeds(
    redis: Redis, http: aiohttp.ClientSession, panels: Panels
) -> None:
    client = client_for(http, redis, panels)
    await client.get_system()
    old = await redis.get(keys.marzban_token("a"))
    panels.a.expire_tokens()
    panels.a.clear_requests()
    stats = await client.get_system()
    assert stats.version == "0.8.4"
    assert panels.a.logins == 1
    assert panels.a.count("GET", "/api/system") == 2  # the refused one and the retry
    assert await redis.get(keys.marzban_token("a")) not in (None, old)


async def test_wrong_credentials_are_an_auth_failure_and_nothing_is_cached(
    redis: Redis, http: aiohttp.ClientSession, panels: Panels
) -> None:
    client = client_for(http, redis, panels)
    panels.a.set_admin_password("changed")
    with pytest.raises(PanelAuthFailed, match="Incorrect username or password"):
        await client.get_nodes()
    assert await redis.get(keys.marzban_token("a")) is None
    assert panels.a.count("POST", "/api/admin/token") == 1  # not retried


async def test_reads_retry_a_5xx_a_bounded_number_of_times_creates_never(
    redis: Redis, http: aiohttp.ClientSession, panels: Panels
) -> None:
    client = client_for(http, redis, panels)
    await client.get_system()  # log in first
    panels.a.fail(502, times=1, path="/api/nodes")
    assert [n.name for n in await client.get_nodes()] == ["a-de", "a-nl"]
    panels.a.clear_requests()
    panels.a.fail(500, path="/api/nodes")
    with pytest.raises(PanelUnavailable, match="answered 500"):
        await client.get_nodes()
    assert panels.a.count("GET", "/api/nodes") == 2
    panels.a.fail(500, path="/api/user", method="POST")
    with pytest.raises(PanelUnavailable) as caught:
        await client.create_user(new_user("never_twice"))
    assert caught.value.outcome_unknown
    assert panels.a.count("POST", "/api/user") == 1


async def test_timeouts_and_refused_connections_are_unavailability(
    redis: Redis, http: aiohttp.ClientSession, panels: Panels
) -> None:
    client = client_for(http, redis, panels)
    await client.get_system()
    panels.a.slow(TIMEOUT * 3, path="/api/system")
    started = time.monotonic()
    with pytest.raises(PanelUnavailable, match="timed out") as caught:
        await client.get_system()
    assert caught.value.outcome_unknown
    assert time.monotonic() - started < TIMEOUT * 2 + 1.0  # two bounded attempts
    panels.a.slow(0)
    await panels.a.down()
    with pytest.raises(PanelUnavailable, match="cannot connect") as caught:
        await client.get_system()
    assert not caught.value.outcome_unknown


async def test_panel_errors_map_to_domain_errors(
    redis: Redis, http: aiohttp.ClientSession, panels: Panels
) -> None:
    client = client_for(http, redis, panels)
    with pytest.raises(PanelUserNotFound):
        await client.get_user("nobody_here")
    created = await client.create_user(new_user("alice_01"))
    assert created.subscription_url.startswith("/sub/")
    assert set(created.inbounds) == {"vless", "vmess"} and created.links
    with pytest.raises(PanelUserExists):
        await client.create_user(new_user("alice_01"))
    with pytest.raises(PanelRejected) as caught:
        await client.create_user(new_user("ab"))
    assert caught.value.status == 422
    assert "username" in caught.value.fields
    changed = await client.modify_user("alice_01", {"expire": 0, "status": "disabled"})
    assert changed.expire is None and changed.status == "disabled"
    await client.delete_user("alice_01")
    with pytest.raises(PanelUserNotFound):
        await client.delete_user("alice_01")
