"""CryptoBot: the client against the emulator, the webhook route on a real port, "Check payment"."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp
import asyncpg
import msgspec
import pytest
from redis.asyncio import Redis

from orbit.bot import http as http_routes
from orbit.i18n import Translator
from orbit.payments import cryptobot as crypto_pay
from orbit.payments import service
from orbit.sandbox.cryptobot import CryptoBotEmulator, sign_body
from orbit.settings import Settings
from tests.payments.conftest import CRYPTOBOT_TOKEN, MakeUser, balance

Create = Callable[..., Awaitable[service.PaymentRow]]


@pytest.fixture
async def http() -> aiohttp.ClientSession:
    async with aiohttp.ClientSession() as session:
        yield session  # type: ignore[misc]


@pytest.fixture
async def create(
    db: asyncpg.Pool, make_user: MakeUser, settings: Settings, http: aiohttp.ClientSession
) -> Create:
    """User 1; `create(kopecks)` makes them a CryptoBot top-up through the real client."""
    await make_user(1)

    async def create(amount_kop: int, settings: Settings = settings) -> service.PaymentRow:
        return await crypto_pay.create_cryptobot_payment(db, http, settings, 1, amount_kop, "Orbit top-up")

    return create


def _invoice_id(payment: service.PaymentRow) -> int:
    assert payment.external_id is not None
    return int(payment.external_id)


def test_signature_and_base_url(base_settings: Settings) -> None:
    body = b'{"update_id": 1}'
    good = sign_body(CRYPTOBOT_TOKEN, body)  # the emulator's own formula
    assert crypto_pay.verify_signature(CRYPTOBOT_TOKEN, body, good)
    assert crypto_pay.verify_signature(CRYPTOBOT_TOKEN, body, good.upper())
    assert not crypto_pay.verify_signature(CRYPTOBOT_TOKEN, body + b" ", good)
    assert not crypto_pay.verify_signature("other-token", body, good)
    assert not crypto_pay.verify_signature(CRYPTOBOT_TOKEN, body, None)
    assert not crypto_pay.verify_signature(CRYPTOBOT_TOKEN, body, "")

    replace = msgspec.structs.replace
    assert crypto_pay.api_url(base_settings) == "https://pay.crypt.bot"
    assert (
        crypto_pay.api_url(replace(base_settings, cryptobot_testnet=True)) == "https://testnet-pay.crypt.bot"
    )
    custom = replace(base_settings, cryptobot_testnet=True, cryptobot_api_url="http://127.0.0.1:1/")
    assert crypto_pay.api_url(custom) == "http://127.0.0.1:1"


async def test_invoice_is_created_in_rub_with_the_accepted_assets(
    create: Create, cryptobot: CryptoBotEmulator
) -> None:
    payment = await create(15_050)
    assert payment.status == "pending" and payment.currency == "RUB" and payment.currency_amount == 15_050
    assert payment.external_id is not None and payment.pay_url and payment.pay_url.startswith("https://")
    invoice = cryptobot.invoice(int(payment.external_id))
    assert invoice["currency_type"] == "fiat" and invoice["fiat"] == "RUB" and invoice["amount"] == "150.5"
    assert set(invoice["accepted_assets"]) == set(crypto_pay.ACCEPTED_ASSETS)
    assert invoice["payload"] == str(payment.id)
    [request] = [r for r in cryptobot.requests if r.api_method == "createInvoice"]
    assert request.headers.get("Crypto-Pay-API-Token") == CRYPTOBOT_TOKEN


async def test_paid_webhook_credits_once_even_when_delivered_twice(
    db: asyncpg.Pool, create: Create, cryptobot: CryptoBotEmulator, bot_http: str
) -> None:
    payment = await create(30_000)
    paid = await cryptobot.pay_invoice(_invoice_id(payment), "TON")
    assert paid["status"] == "paid"
    again = await cryptobot.deliver_webhook_again(_invoice_id(payment))
    assert [d.status for d in cryptobot.deliveries] == [200, 200] and again.ok

    assert await balance(db, 1) == 30_000
    row = await db.fetchrow(
        "SELECT status, credited_kop, external_id FROM payments WHERE id = $1", payment.id
    )
    assert dict(row) == {"status": "confirmed", "credited_kop": 30_000, "external_id": payment.external_id}
    assert await db.fetchval("SELECT count(*) FROM ledger WHERE user_id = 1") == 1
    [message] = await db.fetch("SELECT text FROM outbox WHERE chat_id = 1")
    assert "300" in message["text"]


async def test_wrong_or_missing_signature_is_401_and_changes_nothing(
    db: asyncpg.Pool, create: Create, cryptobot: CryptoBotEmulator, bot_http: str
) -> None:
    payment = await create(30_000)
    invoice = {**cryptobot.invoice(_invoice_id(payment)), "status": "paid"}
    body = msgspec.json.encode(
        {
            "update_id": 99,
            "update_type": "invoice_paid",
            "request_date": "2026-01-01T00:00:00.000Z",
            "payload": invoice,
        }
    )
    forged = [
        await cryptobot.post_forged_webhook(body, None),  # no header
        await cryptobot.post_forged_webhook(body, "00" * 32),  # wrong
        await cryptobot.post_forged_webhook(body, sign_body("another-app-token", body)),  # another key
        await cryptobot.post_forged_webhook(body + b" ", sign_body(CRYPTOBOT_TOKEN, body)),  # body changed
        await cryptobot.post_forged_webhook(b"not json at all", "zz"),
    ]
    assert [d.status for d in forged] == [401] * 5
    assert await balance(db, 1) == 0
    assert await db.fetchval("SELECT status FROM payments WHERE id = $1", payment.id) == "pending"
    assert await db.fetchval("SELECT count(*) FROM outbox") == 0

    # Correctly signed but unreadable: 400; signed and readable: credited.
    garbage = b'{"update_id": "x"}'
    assert (await cryptobot.post_forged_webhook(garbage, sign_body(CRYPTOBOT_TOKEN, garbage))).status == 400
    signed = await cryptobot.post_forged_webhook(body, sign_body(CRYPTOBOT_TOKEN, body))
    assert signed.status == 200 and await balance(db, 1) == 30_000


async def test_check_payment_asks_get_invoices(
    db: asyncpg.Pool,
    make_user: MakeUser,
    create: Create,
    settings: Settings,
    cryptobot: CryptoBotEmulator,
    http: aiohttp.ClientSession,
    redis: Redis,
    translator: Translator,
) -> None:
    await make_user(2)
    payment = await create(30_000)

    async def check(user: int = 1, payment_id: int = payment.id) -> crypto_pay.CheckResult:
        return await crypto_pay.check_payment(db, redis, http, translator, settings, user, payment_id)

    assert (await check()).status == "pending"
    with pytest.raises(service.PaymentNotFound):
        await check(user=2)  # not theirs
    with pytest.raises(service.PaymentNotFound):
        await check(payment_id=987654)

    cryptobot.set_webhook_url(None)  # the webhook is lost: the user's button still finds the payment
    await cryptobot.pay_invoice(_invoice_id(payment))
    done = await check()
    assert done.status == "confirmed" and done.confirmation is not None and not done.confirmation.replayed
    assert (await check()).status == "confirmed"
    assert await balance(db, 1) == 30_000

    expiring = await create(10_000)
    cryptobot.expire_invoice(_invoice_id(expiring))
    assert (await check(payment_id=expiring.id)).status == "expired"
    assert await balance(db, 1) == 30_000

    cryptobot.fail_next(1, 500, "INTERNAL_ERROR")
    with pytest.raises(crypto_pay.CryptoPayError):
        await check(payment_id=expiring.id)


async def test_api_failure_fails_the_payment_and_nothing_is_configured_without_a_token(
    db: asyncpg.Pool, create: Create, settings: Settings, cryptobot: CryptoBotEmulator
) -> None:
    cryptobot.fail_next(1, 503, "SERVICE_UNAVAILABLE")
    with pytest.raises(crypto_pay.CryptoPayError) as caught:
        await create(10_000)
    assert caught.value.code == 503 and caught.value.message_key == "cryptobot-unavailable"
    assert await db.fetchval("SELECT status FROM payments") == "failed"

    with pytest.raises(service.MethodNotConfigured):
        await create(10_000, msgspec.structs.replace(settings, cryptobot_token=None))
    with pytest.raises(service.AmountOutOfRange):
        await create(100)
    assert await db.fetchval("SELECT count(*) FROM payments") == 1


async def test_invoice_found_by_payload_when_its_id_was_never_recorded(
    db: asyncpg.Pool, create: Create, cryptobot: CryptoBotEmulator, bot_http: str
) -> None:
    payment = await create(20_000)
    invoice_id = _invoice_id(payment)
    # As if the process died between createInvoice and recording the invoice id.
    await db.execute("UPDATE payments SET external_id = NULL WHERE id = $1", payment.id)
    await cryptobot.pay_invoice(invoice_id)
    assert await balance(db, 1) == 20_000
    assert (
        await db.fetchval("SELECT external_id FROM payments WHERE id = $1", payment.id) == payment.external_id
    )


async def _raw_post(base: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes) -> int:
    """POST raw bytes, header values included as given (a client library would refuse
    or re-encode non-ASCII ones); the HTTP status the server answered."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        head = [b"POST " + path.encode() + b" HTTP/1.1", b"Host: " + host.encode()]
        head += [name + b": " + value for name, value in headers]
        head += [b"Content-Length: " + str(len(body)).encode(), b"Connection: close"]
        writer.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()
    return int(status_line.split()[1])


