"""The Marzban emulator over real HTTP: shapes, status codes and error bodies of v0.8.4."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from orbit.sandbox.marzban import DEFAULT_INBOUNDS, Inbound, MarzbanEmulator, NodeSpec

FAR_FUTURE = 4102444800  # 2100-01-01
USER_KEYS = [
    "proxies",
    "expire",
    "data_limit",
    "data_limit_reset_strategy",
    "inbounds",
    "note",
    "sub_updated_at",
    "sub_last_user_agent",
    "online_at",
    "on_hold_expire_duration",
    "on_hold_timeout",
    "auto_delete_in_days",
    "next_plan",
    "username",
    "status",
    "used_traffic",
    "lifetime_used_traffic",
    "created_at",
    "links",
    "subscription_url",
    "excluded_inbounds",
    "admin",
]
SYSTEM_KEYS = [
    "version",
    "mem_total",
    "mem_used",
    "cpu_cores",
    "cpu_usage",
    "total_user",
    "online_users",
    "users_active",
    "users_on_hold",
    "users_disabled",
    "users_expired",
    "users_limited",
    "incoming_bandwidth",
    "outgoing_bandwidth",
    "incoming_bandwidth_speed",
    "outgoing_bandwidth_speed",
]
ALICE = {
    "username": "alice_01",
    "proxies": {"vless": {}, "vmess": {}},
    "inbounds": {"vless": ["VLESS TCP REALITY"], "vmess": ["VMess TCP", "VMess Websocket"]},
    "expire": FAR_FUTURE,
    "data_limit": 10737418240,
    "data_limit_reset_strategy": "no_reset",
    "status": "active",
    "note": "created by bot test",
}


class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def panel() -> AsyncIterator[MarzbanEmulator]:
    emulator = MarzbanEmulator(
        nodes=[NodeSpec(name="DE node"), NodeSpec(name="NL node", address="127.0.0.2")],
        node_connect_delay=0.05,
    )
    await emulator.start()
    yield emulator
    await emulator.stop()


@pytest.fixture
async def panels() -> AsyncIterator[list[MarzbanEmulator]]:
    emulators = [MarzbanEmulator(nodes=[NodeSpec(name=f"panel{i} node")]) for i in range(3)]
    for emulator in emulators:
        await emulator.start()
    yield emulators
    for emulator in emulators:
        await emulator.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def login(http: aiohttp.ClientSession, base_url: str, password: str = "admin") -> dict[str, str]:
    form = {"username": "admin", "password": password, "grant_type": "password", "scope": ""}
    async with http.post(f"{base_url}/api/admin/token", data=form) as response:
        assert response.status == 200, await response.text()
        token = await response.json()
    return {"Authorization": f"Bearer {token['access_token']}"}


async def call(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> tuple[int, Any]:
    async with http.request(method, url, headers=headers, **kwargs) as response:
        text = await response.text()
        try:
            return response.status, json.loads(text)
        except ValueError:
            return response.status, text


# -- auth ------------------------------------------------------------------------------------


async def test_login_with_form_returns_a_bearer_jwt(panel, http):
    status, body = await call(
        http, "POST", f"{panel.base_url}/api/admin/token", data={"username": "admin", "password": "admin"}
    )
    assert status == 200
    assert list(body) == ["access_token", "token_type"]
    assert body["token_type"] == "bearer"
    header, payload, _ = body["access_token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert header == "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    assert claims["sub"] == "admin" and claims["access"] == "sudo"
    assert claims["exp"] - claims["iat"] == 86400
    assert panel.logins == 1

    auth = {"Authorization": f"Bearer {body['access_token']}"}
    status, admin = await call(http, "GET", f"{panel.base_url}/api/admin", auth)
    assert status == 200
    assert admin == {
        "username": "admin",
        "is_sudo": True,
        "telegram_id": None,
        "discord_webhook": None,
        "users_usage": 0,
    }


async def test_login_with_json_body_is_422_like_the_real_panel(panel, http):
    status, body = await call(
        http, "POST", f"{panel.base_url}/api/admin/token", json={"username": "admin", "password": "admin"}
    )
    assert status == 422
    assert body == {"detail": {"username": "Field required", "password": "Field required"}}
    assert panel.logins == 0


async def test_bad_password_is_401_with_bearer_challenge(panel, http):
    async with http.post(
        f"{panel.base_url}/api/admin/token", data={"username": "admin", "password": "nope"}
    ) as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert await response.json() == {"detail": "Incorrect username or password"}


async def test_missing_and_invalid_bearer(panel, http):
    status, body = await call(http, "GET", f"{panel.base_url}/api/system")
    assert (status, body) == (401, {"detail": "Not authenticated"})
    async with http.get(
        f"{panel.base_url}/api/system", headers={"Authorization": "Bearer not.a.token"}
    ) as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert await response.json() == {"detail": "Could not validate credentials"}


async def test_expire_tokens_then_relogin_works(panel, http):
    auth = await login(http, panel.base_url)
    assert (await call(http, "GET", f"{panel.base_url}/api/system", auth))[0] == 200

    panel.expire_tokens()
    status, body = await call(http, "GET", f"{panel.base_url}/api/system", auth)
    assert (status, body) == (401, {"detail": "Could not validate credentials"})

    fresh = await login(http, panel.base_url)
    assert (await call(http, "GET", f"{panel.base_url}/api/system", fresh))[0] == 200

    status, _ = await call(http, "POST", f"{panel.base_url}/_emulator/expire_tokens")
    assert status == 200
    assert (await call(http, "GET", f"{panel.base_url}/api/system", fresh))[0] == 401
    assert panel.count("POST", "/api/admin/token") == 2


async def test_tokens_expire_after_their_ttl(http):
    clock = FakeClock()
    emulator = MarzbanEmulator(token_ttl_seconds=60, clock=clock)
    async with emulator:
        auth = await login(http, emulator.base_url)
        clock.now += 59
        assert (await call(http, "GET", f"{emulator.base_url}/api/admin", auth))[0] == 200
        clock.now += 2
        status, body = await call(http, "GET", f"{emulator.base_url}/api/admin", auth)
        assert (status, body) == (401, {"detail": "Could not validate credentials"})


# -- system, inbounds, core ------------------------------------------------------------------


async def test_system_stats_reflect_users(panel, http):
    auth = await login(http, panel.base_url)
    status, stats = await call(http, "GET", f"{panel.base_url}/api/system", auth)
    assert status == 200
    assert list(stats) == SYSTEM_KEYS
    assert stats["version"] == "0.8.4"
    assert stats["total_user"] == 0

    names = panel.add_users(5, online=True)
    panel.add_users(2, status="disabled")
    panel.set_user(names[0], status="limited")
    panel.set_user(names[1], online_at=None)
    panel.add_user_traffic(names[2], 10000)
    panel.set_system(cpu_usage=87.5)

    status, stats = await call(http, "GET", f"{panel.base_url}/api/system", auth)
    assert stats["total_user"] == 7
    assert stats["users_active"] == 4
    assert stats["users_limited"] == 1
    assert stats["users_disabled"] == 2
    assert stats["online_users"] == 4
    assert stats["cpu_usage"] == 87.5
    assert (stats["incoming_bandwidth"], stats["outgoing_bandwidth"]) == (1000, 9000)


async def test_inbounds_core_and_config(panel, http):
    auth = await login(http, panel.base_url)
    status, inbounds = await call(http, "GET", f"{panel.base_url}/api/inbounds", auth)
    assert status == 200
    assert set(inbounds) == {"vmess", "vless"}
    assert inbounds["vless"][0] == {
        "tag": "VLESS TCP REALITY",
        "protocol": "vless",
        "network": "tcp",
        "tls": "reality",
        "port": 8443,
    }
    status, core = await call(http, "GET", f"{panel.base_url}/api/core", auth)
    assert core == {"version": "1.8.24", "started": True, "logs_websocket": "/api/core/logs"}
    status, config = await call(http, "GET", f"{panel.base_url}/api/core/config", auth)
    assert status == 200
    assert [i["tag"] for i in config["inbounds"]] == [
        "VMess TCP",
        "VMess Websocket",
        "VLESS TCP REALITY",
        "VLESS Websocket",
    ]


# -- users -----------------------------------------------------------------------------------


async def test_user_lifecycle(panel, http):
    base = panel.base_url
    auth = await login(http, base)

    status, user = await call(http, "POST", f"{base}/api/user", auth, json=ALICE)
    assert status == 200
    assert list(user) == USER_KEYS
    assert user["username"] == "alice_01"
    assert user["status"] == "active"
    assert set(user["proxies"]) == {"vless", "vmess"}
    assert user["proxies"]["vless"]["flow"] == ""
    assert set(user["proxies"]["vmess"]) == {"id"}
    assert user["inbounds"] == ALICE["inbounds"]
    assert user["excluded_inbounds"] == {"vless": ["VLESS Websocket"], "vmess": []}
    assert len(user["links"]) == 3
    assert user["links"][0].startswith("vless://" + user["proxies"]["vless"]["id"] + "@127.0.0.1:8443?")
    assert "security=reality&type=tcp" in user["links"][0]
    assert user["links"][0].endswith("#%F0%9F%9A%80%20Marz%20%28alice_01%29%20%5BVLESS%20-%20tcp%5D")
    assert user["subscription_url"].startswith("/sub/")
    assert user["admin"]["username"] == "admin"
    assert user["used_traffic"] == 0 and user["online_at"] is None

    status, fetched = await call(http, "GET", f"{base}/api/user/alice_01", auth)
    assert status == 200
    assert fetched["proxies"] == user["proxies"]
    assert fetched["created_at"] == user["created_at"]
    assert "+" not in fetched["created_at"] and "T" in fetched["created_at"]

    status, modified = await call(http, "PUT", f"{base}/api/user/alice_01", auth, json={"expire": 1800577378})
    assert status == 200
    assert modified["expire"] == 1800577378
    assert modified["data_limit"] == ALICE["data_limit"]
    assert modified["proxies"] == user["proxies"]
    assert modified["note"] == ALICE["note"]
    assert modified["inbounds"] == user["inbounds"]

    status, modified = await call(
        http, "PUT", f"{base}/api/user/alice_01", auth, json={"data_limit": 0, "expire": None, "note": "x"}
    )
    assert modified["data_limit"] is None
    assert modified["expire"] == 1800577378
    assert modified["note"] == "x"

    status, same = await call(http, "PUT", f"{base}/api/user/alice_01", auth, json={"username": "renamed"})
    assert status == 200 and same["username"] == "alice_01"

    status, body = await call(http, "DELETE", f"{base}/api/user/alice_01", auth)
    assert (status, body) == (200, {"detail": "User successfully deleted"})
    for method in ("GET", "DELETE"):
        status, body = await call(http, method, f"{base}/api/user/alice_01", auth)
        assert (status, body) == (404, {"detail": "User not found"})
    status, body = await call(http, "PUT", f"{base}/api/user/alice_01", auth, json={})
    assert (status, body) == (404, {"detail": "User not found"})
    status, body = await call(http, "POST", f"{base}/api/user/alice_01/reset", auth)
    assert (status, body) == (404, {"detail": "User not found"})
    assert panel.user("alice_01") is None


async def test_create_zero_means_unlimited_and_omitted_inbounds_means_none(panel, http):
    auth = await login(http, panel.base_url)
    payload = {"username": "bob_01", "proxies": {"vless": {}}, "expire": 0, "data_limit": 0}
    status, user = await call(http, "POST", f"{panel.base_url}/api/user", auth, json=payload)
    assert status == 200
    assert user["expire"] is None and user["data_limit"] is None
    assert user["inbounds"] == {"vless": []}
    assert user["excluded_inbounds"] == {"vless": ["VLESS TCP REALITY", "VLESS Websocket"]}
    assert user["links"] == []

    payload = {"username": "carol_01", "proxies": {"vless": {"flow": "xtls-rprx-vision"}}, "inbounds": {}}
    status, user = await call(http, "POST", f"{panel.base_url}/api/user", auth, json=payload)
    assert user["inbounds"] == {"vless": ["VLESS TCP REALITY", "VLESS Websocket"]}
    assert len(user["links"]) == 2
    assert "flow=xtls-rprx-vision" in user["links"][0]


async def test_duplicate_422_and_400_bodies(panel, http):
    base = panel.base_url
    auth = await login(http, base)
    assert (await call(http, "POST", f"{base}/api/user", auth, json=ALICE))[0] == 200
    status, body = await call(http, "POST", f"{base}/api/user", auth, json=ALICE)
    assert (status, body) == (409, {"detail": "User already exists"})

    cases = [
        (
            {**ALICE, "username": "ab"},
            {
                "username": "Value error, Username only can be 3 to 32 characters and contain "
                "a-z, 0-9, and underscores in between."
            },
        ),
        ({**ALICE, "username": "my-user"}, None),
        ({**ALICE, "username": "a" * 33}, None),
        (
            {**ALICE, "username": "new_1", "proxies": {}},
            {"proxies": "Value error, Each user needs at least one proxy"},
        ),
        (
            {**ALICE, "username": "new_1", "proxies": {"wireguard": {}}},
            {"proxies": "Value error, 'wireguard' is not a valid ProxyTypes"},
        ),
        (
            {**ALICE, "username": "new_1", "inbounds": {"vless": ["NOPE"]}},
            {"inbounds": "Value error, Inbound NOPE doesn't exist"},
        ),
        (
            {**ALICE, "username": "new_1", "data_limit": -1},
            {"data_limit": "Input should be greater than or equal to 0"},
        ),
        (
            {**ALICE, "username": "new_1", "data_limit": "10"},
            {"data_limit": "Value error, data_limit must be an integer or a float, not a string"},
        ),
        (
            {**ALICE, "username": "new_1", "status": "disabled"},
            {"status": "Input should be 'active' or 'on_hold'"},
        ),
        (
            {**ALICE, "username": "new_1", "status": "on_hold"},
            {"status": "Value error, User cannot be on hold without a valid on_hold_expire_duration."},
        ),
        (
            {**ALICE, "username": "new_1", "status": "on_hold", "on_hold_expire_duration": 86400},
            {"status": "Value error, User cannot be on hold with specified expire."},
        ),
        (
            {**ALICE, "username": "new_1", "note": "n" * 501},
            {"note": "Value error, User's note can be a maximum of 500 character"},
        ),
        (
            {**ALICE, "username": "new_1", "data_limit_reset_strategy": "hourly"},
            {"data_limit_reset_strategy": "Input should be 'no_reset', 'day', 'week', 'month' or 'year'"},
        ),
        ({key: value for key, value in ALICE.items() if key != "username"}, {"username": "Field required"}),
    ]
    for payload, detail in cases:
        status, body = await call(http, "POST", f"{base}/api/user", auth, json=payload)
        assert status == 422, payload
        assert isinstance(body["detail"], dict)
        if detail is not None:
            assert body == {"detail": detail}

    status, body = await call(
        http,
        "POST",
        f"{base}/api/user",
        {**auth, "Content-Type": "application/json"},
        data=b"{bad json",
    )
    assert (status, body) == (422, {"detail": {"1": "JSON decode error"}})

    status, body = await call(
        http, "POST", f"{base}/api/user", auth, json={"username": "tro_01", "proxies": {"trojan": {}}}
    )
    assert (status, body) == (400, {"detail": "Protocol ProxyTypes.Trojan is disabled on your server"})

    status, body = await call(http, "PUT", f"{base}/api/user/alice_01", auth, json={"status": "expired"})
    assert (status, body) == (
        422,
        {"detail": {"status": "Input should be 'active', 'disabled' or 'on_hold'"}},
    )


async def test_on_hold_create_and_usernames(panel, http):
    auth = await login(http, panel.base_url)
    payload = {
        "username": "Alice.Z_1",
        "proxies": {"vmess": {}},
        "inbounds": {},
        "status": "on_hold",
        "on_hold_expire_duration": 2592000,
        "on_hold_timeout": "2099-12-31T00:00:00",
    }
    status, user = await call(http, "POST", f"{panel.base_url}/api/user", auth, json=payload)
    assert status == 200
    assert user["status"] == "on_hold" and user["expire"] is None
    assert user["on_hold_timeout"] == "2099-12-31T00:00:00"
    status, _ = await call(http, "GET", f"{panel.base_url}/api/user/alice.z_1", auth)
    assert status == 404


async def test_modify_status_expire_and_proxies(panel, http):
    base = panel.base_url
    auth = await login(http, base)
    _, user = await call(http, "POST", f"{base}/api/user", auth, json=ALICE)

    _, past = await call(
        http, "PUT", f"{base}/api/user/alice_01", auth, json={"expire": int(time.time()) - 60}
    )
    assert past["status"] == "expired"
    _, future = await call(
        http, "PUT", f"{base}/api/user/alice_01", auth, json={"expire": int(time.time()) + 3600}
    )
    assert future["status"] == "active"

    _, disabled = await call(http, "PUT", f"{base}/api/user/alice_01", auth, json={"status": "disabled"})
    assert disabled["status"] == "disabled"

    _, fresh = await call(http, "PUT", f"{base}/api/user/alice_01", auth, json={"proxies": {"vless": {}}})
    assert set(fresh["proxies"]) == {"vless"}
    assert fresh["proxies"]["vless"]["id"] != user["proxies"]["vless"]["id"]
    assert fresh["inbounds"] == {"vless": ["VLESS TCP REALITY"]}

    _, narrowed = await call(
        http, "PUT", f"{base}/api/user/alice_01", auth, json={"inbounds": {"vless": ["VLESS Websocket"]}}
    )
    assert narrowed["inbounds"] == {"vless": ["VLESS Websocket"]}


async def test_reset_revoke_and_subscription(panel, http):
    base = panel.base_url
    auth = await login(http, base)
    await call(http, "POST", f"{base}/api/user", auth, json={**ALICE, "data_limit": 100000})
    panel.add_user_traffic("alice_01", 150000)
    panel.set_user("alice_01", status="disabled")

    _, user = await call(http, "GET", f"{base}/api/user/alice_01", auth)
    assert user["used_traffic"] == 150000
    assert user["online_at"] is not None

    sub_url = base + user["subscription_url"]
    async with http.get(sub_url, headers={"User-Agent": "curl/7.88.1"}) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert response.headers["content-disposition"] == 'attachment; filename="alice_01"'
        assert response.headers["subscription-userinfo"] == (
            f"upload=0; download=150000; total=100000; expire={FAR_FUTURE}"
        )
        assert response.headers["profile-title"] == "base64:U3Vic2NyaXB0aW9u"
        assert response.headers["profile-update-interval"] == "12"
        links = base64.b64decode(await response.text()).decode().split("\n")
    assert links == user["links"]

    status, info = await call(http, "GET", f"{sub_url}/info")
    assert status == 200
    assert "admin" not in info and "note" not in info and "inbounds" not in info
    assert info["sub_last_user_agent"] == "curl/7.88.1"

    status, reset = await call(http, "POST", f"{base}/api/user/alice_01/reset", auth)
    assert status == 200
    assert reset["used_traffic"] == 0
    assert reset["lifetime_used_traffic"] == 150000
    assert reset["status"] == "active"

    status, revoked = await call(http, "POST", f"{base}/api/user/alice_01/revoke_sub", auth)
    assert status == 200
    assert revoked["proxies"]["vless"]["id"] != user["proxies"]["vless"]["id"]
    status, body = await call(http, "GET", sub_url)
    assert (status, body) == (404, {"detail": "Not Found"})
    assert (await call(http, "GET", base + revoked["subscription_url"]))[0] == 200


async def test_limited_by_traffic_and_reactivated_by_reset(panel, http):
    auth = await login(http, panel.base_url)
    await call(http, "POST", f"{panel.base_url}/api/user", auth, json={**ALICE, "data_limit": 1000})
    panel.set_user("alice_01", used_traffic=1000)
    _, user = await call(http, "GET", f"{panel.base_url}/api/user/alice_01", auth)
    assert user["status"] == "limited"
    _, user = await call(http, "POST", f"{panel.base_url}/api/user/alice_01/reset", auth)
    assert user["status"] == "active"


async def test_list_users_with_filters_and_total(panel, http):
    base = panel.base_url
    auth = await login(http, base)
    for index, name in enumerate(["carol_01", "alice_01", "bob_01"]):
        payload = {**ALICE, "username": name, "data_limit": (index + 1) * 1000, "note": f"n{index}"}
        assert (await call(http, "POST", f"{base}/api/user", auth, json=payload))[0] == 200
    panel.set_user("bob_01", status="disabled")

    _, page = await call(http, "GET", f"{base}/api/users", auth, params={"offset": 1, "limit": 1})
    assert page["total"] == 3
    assert [u["username"] for u in page["users"]] == ["alice_01"]

    _, everyone = await call(http, "GET", f"{base}/api/users", auth, params={"sort": "username"})
    assert [u["username"] for u in everyone["users"]] == ["alice_01", "bob_01", "carol_01"]
    _, by_limit = await call(http, "GET", f"{base}/api/users", auth, params={"sort": "-data_limit"})
    assert [u["username"] for u in by_limit["users"]] == ["bob_01", "alice_01", "carol_01"]

    _, found = await call(http, "GET", f"{base}/api/users", auth, params={"search": "N1"})
    assert [u["username"] for u in found["users"]] == ["alice_01"]
    _, disabled = await call(http, "GET", f"{base}/api/users", auth, params={"status": "disabled"})
    assert (disabled["total"], disabled["users"][0]["username"]) == (1, "bob_01")
    _, named = await call(
        http, "GET", f"{base}/api/users", auth, params=[("username", "bob_01"), ("username", "carol_01")]
    )
    assert named["total"] == 2

    status, body = await call(http, "GET", f"{base}/api/users", auth, params={"sort": "bogus"})
    assert (status, body) == (400, {"detail": '"bogus" is not a valid sort option'})
    status, body = await call(http, "GET", f"{base}/api/users", auth, params={"status": "gone"})
    assert status == 422
    assert body == {
        "detail": {"status": "Input should be 'active', 'disabled', 'limited', 'expired' or 'on_hold'"}
    }


async def test_routing_errors(panel, http):
    auth = await login(http, panel.base_url)
    status, body = await call(http, "GET", f"{panel.base_url}/api/nowhere", auth)
    assert (status, body) == (404, {"detail": "Not Found"})
    status, body = await call(http, "DELETE", f"{panel.base_url}/api/users", auth)
    assert (status, body) == (405, {"detail": "Method Not Allowed"})
    async with http.get(f"{panel.base_url}/api/users/", headers=auth, allow_redirects=False) as response:
        assert response.status == 307
        assert response.headers["Location"].endswith("/api/users")


# -- nodes -----------------------------------------------------------------------------------


async def test_nodes_crud_status_and_usage(panel, http):
    base = panel.base_url
    auth = await login(http, base)
    status, nodes = await call(http, "GET", f"{base}/api/nodes", auth)
    assert status == 200
    assert [n["name"] for n in nodes] == ["DE node", "NL node"]
    assert list(nodes[0]) == [
        "name",
        "address",
        "port",
        "api_port",
        "usage_coefficient",
        "id",
        "xray_version",
        "status",
        "message",
    ]
    assert nodes[0]["status"] == "connected" and nodes[0]["xray_version"] == "1.8.24"

    payload = {"name": "FI node", "address": "10.0.0.3", "usage_coefficient": 3, "add_as_new_host": False}
    status, node = await call(http, "POST", f"{base}/api/node", auth, json=payload)
    assert status == 200
    assert node["status"] == "connecting" and node["usage_coefficient"] == 1.0
    assert node["id"] == 3
    status, body = await call(http, "POST", f"{base}/api/node", auth, json=payload)
    assert (status, body) == (409, {"detail": 'Node "FI node" already exists'})
    status, body = await call(
        http, "POST", f"{base}/api/node", auth, json={"name": "x", "usage_coefficient": 0}
    )
    assert status == 422
    assert body == {
        "detail": {"address": "Field required", "usage_coefficient": "Input should be greater than 0"}
    }

    await asyncio.sleep(0.1)
    status, node = await call(http, "GET", f"{base}/api/node/3", auth)
    assert node["status"] == "connected"

    panel.set_node(3, reachable=False)
    status, body = await call(http, "POST", f"{base}/api/node/3/reconnect", auth)
    assert (status, body) == (200, {"detail": "Reconnection task scheduled"})
    await asyncio.sleep(0.1)
    _, node = await call(http, "GET", f"{base}/api/node/3", auth)
    assert (node["status"], node["message"]) == ("error", "[Errno 111] Connection refused")

    status, node = await call(http, "PUT", f"{base}/api/node/3", auth, json={"usage_coefficient": 2.5})
    assert (node["status"], node["usage_coefficient"]) == ("connecting", 2.5)
    status, node = await call(http, "PUT", f"{base}/api/node/3", auth, json={"status": "disabled"})
    assert (node["status"], node["message"]) == ("disabled", None)

    panel.add_user_traffic(panel.add_users(1)[0], 10000)
    panel.add_user_traffic(panel.usernames[0], 40000, node_id=3)
    panel.set_node(1, uplink=2000, downlink=18000)
    status, usage = await call(http, "GET", f"{base}/api/nodes/usage", auth)
    assert status == 200
    assert usage == {
        "usages": [
            {"node_id": None, "node_name": "Master", "uplink": 1000, "downlink": 9000},
            {"node_id": 1, "node_name": "DE node", "uplink": 2000, "downlink": 18000},
            {"node_id": 2, "node_name": "NL node", "uplink": 0, "downlink": 0},
            {"node_id": 3, "node_name": "FI node", "uplink": 4000, "downlink": 36000},
        ]
    }
    assert panel.user(panel.usernames[0])["used_traffic"] == 110000
    status, body = await call(http, "GET", f"{base}/api/nodes/usage", auth, params={"start": "garbage"})
    assert (status, body) == (400, {"detail": "Invalid date range or format"})

    status, body = await call(http, "DELETE", f"{base}/api/node/3", auth)
    assert (status, body) == (200, {})
    status, body = await call(http, "GET", f"{base}/api/node/3", auth)
    assert (status, body) == (404, {"detail": "Node not found"})


async def test_node_added_as_new_host_doubles_links(panel, http):
    auth = await login(http, panel.base_url)
    await call(
        http, "POST", f"{panel.base_url}/api/node", auth, json={"name": "Host node", "address": "10.9.9.9"}
    )
    _, user = await call(http, "POST", f"{panel.base_url}/api/user", auth, json=ALICE)
    assert len(user["links"]) == 6
    assert any("@10.9.9.9:8443" in link for link in user["links"])


# -- faults ----------------------------------------------------------------------------------


async def test_5xx_mode_for_n_requests_and_until_cleared(panel, http):
    base = panel.base_url
    auth = await login(http, base)
    panel.fail(502, times=2)
    for _ in range(2):
        status, body = await call(http, "GET", f"{base}/api/system", auth)
        assert (status, body) == (502, "Bad Gateway")
    assert (await call(http, "GET", f"{base}/api/system", auth))[0] == 200

    status, _ = await call(http, "POST", f"{base}/_emulator/fail", json={"status": 500, "path": "/api/user*"})
    assert status == 200
    assert (await call(http, "POST", f"{base}/api/user", auth, json=ALICE))[0] == 500
    assert (await call(http, "GET", f"{base}/api/system", auth))[0] == 200
    assert panel.user("alice_01") is None
    await call(http, "DELETE", f"{base}/_emulator/fail")
    assert (await call(http, "POST", f"{base}/api/user", auth, json=ALICE))[0] == 200


async def test_slow_mode_trips_client_timeouts(panel, http):
    auth = await login(http, panel.base_url)
    panel.slow(0.5)
    with pytest.raises(asyncio.TimeoutError):
        await call(
            http, "GET", f"{panel.base_url}/api/system", auth, timeout=aiohttp.ClientTimeout(total=0.1)
        )
    panel.slow(0)
    started = time.monotonic()
    assert (await call(http, "GET", f"{panel.base_url}/api/system", auth))[0] == 200
    assert time.monotonic() - started < 0.4


async def test_down_then_up_on_the_same_port(panel):
    base = panel.base_url
    async with aiohttp.ClientSession() as http:
        auth = await login(http, base)
    await panel.down()
    assert panel.is_down
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectorError):
            await call(http, "GET", f"{base}/api/system", auth)
    await panel.up()
    async with aiohttp.ClientSession() as http:
        assert (await call(http, "GET", f"{base}/api/system", auth))[0] == 200
    assert panel.base_url == base


async def test_down_over_http_comes_back_by_itself(panel, http):
    base = panel.base_url
    status, body = await call(http, "POST", f"{base}/_emulator/down", json={"seconds": 0.3})
    assert status == 200 and body["down_for"] == 0.3
    await asyncio.sleep(0.1)
    async with aiohttp.ClientSession() as fresh:
        with pytest.raises(aiohttp.ClientConnectorError):
            await call(fresh, "GET", f"{base}/api/system")
    await asyncio.sleep(0.5)
    async with aiohttp.ClientSession() as fresh:
        assert (await call(fresh, "GET", f"{base}/api/system"))[0] == 401


async def test_create_then_time_out_keeps_the_user(panel, http):
    auth = await login(http, panel.base_url)
    panel.hang_after_create(1.0)
    with pytest.raises(asyncio.TimeoutError):
        await call(
            http,
            "POST",
            f"{panel.base_url}/api/user",
            auth,
            json=ALICE,
            timeout=aiohttp.ClientTimeout(total=0.2),
        )
    assert panel.user("alice_01") is not None
    status, body = await call(http, "POST", f"{panel.base_url}/api/user", auth, json=ALICE)
    assert (status, body) == (409, {"detail": "User already exists"})
    assert (await call(http, "GET", f"{panel.base_url}/api/user/alice_01", auth))[0] == 200
    assert panel.count("POST", "/api/user") == 2


# -- controls, request log, several panels ---------------------------------------------------


async def test_request_log_counters_and_reset(panel, http):
    auth = await login(http, panel.base_url)
    await call(http, "POST", f"{panel.base_url}/api/user", auth, json=ALICE)
    await call(http, "GET", f"{panel.base_url}/api/user/alice_01", auth)
    await call(http, "GET", f"{panel.base_url}/api/user/nobody", auth)

    status, log = await call(http, "GET", f"{panel.base_url}/_emulator/requests")
    assert status == 200
    assert [(r["method"], r["path"], r["status"]) for r in log["requests"]] == [
        ("POST", "/api/admin/token", 200),
        ("POST", "/api/user", 200),
        ("GET", "/api/user/alice_01", 200),
        ("GET", "/api/user/nobody", 404),
    ]
    assert log["counters"]["GET /api/user/{username}"] == 2
    assert log["logins"] == 1
    assert json.loads(log["requests"][1]["body"])["username"] == "alice_01"

    status, state = await call(http, "POST", f"{panel.base_url}/_emulator/reset")
    assert status == 200 and state["users"] == 0 and len(state["nodes"]) == 2
    assert (await call(http, "GET", f"{panel.base_url}/api/user/alice_01", auth))[0] == 401


async def test_http_controls_for_nodes_users_and_system(panel, http):
    control = f"{panel.base_url}/_emulator"
    status, node = await call(http, "POST", f"{control}/nodes", json={"name": "Extra", "status": "error"})
    assert status == 200 and node["message"] == "[Errno 111] Connection refused"
    status, node = await call(
        http, "PATCH", f"{control}/nodes/{node['id']}", json={"status": "connected", "usage_coefficient": 4}
    )
    assert (node["status"], node["usage_coefficient"]) == ("connected", 4.0)
    assert (await call(http, "DELETE", f"{control}/nodes/{node['id']}"))[0] == 200

    status, created = await call(http, "POST", f"{control}/users", json={"count": 3, "online": True})
    assert status == 200 and created["total"] == 3
    status, user = await call(
        http,
        "PATCH",
        f"{control}/users/{created['usernames'][0]}",
        json={"used_traffic": 5000, "online_at": None},
    )
    assert (user["used_traffic"], user["online_at"]) == (5000, None)
    status, stats = await call(http, "POST", f"{control}/system", json={"cpu_usage": 55.5})
    assert (stats["cpu_usage"], stats["online_users"], stats["total_user"]) == (55.5, 2, 3)
    status, body = await call(http, "POST", f"{control}/slow", json={"seconds": "x"})
    assert status == 400 and "Expected `float`" in body["detail"]


async def test_three_panels_side_by_side(panels, http):
    urls = [p.base_url for p in panels]
    assert len(set(urls)) == 3
    panels[1].add_users(10)
    panels[2].fail(503)
    totals = []
    for panel in panels[:2]:
        auth = await login(http, panel.base_url)
        _, stats = await call(http, "GET", f"{panel.base_url}/api/system", auth)
        totals.append(stats["total_user"])
        _, nodes = await call(http, "GET", f"{panel.base_url}/api/nodes", auth)
        assert len(nodes) == 1
    assert totals == [0, 10]
    status, _ = await call(http, "POST", f"{panels[2].base_url}/api/admin/token", data={})
    assert status == 503


async def test_runs_alone_from_the_command_line():
    ports = []
    sockets = []
    for _ in range(2):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        ports.append(sock.getsockname()[1])
        sockets.append(sock)
    for sock in sockets:
        sock.close()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "orbit.sandbox.marzban",
        "--port",
        str(ports[0]),
        "--port",
        str(ports[1]),
        "--nodes",
        "2",
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        lines = []
        assert process.stderr is not None
        while len([line for line in lines if "marzban panel" in line]) < 2:
            line = await asyncio.wait_for(process.stderr.readline(), timeout=10)
            assert line, "".join(lines)
            lines.append(line.decode())
        assert f"http://127.0.0.1:{ports[1]}" in "".join(lines)
        async with aiohttp.ClientSession() as http:
            for port in ports:
                auth = await login(http, f"http://127.0.0.1:{port}")
                _, nodes = await call(http, "GET", f"http://127.0.0.1:{port}/api/nodes", auth)
                assert len(nodes) == 2
    finally:
        process.terminate()
        assert await asyncio.wait_for(process.wait(), timeout=10) == 0


# -- edge cases of a real v0.8.4 panel (reference/marzban-api.md §10) -------------------------

RANGE_INBOUND = Inbound(tag="VLESS TCP range", protocol="vless", network="tcp", port="20000-20010")


async def test_a_port_range_inbound_is_a_string_port(http):
    async with MarzbanEmulator(inbounds=[*DEFAULT_INBOUNDS, RANGE_INBOUND]) as panel:
        auth = await login(http, panel.base_url)
        status, grouped = await call(http, "GET", f"{panel.base_url}/api/inbounds", auth)
        assert status == 200
        assert grouped["vless"][-1] == {
            "tag": "VLESS TCP range", "protocol": "vless", "network": "tcp", "tls": "none",
            "port": "20000-20010",
        }  # fmt: skip
        body = ALICE | {"inbounds": {}}
        status, user = await call(http, "POST", f"{panel.base_url}/api/user", auth, json=body)
        assert status == 200 and any("20000-20010" in link for link in user["links"])


async def test_users_of_the_env_sudo_admin_show_no_admin_and_crash_on_delete(http):
    async with MarzbanEmulator(sudo_from_env=True) as panel:
        base = panel.base_url
        auth = await login(http, base)
        status, admin = await call(http, "GET", f"{base}/api/admin", auth)
        assert status == 200 and admin["users_usage"] is None
        status, user = await call(http, "POST", f"{base}/api/user", auth, json=ALICE)
        assert status == 200 and user["admin"] is None
        assert panel.in_xray("alice_01")
        # The row goes, the answer is a text 500, and Xray still serves the user.
        status, body = await call(http, "DELETE", f"{base}/api/user/alice_01", auth)
        assert (status, body) == (500, "Internal Server Error")
        assert panel.user("alice_01") is None and panel.in_xray("alice_01")
        status, body = await call(http, "DELETE", f"{base}/api/user/alice_01", auth)
        assert (status, body) == (404, {"detail": "User not found"})
        panel.restart_xray()
        assert not panel.in_xray("alice_01")
        # Disabling does remove a user from Xray.
        await call(http, "POST", f"{base}/api/user", auth, json=ALICE | {"username": "bob_01"})
        status, user = await call(http, "PUT", f"{base}/api/user/bob_01", auth, json={"status": "disabled"})
        assert status == 200 and not panel.in_xray("bob_01")


async def test_an_api_admins_users_are_deleted_from_xray(panel, http):
    auth = await login(http, panel.base_url)
    status, user = await call(http, "POST", f"{panel.base_url}/api/user", auth, json=ALICE)
    assert user["admin"]["username"] == "admin" and panel.in_xray("alice_01")
    status, _ = await call(http, "DELETE", f"{panel.base_url}/api/user/alice_01", auth)
    assert status == 200 and not panel.in_xray("alice_01")


async def test_tokens_issued_in_the_second_of_a_password_change_are_refused(http):
    clock = FakeClock()
    clock.now = 2_000_000_000.25
    async with MarzbanEmulator(clock=clock) as panel:
        base = panel.base_url
        old = await login(http, base)
        clock.now += 0.25
        panel.set_admin_password("changed")
        same_second = await login(http, base, "changed")
        clock.now += 0.25
        for headers in (old, same_second):
            status, body = await call(http, "GET", f"{base}/api/system", headers)
            assert (status, body) == (401, {"detail": "Could not validate credentials"})
        clock.now += 1.0
        later = await login(http, base, "changed")
        status, _ = await call(http, "GET", f"{base}/api/system", later)
        assert status == 200


async def test_dates_without_a_zone_are_read_in_the_panels_local_time(http):
    clock = FakeClock()
    async with MarzbanEmulator(clock=clock, local_utc_offset=timedelta(hours=3, minutes=30)) as panel:
        auth = await login(http, panel.base_url)
        panel.add_node_traffic(None, 100, 900, at=clock.now - 26 * 3600)  # outside the last 24 h
        since = datetime.fromtimestamp(clock.now - 24 * 3600, UTC)
        naive = since.replace(tzinfo=None).isoformat()
        zoned = since.strftime("%Y-%m-%dT%H:%M:%SZ")
        url = f"{panel.base_url}/api/nodes/usage"
        _, read_local = await call(http, "GET", url, auth, params={"start": naive})
        _, read_utc = await call(http, "GET", url, auth, params={"start": zoned})
        # Read as UTC+3:30 the "24 h" window starts 27.5 h ago and counts the old traffic.
        assert read_local["usages"][0]["downlink"] == 900
        assert read_utc["usages"][0]["downlink"] == 0


async def test_search_is_sql_like_with_underscore_and_percent_wildcards(panel, http):
    auth = await login(http, panel.base_url)
    for name in ("o12_ab", "o12xab", "o1234"):
        await call(http, "POST", f"{panel.base_url}/api/user", auth, json=ALICE | {"username": name})
    url = f"{panel.base_url}/api/users"

    async def found(search: str) -> list[str]:
        _, page = await call(http, "GET", url, auth, params={"search": search})
        return sorted(u["username"] for u in page["users"])

    assert await found("o12_ab") == ["o12_ab", "o12xab"]
    assert await found("O12%B") == ["o12_ab", "o12xab"]
    assert await found("1234") == ["o1234"]


async def test_a_node_with_nothing_listening_ends_in_error_and_keeps_its_message_reconnecting(http):
    async with MarzbanEmulator(node_connect_delay=0.05, new_nodes_reachable=False) as panel:
        base = panel.base_url
        auth = await login(http, base)
        body = {"name": "Dead node", "address": "10.0.0.9"}
        _, node = await call(http, "POST", f"{base}/api/node", auth, json=body)
        assert (node["status"], node["message"]) == ("connecting", None)
        await asyncio.sleep(0.1)
        _, node = await call(http, "GET", f"{base}/api/node/{node['id']}", auth)
        assert (node["status"], node["message"]) == ("error", "[Errno 111] Connection refused")
        url = f"{base}/api/node/{node['id']}"
        _, node = await call(http, "PUT", url, auth, json={"usage_coefficient": 2})
        assert (node["status"], node["message"]) == ("connecting", "[Errno 111] Connection refused")
