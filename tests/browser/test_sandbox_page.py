"""The sandbox page in a real browser: headless Debian Chromium driven by Playwright.

The real sandbox process (`python -m orbit.sandbox`: the emulators and the page) and
the four Orbit processes run against this test run's database; a new user does on
the page what a person would: start the bot, take the trial, create a config and see
its QR code, top up by TON through the wallet, buy a month, and, once the clock is
moved to three days before the end, read the reminder. Every step waits for what
the page shows. `ORBIT_SCREENSHOTS=docs` also writes the chat, the wallet and the
panels view as PNGs there.
"""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from cryptography.fernet import Fernet
from redis.asyncio import Redis

from orbit.sandbox import config
from tests.support.processes import ROOT, WorkerProcess, spawn, wait_for_heartbeat

playwright_api = pytest.importorskip("playwright.async_api")
expect = playwright_api.expect

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
WORKERS = ("bot", "ton_watcher", "balancer", "janitor")
PORTS = (
    config.TELEGRAM_PORT,
    config.MARZBAN_PORT,
    config.TONAPI_PORT,
    config.CRYPTOBOT_PORT,
    config.BOT_HTTP_PORT,
    config.PAGE_PORT,
)
STEP = 20_000  # ms: one bot reply, with Telegram's one-message-a-second pacing
REMINDER_WAIT = 100_000  # ms: the janitor's tick is a minute


def _free_shift() -> int:
    """A port shift under which every sandbox port is free (runs beside a live sandbox)."""
    for shift in range(1000, 40_000, 997):
        try:
            for port in PORTS:
                with socket.socket() as sock:
                    sock.bind((config.HOST, port + shift))
        except OSError:
            continue
        return shift
    raise RuntimeError("no free ports for a sandbox")


@dataclass
class Sandbox:
    page_url: str
    env: dict[str, str]


@pytest.fixture
async def sandbox(
    base_env: dict[str, str], db: asyncpg.Pool, redis: Redis, log_dir: Path
) -> AsyncIterator[Sandbox]:
    shift = _free_shift()
    started: list[WorkerProcess] = []
    emulators = await spawn("sandbox", {**base_env, "ORBIT_SANDBOX_PORT_SHIFT": str(shift)}, log_dir)
    started.append(emulators)
    page_url = f"http://{config.HOST}:{config.PAGE_PORT + shift}"
    await _wait_until_serving(page_url, emulators)
    host = f"http://{config.HOST}"
    env = {
        **base_env,
        "BOT_TOKEN": config.BOT_TOKEN,
        "ADMIN_IDS": str(config.SANDBOX_ADMIN_ID),
        "TELEGRAM_API_URL": f"{host}:{config.TELEGRAM_PORT + shift}",
        "BOT_HTTP_PORT": str(config.BOT_HTTP_PORT + shift),
        "S001_BASE_URL": f"{host}:{config.MARZBAN_PORT + shift}",
        "S001_MARZBAN_USERNAME": config.MARZBAN_USER,
        "S001_MARZBAN_PASSWORD": config.MARZBAN_PASSWORD,
        "TON_ADDRESS": config.TON_ADDRESS,
        "CRYPTOBOT_TOKEN": config.CRYPTOBOT_TOKEN,
        "TONAPI_URL": f"{host}:{config.TONAPI_PORT + shift}",
        "CRYPTOBOT_API_URL": f"{host}:{config.CRYPTOBOT_PORT + shift}",
        "MARZBAN_PASSWORD_KEY": Fernet.generate_key().decode(),
        # Playwright presses faster than a person: the per-user button rate limits
        # would answer "too fast" (they have their own tests).
        "RATE_LIMIT_SCALE": "0.0001",
    }
    try:
        for name in WORKERS:
            started.append(await spawn(name, env, log_dir))
        for worker in started[1:]:  # start-up is mostly imports: slow on a busy machine
            await wait_for_heartbeat(redis, worker.name, pid=worker.pid, timeout=90)
        yield Sandbox(page_url, env)
    finally:
        for worker in reversed(started):
            await worker.stop()


async def _wait_until_serving(url: str, process: WorkerProcess) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            if process.proc.returncode is not None:
                raise AssertionError(f"the sandbox exited:\n{process.output()[-3000:]}")
            try:
                async with http.get(f"{url}/api/config") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)  # readiness poll of a starting process, not a wait for time
    raise AssertionError(f"the sandbox page never answered:\n{process.output()[-3000:]}")


@pytest.fixture
async def browser_page(sandbox: Sandbox) -> AsyncIterator[object]:
    if not os.path.exists(CHROMIUM):  # noqa: ASYNC240 (one stat before the browser starts)
        pytest.fail("Debian's chromium is not installed (apt-get install chromium; .ci/run does it)")
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = await browser.new_context(viewport={"width": 1440, "height": 900}, locale="en-GB")
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(sandbox.page_url)
        yield page
        await browser.close()
        assert not errors, f"the page threw: {errors}"


def _bot_text(page: object, text: str) -> object:
    return page.locator(".msg.in .bubble", has_text=text).last  # type: ignore[attr-defined]