async def test_a_signature_header_with_non_ascii_characters_is_401(
    db: asyncpg.Pool, create: Create, cryptobot: CryptoBotEmulator, bot_http: str
) -> None:
    payment = await create(30_000)
    invoice = {**cryptobot.invoice(_invoice_id(payment)), "status": "paid"}
    body = msgspec.json.encode({"update_id": 5, "update_type": "invoice_paid", "payload": invoice})
    good = sign_body(CRYPTOBOT_TOKEN, body)
    path = http_routes.CRYPTOBOT_WEBHOOK_PATH
    for value in ("é" * 64, good[:-1] + "ß", "\u2028" + good, good + "\ufffd"):
        status = await _raw_post(bot_http, path, [(b"crypto-pay-api-signature", value.encode())], body)
        assert status == 401, value
    latin1 = await _raw_post(bot_http, path, [(b"crypto-pay-api-signature", b"\xff\xfe" * 32)], body)
    assert latin1 == 401
    assert await balance(db, 1) == 0
    assert await db.fetchval("SELECT status FROM payments WHERE id = $1", payment.id) == "pending"


async def test_signed_bodies_with_absurd_fields_are_answered_without_a_5xx(
    db: asyncpg.Pool, create: Create, cryptobot: CryptoBotEmulator, bot_http: str
) -> None:
    """Signed (the token leaked, or Crypto Pay changed a field): still never a 500."""
    payment = await create(30_000)
    invoice = {**cryptobot.invoice(_invoice_id(payment)), "status": "paid"}
    variants = [
        {"invoice_id": 10**15, "payload": "9" * 30},  # payload beyond bigint
        {"invoice_id": 10**15 + 1, "payload": "²"},  # a digit to str.isdigit, not to int()
        {"amount": "1e999999"},
        {"amount": "1e-9"},
        {"amount": "NaN"},
        {"amount": "-5"},
    ]
    for change in variants:
        body = msgspec.json.encode(
            {"update_id": 5, "update_type": "invoice_paid", "payload": {**invoice, **change}}
        )
        delivery = await cryptobot.post_forged_webhook(body, sign_body(CRYPTOBOT_TOKEN, body))
        assert delivery.status is not None and delivery.status < 500, change
    assert await balance(db, 1) == 0
    assert await db.fetchval("SELECT status FROM payments WHERE id = $1", payment.id) == "pending"


