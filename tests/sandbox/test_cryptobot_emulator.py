"""The Crypto Pay API emulator over real HTTP, with a real webhook receiver."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import sys
from collections.abc import AsyncIterator
from decimal import Decimal

import aiohttp
import msgspec
import pytest
from aiohttp import web

from orbit.sandbox.cryptobot import CryptoBotEmulator, InvoiceStateError

TOKEN = "12345:AAtestCryptoPayToken"
REQUIRED_BY_AIOCRYPTOPAY = {
    "invoice_id", "status", "hash", "amount", "bot_invoice_url", "web_app_invoice_url",
    "mini_app_invoice_url", "created_at", "allow_comments", "allow_anonymous", "currency_type",
}  # fmt: skip


class Receiver:
    """A bot-side webhook endpoint that checks the signature on the raw bytes by itself."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, dict[str, str], bool]] = []
        self.statuses: list[int] = []  # answers to give first, then 200
        self.runner: web.AppRunner | None = None
        self.url = ""

    def verify(self, body: bytes, signature: str | None) -> bool:
        secret = hashlib.sha256(TOKEN.encode()).digest()
        expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
        return signature is not None and hmac.compare_digest(expected, signature)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        valid = self.verify(body, request.headers.get("crypto-pay-api-signature"))
        self.received.append((body, dict(request.headers), valid))
        if self.statuses:
            return web.Response(status=self.statuses.pop(0))
        return web.Response(status=200 if valid else 401)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/cryptobot/webhook", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/cryptobot/webhook"

    async def stop(self) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


@pytest.fixture
async def cryptobot(receiver: Receiver) -> AsyncIterator[CryptoBotEmulator]:
    emulator = CryptoBotEmulator(TOKEN, receiver.url, webhook_retry_delay=0.01)
    await emulator.start()
    yield emulator
    await emulator.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession,
    emulator: CryptoBotEmulator,
    method: str,
    *,
    params: dict | None = None,
    json_body: dict | None = None,
    token: str | None = TOKEN,
) -> tuple[int, dict]:
    headers = {} if token is None else {"Crypto-Pay-API-Token": token}
    url = f"{emulator.base_url}/api/{method}"
    if json_body is None:
        request = http.get(url, params=params, headers=headers)
    else:
        request = http.post(url, json=json_body, headers=headers)
    async with request as response:
        assert response.content_type == "application/json"
        return response.status, await response.json()


async def create(http: aiohttp.ClientSession, emulator: CryptoBotEmulator, **params) -> dict:
    status, body = await call(http, emulator, "createInvoice", json_body=params)
    assert status == 200 and body["ok"] is True, body
    return body["result"]


async def test_get_me_and_token_check(cryptobot: CryptoBotEmulator, http: aiohttp.ClientSession) -> None:
    status, body = await call(http, cryptobot, "getMe")
    assert status == 200
    assert body == {
        "ok": True,
        "result": {"app_id": 1, "name": "Orbit sandbox", "payment_processing_bot_username": "CryptoBot"},
    }
    for token in ("wrong", None):
        status, body = await call(http, cryptobot, "getMe", token=token)
        assert (status, body) == (401, {"ok": False, "error": {"code": 401, "name": "UNAUTHORIZED"}})
    status, body = await call(http, cryptobot, "noSuchMethod")
    assert body == {"ok": False, "error": {"code": 405, "name": "METHOD_NOT_FOUND"}}
    assert [r.status for r in cryptobot.requests] == [200, 401, 401, 405]


