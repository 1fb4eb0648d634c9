"""Every real process serves `/metrics` (Prometheus text, the series an operator's
dashboard reads: docs/grafana-dashboard.json) and `/healthz` (200 while the heartbeat
is fresh and Postgres and Redis answer, 503 when one of them does not)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from orbit.payments import service
from orbit.sandbox.tonapi import TonapiEmulator
from tests.e2e.conftest import Panel, free_port
from tests.support.journey import eventually
from tests.support.private_deps import PrivateRedis
from tests.support.processes import WorkerProcess, spawn, wait_for_heartbeat
from tests.support.telegram_user import TelegramUser

TON_WALLET = "0:" + "ab" * 32
NANO = 10**9
START_TIMEOUT = 120  # four interpreters importing aiogram at once on a shared 2-core machine

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(http: aiohttp.ClientSession, port: int) -> Samples:
    async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=")
        text = await resp.text()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def names(samples: Samples) -> set[str]:
    return {name for name, _ in samples}


async def health(http: aiohttp.ClientSession, port: int) -> tuple[int, dict[str, object]]:
    async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
        return resp.status, await resp.json()


@pytest.fixture
async def workers() -> AsyncIterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        code = await worker.stop()
        assert code == 0, f"{worker.name} exited {code}:\n{worker.output()[-3000:]}"


async def test_the_bot_serves_its_series_and_health(
    panels: list[Panel],
    redis: Redis,
    bot_env: dict[str, str],
    log_dir: Path,
    make_user: Callable[..., TelegramUser],
    http_session: aiohttp.ClientSession,
    workers: list[WorkerProcess],
) -> None:
    workers.append(bot := await spawn("bot", bot_env, log_dir))
    await wait_for_heartbeat(redis, "bot", pid=bot.pid, timeout=START_TIMEOUT)
    port = int(bot_env["BOT_HTTP_PORT"])
    ann = make_user(7101, first_name="Ann")
    await ann.send("/start")

    async def counted() -> Samples | None:
        samples = await scrape(http_session, port)
        return samples if value(samples, "orbit_updates_total", type="message", outcome="handled") else None

    samples = await eventually(counted, timeout=30)
    assert value(samples, "orbit_update_duration_seconds_count", type="message") == 1
    assert value(samples, "orbit_telegram_requests_total", method="sendMessage")
    # Read at scrape time from Postgres; nothing is queued.
    assert value(samples, "orbit_outbox_depth", state="due") == 0
    assert value(samples, "orbit_outbox_oldest_due_age_seconds") == 0
    assert value(samples, "orbit_units_total", outcome="done")  # the outbox sender's ticks
    assert value(samples, "orbit_heartbeat_timestamp_seconds")
    assert value(samples, "orbit_unit_duration_seconds_count")
    status, body = await health(http_session, port)
    assert (status, body) == (200, {"ok": True, "postgres": "ok", "redis": "ok", "heartbeat": "ok"})


async def test_the_workers_serve_their_series_and_health(
    panels: list[Panel],
    db: asyncpg.Pool,
    redis: Redis,
    base_env: dict[str, str],
    log_dir: Path,
    http_session: aiohttp.ClientSession,
    workers: list[WorkerProcess],
) -> None:
    tonapi = TonapiEmulator()
    await tonapi.start()
    try:
        await db.execute("INSERT INTO users (id, language) VALUES (7201, 'en')")
        async with db.acquire() as conn, conn.transaction():
            await service.create_payment(
                conn, 7201, "ton", 10_000, "TON", NANO, datetime.now(UTC) + timedelta(minutes=30),
                comment="ORBM00001",
            )  # fmt: skip
        tonapi.send_ton(TON_WALLET, NANO, "ORBM00001")
        private = PrivateRedis()  # the janitor's: stopped below to see /healthz fail
        await asyncio.to_thread(private.start)
        try:
            ports = {name: free_port() for name in ("ton_watcher", "balancer", "janitor")}
            envs = {
                "ton_watcher": {"TON_ADDRESS": TON_WALLET, "TONAPI_URL": tonapi.base_url or ""},
                "balancer": {},
                "janitor": {"REDIS_URL": private.url},
            }
            for name, extra in envs.items():
                env = {**base_env, f"METRICS_PORT_{name.upper()}": str(ports[name]), **extra}
                workers.append(await spawn(name, env, log_dir))
            private_client = Redis.from_url(private.url)
            try:
                await asyncio.gather(
                    # Each by its pid: a heartbeat left by anything else must not count.
                    wait_for_heartbeat(redis, "ton_watcher", pid=workers[-3].pid, timeout=START_TIMEOUT),
                    wait_for_heartbeat(redis, "balancer", pid=workers[-2].pid, timeout=START_TIMEOUT),
                    wait_for_heartbeat(private_client, "janitor", pid=workers[-1].pid, timeout=START_TIMEOUT),
                )
            finally:
                await private_client.aclose()
            await _check_ton_watcher(http_session, ports["ton_watcher"])
            await _check_balancer(http_session, ports["balancer"], panels)
            await _check_janitor(http_session, ports["janitor"], private)
        finally:
            await asyncio.to_thread(private.stop)
    finally:
        await tonapi.stop()


async def _check_ton_watcher(http: aiohttp.ClientSession, port: int) -> None:
    async def credited() -> Samples | None:
        samples = await scrape(http, port)
        return samples if value(samples, "orbit_ton_transactions_total", outcome="matched") else None

    samples = await eventually(credited, timeout=60)
    # Recorded by the payments and ledger code the watcher calls, not by the watcher itself.
    assert value(samples, "orbit_payments_total", method="ton", status="confirmed") == 1
    assert value(samples, "orbit_payments_credited_kopecks_total", method="ton") == 10_000
    assert value(samples, "orbit_ledger_entries_total", reason="topup") == 1
    assert (value(samples, "orbit_ton_cursor_lt") or 0) > 0
    assert value(samples, "orbit_ton_caught_up_timestamp_seconds")
    assert value(samples, "orbit_ton_lag_seconds") is not None
    assert value(samples, "orbit_lease_held", lease="ton_watcher") == 1
    assert "orbit_updates_total" not in names(samples)  # the bot's series stay the bot's
    assert (await health(http, port))[0] == 200


async def _check_balancer(http: aiohttp.ClientSession, port: int, panels: list[Panel]) -> None:
    async def refreshed() -> Samples | None:
        samples = await scrape(http, port)
        return samples if value(samples, "orbit_balancer_refresh_timestamp_seconds") else None

    samples = await eventually(refreshed, timeout=60)
    for panel in panels:
        assert value(samples, "orbit_panel_up", instance=panel.id) == 1
        assert (value(samples, "orbit_panel_nodes_usable", instance=panel.id) or 0) >= 1
        assert value(samples, "orbit_panel_request_duration_seconds_count", instance=panel.id)
    scored = {dict(labels)["instance"] for name, labels in samples if name == "orbit_balancer_node_score"}
    assert scored == {panel.id for panel in panels}
    assert value(samples, "orbit_lease_held", lease="balancer") == 1
    assert value(samples, "orbit_units_total", outcome="done")
    assert (await health(http, port))[0] == 200


async def _check_janitor(http: aiohttp.ClientSession, port: int, private: PrivateRedis) -> None:
    chores = ("expired_payments", "renewed", "reminded", "repaired_configs")

    async def chores_ran() -> Samples | None:  # each chore runs in its own task: wait for all
        samples = await scrape(http, port)
        ran = all(value(samples, "orbit_janitor_chore_runs_total", chore=c) for c in chores)
        return samples if ran else None

    samples = await eventually(chores_ran, timeout=60)
    for chore in chores:
        assert value(samples, "orbit_janitor_chore_duration_seconds_count", chore=chore)
        assert value(samples, "orbit_janitor_chore_items_total", chore=chore) is not None
    status, body = await health(http, port)
    assert (status, body["redis"], body["heartbeat"]) == (200, "ok", "ok")
    await asyncio.to_thread(private.stop)
    status, body = await health(http, port)
    assert (status, body["ok"], body["redis"], body["postgres"]) == (503, False, "failing", "ok")
