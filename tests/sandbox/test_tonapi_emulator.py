"""The tonapi emulator over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import AsyncIterator

import aiohttp
import pytest

from orbit.sandbox.tonapi import (
    DEFAULT_SENDER,
    MAX_LIMIT,
    TonapiEmulator,
    friendly_address,
    normalize_address,
)

SHOP = "0:" + "ab" * 32
PAYER = "0:" + "cd" * 32
API_KEY = "test-tonapi-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
async def tonapi() -> AsyncIterator[TonapiEmulator]:
    emulator = TonapiEmulator(api_key=API_KEY)
    await emulator.start()
    yield emulator
    await emulator.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def get_txs(
    http: aiohttp.ClientSession, tonapi: TonapiEmulator, account: str = SHOP, **query: object
) -> list[dict]:
    url = f"{tonapi.base_url}/v2/blockchain/accounts/{account}/transactions"
    params = {k: str(v) for k, v in query.items()}
    async with http.get(url, params=params, headers=AUTH) as response:
        assert response.status == 200, await response.text()
        return (await response.json())["transactions"]


def test_addresses_raw_and_friendly_are_one_account() -> None:
    bounceable = friendly_address(SHOP)
    non_bounceable = friendly_address(SHOP, bounceable=False)
    testnet = friendly_address(SHOP, testnet=True, url_safe=False)
    assert bounceable.startswith("EQ") and non_bounceable.startswith("UQ")
    assert testnet.startswith("kQ")
    for form in (SHOP, SHOP.upper().replace("0X", "0x"), bounceable, non_bounceable, testnet):
        assert normalize_address(form) == SHOP
    with pytest.raises(ValueError):
        normalize_address(bounceable[:-2] + ("AA" if bounceable[-2:] != "AA" else "AB"))
    with pytest.raises(ValueError):
        normalize_address("not-an-address")


async def test_paging_asc_after_lt_returns_each_tx_once(
    tonapi: TonapiEmulator, http: aiohttp.ClientSession
) -> None:
    hashes = [tonapi.send_ton(SHOP, (i + 1) * 10**9, f"VPN-{i}") for i in range(23)]
    tonapi.send_ton(PAYER, 10**9, "someone else")

    seen: list[dict] = []
    after_lt = 0
    while True:
        page = await get_txs(http, tonapi, sort_order="asc", after_lt=after_lt, limit=5)
        if not page:
            break
        assert len(page) <= 5
        lts = [tx["lt"] for tx in page]
        assert lts == sorted(lts)
        seen.extend(page)
        after_lt = page[-1]["lt"]
    assert [tx["hash"] for tx in seen] == hashes
    assert len({tx["lt"] for tx in seen}) == 23

    # a poll from the last cursor sees only what arrived since
    new_hash = tonapi.send_ton(SHOP, 5 * 10**9, "VPN-new")
    fresh = await get_txs(http, tonapi, sort_order="asc", after_lt=after_lt)
    assert [tx["hash"] for tx in fresh] == [new_hash]


async def test_paging_desc_before_lt_and_defaults(
    tonapi: TonapiEmulator, http: aiohttp.ClientSession
) -> None:
    hashes = [tonapi.send_ton(SHOP, 10**9, f"c{i}") for i in range(12)]
    latest = await get_txs(http, tonapi)
    assert [tx["hash"] for tx in latest] == hashes[::-1]

    seen: list[str] = []
    before_lt = None
    while True:
        query = {"limit": 4} if before_lt is None else {"limit": 4, "before_lt": before_lt}
        page = await get_txs(http, tonapi, **query)
        if not page:
            break
        seen.extend(tx["hash"] for tx in page)
        before_lt = page[-1]["lt"]
    assert seen == hashes[::-1]

    middle = await get_txs(
        http, tonapi, after_lt=latest[-3]["lt"], before_lt=latest[2]["lt"], sort_order="asc"
    )
    assert [tx["hash"] for tx in middle] == hashes[3:9]

    friendly = friendly_address(SHOP, bounceable=False)
    assert len(await get_txs(http, tonapi, account=friendly)) == 12


async def test_transaction_shape_and_text_comment(
    tonapi: TonapiEmulator, http: aiohttp.ClientSession
) -> None:
    tx_hash = tonapi.send_ton(friendly_address(SHOP), 1_500_000_000, "VPN-7F3K", sender=PAYER)
    [tx] = await get_txs(http, tonapi)
    for field in (
        "hash", "lt", "account", "success", "utime", "orig_status", "end_status",
        "total_fees", "end_balance", "transaction_type", "state_update_old",
        "state_update_new", "out_msgs", "block", "aborted", "destroyed", "raw",
    ):  # fmt: skip
        assert field in tx, field
    assert tx["hash"] == tx_hash and len(tx_hash) == 64
    assert tx["account"] == {"address": SHOP, "is_scam": False, "is_wallet": True}
    assert tx["success"] is True and tx["aborted"] is False
    assert tx["transaction_type"] == "TransOrd"
    assert tx["out_msgs"] == []
    msg = tx["in_msg"]
    for field in (
        "msg_type", "created_lt", "ihr_disabled", "bounce", "bounced", "value", "fwd_fee",
        "ihr_fee", "import_fee", "created_at", "hash",
    ):  # fmt: skip
        assert field in msg, field
    assert msg["msg_type"] == "int_msg"
    assert msg["value"] == 1_500_000_000 and isinstance(msg["value"], int)
    assert msg["source"]["address"] == PAYER
    assert msg["destination"]["address"] == SHOP
    assert msg["bounced"] is False
    assert msg["op_code"] == "0x00000000"
    assert msg["decoded_op_name"] == "text_comment"
    assert msg["decoded_body"] == {"text": "VPN-7F3K"}
    assert bytes.fromhex(msg["raw_body"][8:]).decode() == "VPN-7F3K"

    async with http.get(f"{tonapi.base_url}/v2/blockchain/transactions/{tx_hash}", headers=AUTH) as r:
        assert r.status == 200
        assert (await r.json())["lt"] == tx["lt"]

    tonapi.send_ton(SHOP, 10**9)  # no comment
    [plain, _] = await get_txs(http, tonapi)
    assert "decoded_body" not in plain["in_msg"] and "op_code" not in plain["in_msg"]
    assert plain["prev_trans_hash"] == tx_hash and plain["prev_trans_lt"] == tx["lt"]


async def test_bounced_failed_and_outgoing(tonapi: TonapiEmulator, http: aiohttp.ClientSession) -> None:
    refund = tonapi.send_outgoing(SHOP, PAYER, 2 * 10**9, "refund VPN-1")
    bounced = tonapi.send_ton(SHOP, 2 * 10**9 - 10**6, "refund VPN-1", PAYER, bounced=True)
    failed = tonapi.send_ton(SHOP, 3 * 10**9, "VPN-2", PAYER, failed=True)
    failed_nb = tonapi.send_ton(SHOP, 10**9, "VPN-3", PAYER, failed=True, bounce=False)
    txs = {tx["hash"]: tx for tx in await get_txs(http, tonapi, sort_order="asc")}

    out = txs[refund]
    assert out["in_msg"]["msg_type"] == "ext_in_msg" and "source" not in out["in_msg"]
    [out_msg] = out["out_msgs"]
    assert out_msg["destination"]["address"] == PAYER
    assert out_msg["value"] == 2 * 10**9
    assert out_msg["decoded_body"] == {"text": "refund VPN-1"}

    b = txs[bounced]
    assert b["in_msg"]["bounced"] is True and b["in_msg"]["bounce"] is False
    assert b["success"] is True  # the bounce itself lands; a watcher must check `bounced`

    f = txs[failed]
    assert f["success"] is False and f["aborted"] is True
    assert f["compute_phase"]["success"] is False
    [back] = f["out_msgs"]
    assert back["bounced"] is True and back["destination"]["address"] == PAYER
    assert 0 < back["value"] < 3 * 10**9
    assert f["bounce_phase"] == "TrPhaseBounceOk"

    nb = txs[failed_nb]
    assert nb["success"] is False and nb["out_msgs"] == []


async def test_rate_limit_and_server_errors(tonapi: TonapiEmulator, http: aiohttp.ClientSession) -> None:
    tonapi.send_ton(SHOP, 10**9, "x")
    tonapi.fail_next(2)
    tonapi.fail_next(1, status=502)
    url = f"{tonapi.base_url}/v2/blockchain/accounts/{SHOP}/transactions"
    statuses = []
    for _ in range(4):
        async with http.get(url, headers=AUTH) as response:
            statuses.append(response.status)
            body = await response.json()
            if response.status == 429:
                assert body == {"error": "rate limit: free tier 1 rps"}
            elif response.status == 502:
                assert set(body) == {"error"}
    assert statuses == [429, 429, 502, 200]
    assert [r.status for r in tonapi.requests] == statuses

    # the same over the control endpoint
    async with http.post(f"{tonapi.base_url}/_emulator/fail", json={"count": 1}) as r:
        assert r.status == 200
    async with http.get(url, headers=AUTH) as response:
        assert response.status == 429


async def test_rates(tonapi: TonapiEmulator, http: aiohttp.ClientSession) -> None:
    url = f"{tonapi.base_url}/v2/rates"
    async with http.get(url, params={"tokens": "ton", "currencies": "rub"}, headers=AUTH) as r:
        body = await r.json()
    assert body["rates"]["TON"]["prices"] == {"RUB": 220.5}
    assert set(body["rates"]["TON"]) == {"prices", "diff_24h", "diff_7d", "diff_30d"}

    tonapi.set_rate(301.25)
    async with http.post(f"{tonapi.base_url}/_emulator/rates", json={"currency": "usd", "price": 3.5}) as r:
        assert r.status == 200
    async with http.get(url, params={"tokens": "ton", "currencies": "rub,usd"}, headers=AUTH) as r:
        prices = (await r.json())["rates"]["TON"]["prices"]
    assert prices == {"RUB": 301.25, "USD": 3.5}

    async with http.get(url, params={"tokens": "ton"}, headers=AUTH) as r:
        assert r.status == 400
        assert "error" in await r.json()


async def test_bearer_auth(tonapi: TonapiEmulator, http: aiohttp.ClientSession) -> None:
    url = f"{tonapi.base_url}/v2/blockchain/accounts/{SHOP}/transactions"
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": API_KEY}):
        async with http.get(url, headers=headers) as response:
            assert response.status == 401
            assert set(await response.json()) == {"error"}
    async with http.get(url, headers=AUTH) as response:
        assert response.status == 200
        assert await response.json() == {"transactions": []}

    open_emulator = TonapiEmulator()
    base = await open_emulator.start()
    try:
        async with http.get(f"{base}/v2/blockchain/accounts/{SHOP}/transactions") as response:
            assert response.status == 200
    finally:
        await open_emulator.stop()


async def test_bad_parameters(tonapi: TonapiEmulator, http: aiohttp.ClientSession) -> None:
    base = f"{tonapi.base_url}/v2/blockchain/accounts"
    cases = [
        (f"{base}/{SHOP}/transactions", {"limit": str(MAX_LIMIT + 1)}),
        (f"{base}/{SHOP}/transactions", {"limit": "0"}),
        (f"{base}/{SHOP}/transactions", {"sort_order": "up"}),
        (f"{base}/{SHOP}/transactions", {"after_lt": "x"}),
        (f"{base}/nonsense/transactions", {}),
    ]
    for url, params in cases:
        async with http.get(url, params=params, headers=AUTH) as response:
            assert response.status == 400, (url, params)
            assert set(await response.json()) == {"error"}
    async with http.get(
        f"{base}/{SHOP}/transactions", params={"limit": str(MAX_LIMIT)}, headers=AUTH
    ) as response:
        assert response.status == 200


async def test_slow_mode(tonapi: TonapiEmulator, http: aiohttp.ClientSession) -> None:
    tonapi.set_delay(0.5)
    url = f"{tonapi.base_url}/v2/blockchain/accounts/{SHOP}/transactions"
    with pytest.raises(asyncio.TimeoutError):
        async with http.get(url, headers=AUTH, timeout=aiohttp.ClientTimeout(total=0.1)):
            pass
    async with http.post(f"{tonapi.base_url}/_emulator/delay", json={"seconds": 0}) as r:
        assert r.status == 200
    async with http.get(url, headers=AUTH, timeout=aiohttp.ClientTimeout(total=2)) as r:
        assert r.status == 200


async def test_http_controls_and_reset(tonapi: TonapiEmulator, http: aiohttp.ClientSession) -> None:
    base = tonapi.base_url
    async with http.post(
        f"{base}/_emulator/send_ton",
        json={"to": friendly_address(SHOP), "amount": 2 * 10**9, "comment": "VPN-HTTP"},
    ) as r:
        assert r.status == 200
        sent = await r.json()
    async with http.post(
        f"{base}/_emulator/send_outgoing",
        json={"source": SHOP, "to": PAYER, "amount": 10**9},
    ) as r:
        assert r.status == 200
    async with http.post(f"{base}/_emulator/send_ton", json={"amount": 1}) as r:
        assert r.status == 400
    [tx, out] = await get_txs(http, tonapi, sort_order="asc")
    assert tx["hash"] == sent["hash"] and tx["lt"] == sent["lt"]
    assert tx["in_msg"]["source"]["address"] == DEFAULT_SENDER
    assert out["out_msgs"][0]["value"] == 10**9

    async with http.get(f"{base}/_emulator/requests") as r:
        logged = await r.json()
    assert [entry["path"] for entry in logged] == [f"/v2/blockchain/accounts/{SHOP}/transactions"]
    assert logged[0]["query"] == {"sort_order": "asc"}

    async with http.post(f"{base}/_emulator/reset") as r:
        assert r.status == 200
    assert tonapi.requests == []
    assert await get_txs(http, tonapi) == []
    assert tonapi.send_ton(SHOP, 1)  # lt keeps growing after a reset
    [after] = await get_txs(http, tonapi)
    assert after["lt"] > out["lt"]


async def test_hidden_transactions_show_up_late(tonapi: TonapiEmulator, http: aiohttp.ClientSession) -> None:
    first = tonapi.send_ton(SHOP, 1, "first")
    lagging = tonapi.send_ton(SHOP, 2, "lagging", hidden=True)
    last = tonapi.send_ton(SHOP, 3, "last")
    assert [tx["hash"] for tx in await get_txs(http, tonapi, sort_order="asc")] == [first, last]
    tonapi.reveal(lagging)
    shown = await get_txs(http, tonapi, sort_order="asc")
    assert [tx["hash"] for tx in shown] == [first, lagging, last]
    assert shown[0]["lt"] < shown[1]["lt"] < shown[2]["lt"]  # it was on the chain all along

    async with http.post(
        f"{tonapi.base_url}/_emulator/send_ton", json={"to": SHOP, "amount": 4, "hidden": True}
    ) as r:
        hidden = (await r.json())["hash"]
    assert len(await get_txs(http, tonapi)) == 3
    async with http.post(f"{tonapi.base_url}/_emulator/reveal", json={"hash": hidden}) as r:
        assert r.status == 200
    assert len(await get_txs(http, tonapi)) == 4


async def test_scripted_raw_pages_are_served_once_each_in_order(
    tonapi: TonapiEmulator, http: aiohttp.ClientSession
) -> None:
    tonapi.send_ton(SHOP, 1, "real")
    raw = b'{"transactions": [{"hash": "ab", "lt": 5, "comment": "a\\ud800\\u0000"}]}'
    tonapi.script_page(friendly_address(SHOP), raw)
    async with http.post(
        f"{tonapi.base_url}/_emulator/accounts/{SHOP}/script_page", data=b'{"transactions": []}'
    ) as r:
        assert r.status == 200
    url = f"{tonapi.base_url}/v2/blockchain/accounts/{SHOP}/transactions"
    async with http.get(url, params={"after_lt": "999"}, headers=AUTH) as response:
        assert response.status == 200 and await response.read() == raw
    assert await get_txs(http, tonapi) == []  # the second scripted page
    [real] = await get_txs(http, tonapi)  # then the account's own list again
    assert real["in_msg"]["decoded_body"]["text"] == "real"
    assert await get_txs(http, tonapi, account=PAYER) == []
    tonapi.script_page(SHOP, b"{}")
    tonapi.reset()
    assert len(await get_txs(http, tonapi)) == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_runs_alone(http: aiohttp.ClientSession) -> None:
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "orbit.sandbox.tonapi",
        "--port",
        str(port),
        "--rub",
        "199",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}/v2/rates?tokens=ton&currencies=rub"
        for _ in range(100):
            try:
                async with http.get(url) as r:
                    body = await r.json()
                    break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
        else:
            pytest.fail("emulator did not start")
        assert body["rates"]["TON"]["prices"] == {"RUB": 199.0}
    finally:
        proc.terminate()
        output, _ = await asyncio.wait_for(proc.communicate(), timeout=10)
    assert proc.returncode == 0, output
    assert b"stopped" in output