async def test_create_invoice_get_style_and_post_json(
    cryptobot: CryptoBotEmulator, http: aiohttp.ClientSession
) -> None:
    # what aiocryptopay sends: GET, query string, booleans as "true"/"false"
    status, body = await call(
        http,
        cryptobot,
        "createInvoice",
        params={
            "asset": "USDT",
            "amount": "2.50",
            "description": "VPN 1 month",
            "payload": "order:42",
            "allow_comments": "false",
            "allow_anonymous": "false",
            "expires_in": "900",
            "paid_btn_name": "openBot",
            "paid_btn_url": "https://t.me/orbit_vpn_bot",
        },
    )
    assert status == 200, body
    crypto = body["result"]
    assert set(crypto) >= REQUIRED_BY_AIOCRYPTOPAY
    assert crypto["currency_type"] == "crypto" and crypto["asset"] == "USDT"
    assert crypto["amount"] == "2.5" and isinstance(crypto["amount"], str)
    assert crypto["status"] == "active"
    assert crypto["allow_comments"] is False and crypto["allow_anonymous"] is False
    assert crypto["payload"] == "order:42"
    assert crypto["bot_invoice_url"].endswith(crypto["hash"])
    assert crypto["created_at"].endswith("Z") and "expiration_date" in crypto
    assert "paid_at" not in crypto and "fiat" not in crypto

    fiat = await create(
        http,
        cryptobot,
        currency_type="fiat",
        fiat="RUB",
        amount="199",
        accepted_assets="USDT,TON",
        payload="order:43",
        allow_comments=True,
    )
    assert fiat["fiat"] == "RUB" and fiat["accepted_assets"] == ["USDT", "TON"]
    assert "asset" not in fiat and fiat["amount"] == "199"
    assert fiat["invoice_id"] == crypto["invoice_id"] + 1
    assert cryptobot.requests[-1].params["payload"] == "order:43"


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"asset": "USDT", "amount": "0.001"}, "AMOUNT_TOO_SMALL"),
        ({"asset": "USDT", "amount": "-1"}, "AMOUNT_INVALID"),
        ({"asset": "USDT", "amount": "abc"}, "AMOUNT_INVALID"),
        ({"asset": "USDT"}, "AMOUNT_REQUIRED"),
        ({"asset": "DOGE", "amount": "1"}, "ASSET_INVALID"),
        ({"amount": "1"}, "ASSET_REQUIRED"),
        ({"currency_type": "fiat", "fiat": "XXX", "amount": "1"}, "FIAT_INVALID"),
        ({"currency_type": "fiat", "fiat": "RUB", "amount": "0.5"}, "AMOUNT_TOO_SMALL"),
        (
            {"currency_type": "fiat", "fiat": "RUB", "amount": "100", "accepted_assets": "USDT,X"},
            "ACCEPTED_ASSETS_INVALID",
        ),
        ({"currency_type": "card", "amount": "1"}, "CURRENCY_TYPE_INVALID"),
        ({"asset": "TON", "amount": "1", "expires_in": "0"}, "EXPIRES_IN_INVALID"),
        ({"asset": "TON", "amount": "1", "expires_in": "2678401"}, "EXPIRES_IN_INVALID"),
        ({"asset": "TON", "amount": "1", "paid_btn_name": "openBot"}, "PAID_BTN_URL_REQUIRED"),
        (
            {"asset": "TON", "amount": "1", "paid_btn_name": "x", "paid_btn_url": "https://a"},
            "PAID_BTN_NAME_INVALID",
        ),
        ({"asset": "TON", "amount": "1", "description": "d" * 1025}, "DESCRIPTION_TOO_LONG"),
        ({"asset": "TON", "amount": "1", "payload": "p" * 4097}, "PAYLOAD_TOO_LONG"),
        ({"asset": "TON", "amount": "1", "allow_comments": "maybe"}, "ALLOW_COMMENTS_INVALID"),
    ],
)
async def test_create_invoice_validation(
    cryptobot: CryptoBotEmulator, http: aiohttp.ClientSession, params: dict, name: str
) -> None:
    status, body = await call(http, cryptobot, "createInvoice", params=params)
    assert (status, body) == (400, {"ok": False, "error": {"code": 400, "name": name}})
    assert cryptobot.invoices() == []