async def _press(page: object, button: str) -> None:
    """Press the newest inline button with that text, as a person would."""
    locator = page.locator(".ikb-row button", has_text=button).last  # type: ignore[attr-defined]
    await expect(locator).to_be_visible(timeout=STEP)
    await locator.click()


async def _screenshot(page: object, name: str) -> None:
    target = os.environ.get("ORBIT_SCREENSHOTS")
    if target:
        folder = Path(target) if Path(target).is_absolute() else ROOT / target
        folder.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(folder / name))  # type: ignore[attr-defined]


@pytest.mark.timeout(420)
async def test_a_new_user_goes_from_start_to_the_renewal_reminder_on_the_page(
    browser_page: object, db: asyncpg.Pool
) -> None:
    page = browser_page
    # The admin is listed and marked; a new user is created with the dialog.
    admin = page.locator(f".user[data-user-id='{config.SANDBOX_ADMIN_ID}']")
    await expect(admin.locator(".badge")).to_have_text("admin")
    await page.click("#new-user-btn")
    await page.fill("#nu-first", "Ann")
    await page.fill("#nu-username", "ann_sandbox")
    await page.select_option("#nu-language", "en")
    await page.click("#nu-create")
    ann = page.locator(".user.active")
    await expect(ann).to_contain_text("Ann")
    user_id = int(await ann.get_attribute("data-user-id"))

    # Start, then the trial.
    await page.click("#start-btn")
    await expect(page.locator(".msg.out .bubble", has_text="/start")).to_be_visible(timeout=STEP)
    await _press(page, "🎁 Free trial")
    await expect(_bot_text(page, "Your free trial runs until")).to_be_visible(timeout=STEP)

    # A config and its QR code (a photo the page shows).
    await _press(page, "🔑 My configs")
    await _press(page, "➕ New config")
    await expect(_bot_text(page, "is ready")).to_be_visible(timeout=STEP)
    await _press(page, "📷 QR code")
    qr = page.locator(".msg.in[data-kind='photo'] img.photo").last
    await expect(qr).to_be_visible(timeout=STEP)
    assert await qr.evaluate("img => img.complete && img.naturalWidth > 100"), "the QR code did not load"
    await _press(page, "« Back")

    # Top up by TON: the wallet is filled from the ton:// link and sends the transfer.
    await page.fill("#composer-input", "/menu")
    await page.press("#composer-input", "Enter")
    await _press(page, "💰 Balance")
    await _press(page, "➕ Top up")
    await _press(page, "300 ₽")
    await _press(page, "💎 TON")
    await expect(page.locator(".msg.in[data-kind='photo']", has_text="ton://transfer/")).to_be_visible(
        timeout=STEP
    )
    payment = await db.fetchrow("SELECT currency_amount, comment FROM payments WHERE user_id = $1", user_id)
    await page.click("#tool-wallet")
    await expect(page.locator("#ton-comment")).to_have_value(payment["comment"])
    amount = await page.input_value("#ton-amount")
    assert round(float(amount) * 1e9) == payment["currency_amount"]
    await page.click("#ton-send")
    await expect(page.locator("#ton-history li").first).to_contain_text(f"Sent {amount} TON")
    await _press(page, "✅ I paid")
    await expect(page.locator("#alert-text")).to_contain_text("Checking the blockchain", timeout=STEP)
    await page.click("#alert-ok")  # the bot's answer to "I paid" is an alert
    await expect(_bot_text(page, "Payment received: +300 ₽")).to_be_visible(timeout=STEP)

    # Buy a month from the balance.
    await page.fill("#composer-input", "/menu")
    await page.press("#composer-input", "Enter")
    await _press(page, "🛒 Buy a plan")
    await _press(page, "1 month — 150 ₽")
    await _press(page, "✅ Pay 150 ₽")
    await expect(_bot_text(page, "Paid 150 ₽ for")).to_be_visible(timeout=STEP)
    await _screenshot(page, "sandbox-wallet.png")

    # Time moves to three days before the end: the janitor's reminder appears.
    left = await db.fetchval(
        "SELECT extract(epoch FROM subscription_until - orbit_now()) FROM users WHERE id = $1", user_id
    )
    hours = math.ceil(float(left) / 3600) - 72 + 1  # inside the 3-day window, not the 1-day one
    await page.click("#tool-clock")
    await page.fill("#clock-amount", str(hours))
    await page.select_option("#clock-unit", "hours")
    await page.click("#clock-go")
    await expect(_bot_text(page, "Your Orbit subscription ends on")).to_be_visible(timeout=REMINDER_WAIT)
    await page.click("#drawer-close")
    await _screenshot(page, "sandbox-chat.png")

    # The panels view: the sandbox's panel, its nodes, and Ann's config as a panel user.
    await page.click("#tool-panels")
    panel_user = await db.fetchval("SELECT panel_username FROM configs WHERE user_id = $1", user_id)
    await expect(page.locator(f".pusers tr[data-username='{panel_user}']")).to_contain_text("active")
    await expect(page.locator(".panel .node").first).to_be_visible()
    await _screenshot(page, "sandbox-panels.png")