async def test_an_expect_header_the_webhook_does_not_know_is_417_not_500(
    db: asyncpg.Pool, create: Create, bot_http: str
) -> None:
    """Found by tests/fuzz/test_webhook_bodies.py: aiohttp's own Expect handler echoes
    the header into its answer and fails on bytes that are not UTF-8."""
    path = http_routes.CRYPTOBOT_WEBHOOK_PATH
    for value in (b"\x80\xff", b"nonsense", "é".encode()):
        assert await _raw_post(bot_http, path, [(b"Expect", value)], b"{}") == 417


async def test_a_webhook_while_the_database_is_unreachable_is_503_in_one_line(
    database_url: str, redis: Redis, settings: Settings, translator: Translator
) -> None:
    from aiohttp import web

    from orbit.metrics import Metrics

    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    await pool.close()  # every acquire now fails, as with Postgres gone
    runner = web.AppRunner(http_routes.create_app(pool, redis, Metrics(), settings, translator))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        body = b'{"update_id": 1, "update_type": "invoice_paid", "payload": {"invoice_id": 1,'
        body += b' "status": "paid", "amount": "300.00", "fiat": "RUB", "currency_type": "fiat"}}'
        signature = sign_body(CRYPTOBOT_TOKEN, body).encode()
        base = f"http://127.0.0.1:{runner.addresses[0][1]}"
        path = http_routes.CRYPTOBOT_WEBHOOK_PATH
        assert await _raw_post(base, path, [(b"crypto-pay-api-signature", signature)], body) == 503
    finally:
        await runner.cleanup()