async def test_get_invoices_filters_and_paging(
    cryptobot: CryptoBotEmulator, http: aiohttp.ClientSession
) -> None:
    ids = [(await create(http, cryptobot, asset="TON", amount=str(i + 1)))["invoice_id"] for i in range(5)]
    usdt = await create(http, cryptobot, asset="USDT", amount="3")
    await cryptobot.pay_invoice(ids[0])
    cryptobot.expire_invoice(ids[1])

    status, body = await call(http, cryptobot, "getInvoices", params={"invoice_ids": f"{ids[0]},{ids[2]}"})
    assert status == 200
    assert {i["invoice_id"] for i in body["result"]["items"]} == {ids[0], ids[2]}

    async def items(**params) -> list[int]:
        _, body = await call(http, cryptobot, "getInvoices", params=params)
        return [i["invoice_id"] for i in body["result"]["items"]]

    assert await items(status="paid") == [ids[0]]
    assert await items(status="expired") == [ids[1]]
    assert await items(status="active", asset="TON") == ids[2:][::-1]
    assert await items(asset="USDT") == [usdt["invoice_id"]]
    everything = await items()
    assert everything == sorted([*ids, usdt["invoice_id"]], reverse=True)
    paged = await items(count=2) + await items(count=2, offset=2) + await items(count=2, offset=4)
    assert paged == everything
    # POST JSON works the same, invoice_ids may be a JSON list too
    _, body = await call(http, cryptobot, "getInvoices", json_body={"invoice_ids": [ids[3]]})
    assert [i["invoice_id"] for i in body["result"]["items"]] == [ids[3]]
    status, body = await call(http, cryptobot, "getInvoices", params={"count": "1001"})
    assert (status, body["error"]["name"]) == (400, "COUNT_INVALID")


