"""Fuzz: the Crypto Pay webhook over real HTTP with any body and any header bytes.

Every answer is 2xx or 4xx, never 5xx; a refused request stores nothing
(payments, ledger, outbox, reconcile issues unchanged); the audit holds.
Bounded in the normal run; `make fuzz` (HYPOTHESIS_PROFILE=fuzz) runs it
longer and prints the number of examples (--hypothesis-show-statistics).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import asyncpg
import msgspec
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from orbit.bot import http
from orbit.i18n import create_translator
from orbit.metrics import Metrics
from orbit.payments.audit import audit
from orbit.sandbox.cryptobot import sign_body
from orbit.settings import Settings
from tests.support.loop_thread import LoopThread

pytestmark = pytest.mark.fuzz

TOKEN = "4242:AAfuzz-cryptobot-token"
PATH = http.CRYPTOBOT_WEBHOOK_PATH.encode()
settings.register_profile(
    "fuzz-ci",
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile(
    "fuzz-long",
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "5000")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# `make fuzz` sets HYPOTHESIS_PROFILE=fuzz (tests/conftest.py): this test then runs long.
PROFILE = "fuzz-long" if os.environ.get("HYPOTHESIS_PROFILE") in ("fuzz", "fuzz-long") else "fuzz-ci"

# Header bytes as a hostile client may send them: anything but the line breaks that
# would end the header (and make it a different request, not a different header).
header_bytes = st.binary(max_size=200).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
json_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=50)
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=15,
)
invoice_field = st.one_of(json_value, st.text(), st.integers(min_value=-(2**70), max_value=2**70))
invoice = st.fixed_dictionaries(
    {
        "invoice_id": st.one_of(st.integers(min_value=-(2**70), max_value=2**70), json_value),
        "status": st.sampled_from(["paid", "active", "expired", "", "PAID"]) | st.text(max_size=8),
        "amount": st.one_of(
            st.sampled_from(["300.00", "1e999999", "NaN", "-1", "0.001", "1" * 50]), st.text(max_size=30)
        ),
    },
    optional={
        "currency_type": st.sampled_from(["fiat", "crypto"]) | st.text(max_size=5),
        "fiat": st.sampled_from(["RUB", "USD"]) | st.text(max_size=5),
        "payload": st.one_of(st.sampled_from(["1", "2", "9" * 30, "²", "\x00"]), st.text(max_size=40)),
        "asset": invoice_field,
        "paid_amount": invoice_field,
    },
)
update = st.fixed_dictionaries(
    {
        "update_id": st.one_of(st.integers(), json_value),
        "update_type": st.sampled_from(["invoice_paid", "other"]) | st.text(max_size=10),
        "payload": st.one_of(invoice, json_value),
    }
)
body = st.one_of(
    st.binary(max_size=600),
    update.map(msgspec.json.encode),
    json_value.map(msgspec.json.encode),
)
signature = st.one_of(
    st.just("sign"),  # the correct signature: the body reaches the parser
    st.none(),
    header_bytes,
    st.text(max_size=70).map(lambda t: t.encode("utf-8", "surrogatepass")),
)
extra_headers = st.lists(
    st.tuples(
        st.sampled_from([b"Content-Type", b"Content-Encoding", b"X-Forwarded-For", b"Expect", b"X-Other"]),
        header_bytes,
    ),
    max_size=3,
)


class Target:
    """The bot's HTTP app on a free port, in the helper thread's loop."""

    def __init__(self, database_url: str, redis_url: str, base: Settings) -> None:
        self.database_url = database_url
        self.redis_url = redis_url
        self.settings = msgspec.structs.replace(base, cryptobot_token=TOKEN)

    async def start(self) -> None:
        self.pool = await asyncpg.create_pool(self.database_url, min_size=1, max_size=4)
        self.redis = Redis.from_url(self.redis_url)
        tables = await self.pool.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
        )
        await self.pool.execute(
            f"TRUNCATE {', '.join(t['tablename'] for t in tables)} RESTART IDENTITY CASCADE"
        )
        # One pending CryptoBot payment a forged webhook might try to credit.
        await self.pool.execute("INSERT INTO users (id) VALUES (1)")
        await self.pool.execute(
            "INSERT INTO payments (user_id, method, amount_kop, currency, currency_amount, expires_at,"
            " external_id) VALUES (1, 'cryptobot', 30000, 'RUB', 30000, now() + interval '1 hour', '77')"
        )
        app = http.create_app(self.pool, self.redis, Metrics(), self.settings, create_translator())
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.port = self.runner.addresses[0][1]

    async def stop(self) -> None:
        await self.runner.cleanup()
        await self.redis.aclose()
        await self.pool.close()

    async def counts(self) -> tuple[Any, ...]:
        return tuple(
            await self.pool.fetchrow(
                "SELECT (SELECT count(*) FROM ledger), (SELECT count(*) FROM outbox),"
                " (SELECT count(*) FROM reconcile_issues),"
                " (SELECT string_agg(status || coalesce(external_id, ''), ',') FROM payments)"
            )
        )

    async def post(self, raw: bytes, headers: list[tuple[bytes, bytes]]) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            head = [b"POST " + PATH + b" HTTP/1.1", b"Host: 127.0.0.1"]
            head += [name + b": " + value for name, value in headers]
            head += [b"Content-Length: " + str(len(raw)).encode(), b"Connection: close"]
            writer.write(b"\r\n".join(head) + b"\r\n\r\n" + raw)
            await writer.drain()
            status_line = await asyncio.wait_for(reader.readline(), 15)
        finally:
            writer.close()
        return int(status_line.split()[1])

    async def audit(self) -> list[object]:
        async with self.pool.acquire() as conn:
            return list(await audit(conn))


@pytest.fixture(scope="module")
def target(database_url: str, redis_url: str, base_settings: Settings) -> Iterator[tuple[LoopThread, Target]]:
    thread = LoopThread()
    target = Target(database_url, redis_url, base_settings)
    thread.run(target.start())
    yield thread, target
    thread.run(target.stop())
    thread.close()


@settings(settings.get_profile(PROFILE))
@given(raw=body, sig=signature, extra=extra_headers)
def test_any_webhook_request_is_answered_2xx_or_4xx_and_a_refusal_stores_nothing(
    target: tuple[LoopThread, Target],
    raw: bytes,
    sig: str | bytes | None,
    extra: list[tuple[bytes, bytes]],
) -> None:
    thread, app = target
    headers = list(extra)
    if sig == "sign":
        headers.append((b"crypto-pay-api-signature", sign_body(TOKEN, raw).encode()))
    elif isinstance(sig, bytes):
        headers.append((b"crypto-pay-api-signature", sig))
    before = thread.run(app.counts())
    status = thread.run(app.post(raw, headers))
    assert 200 <= status < 500, (status, raw[:200], headers)
    if status >= 300:
        assert thread.run(app.counts()) == before
    assert thread.run(app.audit()) == []