async def test_pay_delivers_signed_webhook(
    cryptobot: CryptoBotEmulator, http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    invoice = await create(
        http, cryptobot, currency_type="fiat", fiat="RUB", amount="270", accepted_assets="USDT,TON",
        payload="order:7",
    )  # fmt: skip
    paid = await cryptobot.pay_invoice(invoice["invoice_id"], "TON", comment="thanks")

    assert len(receiver.received) == 1
    raw, headers, valid = receiver.received[0]
    assert valid, "signature must verify with HMAC-SHA256(key=SHA256(token), raw body)"
    assert headers["Content-Type"] == "application/json"
    update = json.loads(raw)
    assert update["update_type"] == "invoice_paid" and isinstance(update["update_id"], int)
    assert update["request_date"].endswith("Z")
    payload = update["payload"]
    assert set(payload) >= REQUIRED_BY_AIOCRYPTOPAY
    assert payload["status"] == "paid" and payload["payload"] == "order:7"
    assert payload["paid_asset"] == "TON"
    assert Decimal(payload["paid_amount"]) * Decimal(payload["paid_fiat_rate"]) >= Decimal("270")
    assert payload["paid_fiat_rate"] == "270"  # 3 USD/TON x 90 RUB/USD
    assert payload["paid_at"].endswith("Z") and payload["comment"] == "thanks"
    assert paid == payload

    [delivery] = cryptobot.deliveries
    assert (delivery.kind, delivery.status, delivery.attempt) == ("update", 200, 1)

    _, body = await call(http, cryptobot, "getInvoices", params={"invoice_ids": str(invoice["invoice_id"])})
    assert body["result"]["items"][0]["status"] == "paid"
    with pytest.raises(InvoiceStateError):
        await cryptobot.pay_invoice(invoice["invoice_id"])
    _, body = await call(http, cryptobot, "getBalance")
    ton = next(b for b in body["result"] if b["currency_code"] == "TON")
    assert Decimal(ton["available"]) == Decimal(payload["paid_amount"]) - Decimal(payload["fee_amount"])


async def test_duplicate_delivery_is_byte_identical(
    cryptobot: CryptoBotEmulator, http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    invoice = await create(http, cryptobot, asset="USDT", amount="5")
    await cryptobot.pay_invoice(invoice["invoice_id"])
    again = await cryptobot.deliver_webhook_again(invoice["invoice_id"])
    assert again.kind == "redelivery" and again.status == 200

    async with http.post(f"{cryptobot.base_url}/_emulator/invoices/{invoice['invoice_id']}/redeliver") as r:
        assert r.status == 200
        assert (await r.json())["update_id"] == again.update_id

    bodies = [raw for raw, _, _ in receiver.received]
    assert len(bodies) == 3 and bodies[0] == bodies[1] == bodies[2]
    assert all(valid for _, _, valid in receiver.received)
    assert len({d.update_id for d in cryptobot.deliveries}) == 1


async def test_webhook_retries_until_accepted(
    cryptobot: CryptoBotEmulator, http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    receiver.statuses = [500, 503]
    invoice = await create(http, cryptobot, asset="TON", amount="1")
    await cryptobot.pay_invoice(invoice["invoice_id"])
    assert [(d.attempt, d.status) for d in cryptobot.deliveries] == [(1, 500), (2, 503), (3, 200)]
    assert len({raw for raw, _, _ in receiver.received}) == 1

    # gives up after webhook_attempts; an unreachable URL is recorded as an error
    cryptobot.set_webhook_url("http://127.0.0.1:9/unreachable")
    second = await create(http, cryptobot, asset="TON", amount="1")
    await cryptobot.pay_invoice(second["invoice_id"])
    failed = cryptobot.deliveries[3:]
    assert [d.attempt for d in failed] == [1, 2, 3]
    assert all(d.status is None and d.error for d in failed)
    assert cryptobot.invoice(second["invoice_id"])["status"] == "paid"


async def test_forged_webhook_is_rejected_by_the_receiver(
    cryptobot: CryptoBotEmulator, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    body = {"update_id": 99, "update_type": "invoice_paid", "request_date": "2026-01-01T00:00:00.000Z"}
    forged = await cryptobot.post_forged_webhook(body, "00" * 32)
    unsigned = await cryptobot.post_forged_webhook(msgspec.json.encode(body), None)
    assert (forged.status, unsigned.status) == (401, 401)
    assert [valid for _, _, valid in receiver.received] == [False, False]

    wrong_key = hmac.new(b"not the token", b"{}", hashlib.sha256).hexdigest()
    async with http.post(
        f"{cryptobot.base_url}/_emulator/forged_webhook",
        json={"body": "{}", "signature": wrong_key},
    ) as r:
        assert (await r.json())["status"] == 401
    right = hmac.new(hashlib.sha256(TOKEN.encode()).digest(), b"{}", hashlib.sha256).hexdigest()
    assert (await cryptobot.post_forged_webhook("{}", right)).status == 200


async def test_expire_delete_and_http_controls(
    cryptobot: CryptoBotEmulator, http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    base = cryptobot.base_url
    a = await create(http, cryptobot, asset="USDT", amount="1")
    b = await create(http, cryptobot, asset="USDT", amount="2")
    c = await create(http, cryptobot, asset="USDT", amount="3")

    async with http.post(f"{base}/_emulator/invoices/{a['invoice_id']}/expire") as r:
        assert r.status == 200 and (await r.json())["status"] == "expired"
    async with http.post(f"{base}/_emulator/invoices/{a['invoice_id']}/pay") as r:
        assert r.status == 409
    async with http.post(f"{base}/_emulator/invoices/999/pay") as r:
        assert r.status == 404

    async with http.post(f"{base}/_emulator/webhook", json={"url": None}) as r:
        assert r.status == 200
    async with http.post(f"{base}/_emulator/invoices/{b['invoice_id']}/pay", json={}) as r:
        result = await r.json()
    assert result["invoice"]["status"] == "paid" and result["deliveries"] == []
    assert receiver.received == []

    async with http.post(f"{base}/_emulator/webhook", json={"url": receiver.url}) as r:
        assert r.status == 200
    async with http.post(f"{base}/_emulator/invoices/{c['invoice_id']}/pay", json={"asset": "USDT"}) as r:
        result = await r.json()
    assert [d["status"] for d in result["deliveries"]] == [200]
    assert len(receiver.received) == 1 and receiver.received[0][2]

    status, body = await call(http, cryptobot, "deleteInvoice", params={"invoice_id": a["invoice_id"]})
    assert (status, body) == (200, {"ok": True, "result": True})
    status, body = await call(http, cryptobot, "deleteInvoice", params={"invoice_id": a["invoice_id"]})
    assert (status, body["error"]["name"]) == (400, "INVOICE_NOT_FOUND")

    async with http.get(f"{base}/_emulator/invoices") as r:
        assert sorted(i["invoice_id"] for i in await r.json()) == [b["invoice_id"], c["invoice_id"]]
    async with http.get(f"{base}/_emulator/deliveries") as r:
        assert len(await r.json()) == 1

    async with http.post(f"{base}/_emulator/reset") as r:
        assert r.status == 200
    assert cryptobot.invoices() == [] and cryptobot.deliveries == []
    assert cryptobot.webhook_url == receiver.url
    fresh = await create(http, cryptobot, asset="TON", amount="1")
    assert fresh["invoice_id"] > c["invoice_id"]


async def test_expires_in_lapses(cryptobot: CryptoBotEmulator, http: aiohttp.ClientSession) -> None:
    invoice = await create(http, cryptobot, asset="TON", amount="1", expires_in=1)
    await asyncio.sleep(1.05)
    _, body = await call(http, cryptobot, "getInvoices", params={"status": "expired"})
    assert [i["invoice_id"] for i in body["result"]["items"]] == [invoice["invoice_id"]]


async def test_rates_currencies_balance_and_faults(
    cryptobot: CryptoBotEmulator, http: aiohttp.ClientSession
) -> None:
    _, body = await call(http, cryptobot, "getExchangeRates")
    rates = {(r["source"], r["target"]): r for r in body["result"]}
    assert rates[("USDT", "RUB")]["rate"] == "90"
    assert set(rates[("TON", "USD")]) == {"is_valid", "is_crypto", "is_fiat", "source", "target", "rate"}
    cryptobot.set_exchange_rate("USDT", "RUB", "95.5")
    async with http.post(
        f"{cryptobot.base_url}/_emulator/rates",
        json={"source": "TON", "target": "RUB", "rate": "300"},
    ) as r:
        assert r.status == 200
    _, body = await call(http, cryptobot, "getExchangeRates")
    rates = {(r["source"], r["target"]): r["rate"] for r in body["result"]}
    assert (rates[("USDT", "RUB")], rates[("TON", "RUB")]) == ("95.5", "300")

    _, body = await call(http, cryptobot, "getCurrencies")
    codes = {c["code"]: c for c in body["result"]}
    assert codes["USDT"]["is_stablecoin"] and codes["RUB"]["is_fiat"]
    assert set(codes["TON"]) >= {"is_blockchain", "is_stablecoin", "is_fiat", "name", "code", "decimals"}

    _, body = await call(http, cryptobot, "getBalance")
    assert {"currency_code": "USDT", "available": "0", "onhold": "0"} in body["result"]

    cryptobot.fail_next(1, status=500)
    status, body = await call(http, cryptobot, "getMe")
    assert (status, body["error"]) == (500, {"code": 500, "name": "INTERNAL_ERROR"})
    status, _ = await call(http, cryptobot, "getMe")
    assert status == 200


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_runs_alone(http: aiohttp.ClientSession, receiver: Receiver) -> None:
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "orbit.sandbox.cryptobot", "--port", str(port),
        "--token", TOKEN, "--webhook-url", receiver.url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                async with http.get(f"{base}/api/getMe", headers={"Crypto-Pay-API-Token": TOKEN}) as r:
                    assert r.status == 200
                    break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
        else:
            pytest.fail("emulator did not start")
        async with http.post(
            f"{base}/api/createInvoice",
            json={"asset": "TON", "amount": "1"},
            headers={"Crypto-Pay-API-Token": TOKEN},
        ) as r:
            invoice_id = (await r.json())["result"]["invoice_id"]
        async with http.post(f"{base}/_emulator/invoices/{invoice_id}/pay") as r:
            assert r.status == 200
        assert len(receiver.received) == 1 and receiver.received[0][2]
    finally:
        proc.terminate()
        output, _ = await asyncio.wait_for(proc.communicate(), timeout=10)
    assert proc.returncode == 0, output
