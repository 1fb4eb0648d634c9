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
import random
import re
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
    config.CONTROL_PORT,
)
STEP = 20_000  # ms: one bot reply, with Telegram's one-message-a-second pacing
REMINDER_WAIT = 100_000  # ms: the janitor's tick is a minute


def _free_shift() -> int:
    """A port shift under which every sandbox port is free (runs beside a live sandbox)."""
    # A random start: tests of other xdist workers look for free ports at the same moment.
    start = random.SystemRandom().randrange(1000, 40_000)  # not reseeded by pytest-randomly
    for shift in (*range(start, 40_000, 97), *range(1000, start, 97)):
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
    telegram_url: str
    env: dict[str, str]


@pytest.fixture
async def emulators(
    base_env: dict[str, str], db: asyncpg.Pool, redis: Redis, log_dir: Path, tmp_path: Path
) -> AsyncIterator[Sandbox]:
    """The sandbox process (`python -m orbit.sandbox`: the emulators, its clock and the page)
    on free ports, with its state in a folder of its own, on this run's database."""
    shift = _free_shift()
    host = f"http://{config.HOST}"
    env = {
        **base_env,
        "ORBIT_SANDBOX": "1",
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
    sandbox_env = {
        **env,
        "ORBIT_SANDBOX_PORT_SHIFT": str(shift),
        "ORBIT_SANDBOX_STATE_DIR": str(tmp_path / "sandbox-state"),
    }
    process = await spawn("sandbox", sandbox_env, log_dir)
    try:
        page_url = f"http://{config.HOST}:{config.PAGE_PORT + shift}"
        await _wait_until_serving(page_url, process)
        yield Sandbox(page_url, env["TELEGRAM_API_URL"], env)
    finally:
        await process.stop()


@pytest.fixture
async def sandbox(
    emulators: Sandbox, db: asyncpg.Pool, redis: Redis, log_dir: Path
) -> AsyncIterator[Sandbox]:
    """The emulators and the four Orbit processes, on this run's database and Redis."""
    started = [await spawn(name, emulators.env, log_dir) for name in WORKERS]
    try:
        for worker in started:  # start-up is mostly imports: slow on a busy machine
            await wait_for_heartbeat(redis, worker.name, pid=worker.pid, timeout=90)
        yield emulators
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
async def browser() -> AsyncIterator[object]:
    if not os.path.exists(CHROMIUM):  # noqa: ASYNC240 (one stat before the browser starts)
        pytest.fail("Debian's chromium is not installed (apt-get install chromium; .ci/run does it)")
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        await browser.close()


async def _open(browser: object, url: str) -> AsyncIterator[object]:
    context = await browser.new_context(viewport={"width": 1440, "height": 900}, locale="en-GB")  # type: ignore[attr-defined]
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(url)
    yield page
    await context.close()
    assert not errors, f"the page threw: {errors}"


@pytest.fixture
async def browser_page(browser: object, sandbox: Sandbox) -> AsyncIterator[object]:
    """The page, with the whole sandbox behind it."""
    async for page in _open(browser, sandbox.page_url):
        yield page


@pytest.fixture
async def bare_page(browser: object, emulators: Sandbox) -> AsyncIterator[object]:
    """The page with the emulators only: the test plays the bot through the Bot API."""
    async for page in _open(browser, emulators.page_url):
        yield page


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
        await expect(page.locator(".toast")).to_have_count(0, timeout=10_000)  # type: ignore[attr-defined]
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

    # And by Crypto Pay: the invoice's link button opens the wallet with it, which pays it.
    await page.fill("#composer-input", "/menu")
    await page.press("#composer-input", "Enter")
    await _press(page, "💰 Balance")
    await _press(page, "➕ Top up")
    await _press(page, "500 ₽")
    # The first top-up's screen still has its buttons: wait for this one's before pressing.
    await expect(_bot_text(page, "Top up by 500 ₽")).to_be_visible(timeout=STEP)
    await _press(page, "🤖 CryptoBot (USDT, TON, BTC…)")
    await expect(_bot_text(page, "Top-up via CryptoBot: 500 ₽")).to_be_visible(timeout=STEP)
    await _press(page, "💳 Pay in CryptoBot")
    await expect(page.locator("#cp-link")).to_have_value(re.compile(r"^https://t\.me/CryptoBot\?start="))
    await page.click("#cp-pay")
    await expect(page.locator("#cp-history li").first).to_contain_text("Paid invoice")
    await expect(_bot_text(page, "Payment received: +500 ₽. Balance: 650 ₽.")).to_be_visible(timeout=STEP)
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
    # A node taken down and brought back; usage added to Ann's panel user.
    node = page.locator(".panel .node").first
    await node.locator(".switch").click()
    await expect(node.locator(".node-msg")).to_contain_text("error")
    await node.locator(".switch").click()
    await expect(node.locator(".node-msg")).not_to_contain_text("error")
    row = page.locator(f".pusers tr[data-username='{panel_user}']")
    await row.locator("button", has_text="+1 GB").click()
    await expect(row).to_contain_text("1.0 GB /")


async def _bot_api(sandbox: Sandbox, method: str, **params: object) -> dict[str, object]:
    async with aiohttp.ClientSession() as http:
        url = f"{sandbox.telegram_url}/bot{config.BOT_TOKEN}/{method}"
        async with http.post(url, json=params) as resp:
            body = await resp.json()
    assert body["ok"], body
    return body["result"]  # type: ignore[no-any-return]


async def test_the_bots_messages_show_as_telegram_shows_them_and_never_as_html(
    bare_page: object, emulators: Sandbox
) -> None:
    page = bare_page
    async with aiohttp.ClientSession() as http:  # the test plays a fast bot: Telegram's pacing off
        await http.post(f"{emulators.telegram_url}/control/rate", json={"enabled": False})
    await page.click("#new-user-btn")
    await page.fill("#nu-first", "Bob <b>")
    await page.click("#nu-create")
    bob = page.locator(".user.active")
    await expect(bob.locator(".user-name")).to_have_text("Bob <b>")  # a name is text too
    user_id = int(await bob.get_attribute("data-user-id"))
    await page.click("#start-btn")
    await expect(page.locator(".msg.out .bubble", has_text="/start")).to_be_visible(timeout=STEP)

    html = (
        '<b>bold</b> <i>it</i> <code>x = 1</code> <tg-spoiler>secret</tg-spoiler> <a href="https://example.org/">site</a>'
        '\n<blockquote>quoted</blockquote>\n<pre>pre block</pre>\n&lt;img src=x onerror="window.pwned=1"&gt;'
    )
    keyboard = {
        "inline_keyboard": [
            [{"text": "Docs", "url": "https://example.org/docs"}, {"text": "Go", "callback_data": "go"}]
        ]
    }
    sent = await _bot_api(
        emulators, "sendMessage", chat_id=user_id, text=html, parse_mode="HTML", reply_markup=keyboard
    )
    bubble = page.locator(f".msg[data-message-id='{sent['message_id']}'] .bubble")
    await expect(bubble.locator("b")).to_have_text("bold")
    await expect(bubble.locator("i")).to_have_text("it")
    await expect(bubble.locator("code")).to_have_text("x = 1")
    await expect(bubble.locator("pre")).to_have_text("pre block")
    await expect(bubble.locator("blockquote")).to_have_text("quoted")
    await expect(bubble.locator("a[href='https://example.org/']")).to_have_text("site")
    spoiler = bubble.locator(".spoiler")
    await expect(spoiler).to_have_text("secret")
    await expect(spoiler).not_to_have_class("spoiler shown")
    await spoiler.click()
    await expect(spoiler).to_have_class("spoiler shown")
    # Text that looks like HTML stays text: no element made of it, no script run.
    await expect(bubble).to_contain_text('<img src=x onerror="window.pwned=1">')
    assert await bubble.locator("img").count() == 0
    assert await page.evaluate("window.pwned") is None
    await expect(
        page.locator(f".msg[data-message-id='{sent['message_id']}'] .ikb-row button.url")
    ).to_have_text("Docs")

    # Edited in place (the keyboard goes with an edit that does not repeat it), then deleted.
    await _bot_api(
        emulators, "editMessageText", chat_id=user_id, message_id=sent["message_id"], text="changed"
    )
    await expect(bubble).to_contain_text("changed")
    await expect(bubble.locator(".meta")).to_contain_text("edited")
    await expect(page.locator(f".msg[data-message-id='{sent['message_id']}'] .ikb")).to_have_count(0)
    await _bot_api(emulators, "deleteMessage", chat_id=user_id, message_id=sent["message_id"])
    await expect(page.locator(f".msg[data-message-id='{sent['message_id']}']")).to_have_count(0)

    # A reply keyboard sits above the composer; its button sends its text.
    await _bot_api(
        emulators,
        "sendMessage",
        chat_id=user_id,
        text="Pick one",
        reply_markup={"keyboard": [[{"text": "Hello"}]]},
    )
    await page.locator("#reply-keyboard button", has_text="Hello").click()
    await expect(page.locator(".msg.out .bubble", has_text="Hello")).to_be_visible(timeout=STEP)
    await _bot_api(
        emulators, "sendMessage", chat_id=user_id, text="Done", reply_markup={"remove_keyboard": True}
    )
    await expect(page.locator("#reply-keyboard")).to_be_hidden()


async def _next_update(sandbox: Sandbox, kind: str, offset: int) -> tuple[dict[str, object], int]:
    """The bot's side: long-poll getUpdates until an update of `kind` arrives."""
    for _ in range(10):
        updates = await _bot_api(sandbox, "getUpdates", offset=offset, timeout=5)
        for update in updates:  # type: ignore[attr-defined]
            offset = update["update_id"] + 1
            if kind in update:
                return update[kind], offset
    raise AssertionError(f"no {kind} update reached the bot")


async def test_callback_answers_and_a_stars_invoice_paid_on_the_page(
    bare_page: object, emulators: Sandbox
) -> None:
    page = bare_page
    async with aiohttp.ClientSession() as http:
        await http.post(f"{emulators.telegram_url}/control/rate", json={"enabled": False})
    await page.click("#new-user-btn")
    await page.fill("#nu-first", "Cleo")
    await page.click("#nu-create")
    user_id = int(await page.locator(".user.active").get_attribute("data-user-id"))
    await page.click("#start-btn")
    _, offset = await _next_update(emulators, "message", 0)

    # A callback answer: a toast, or with show_alert a dialog.
    keyboard = {
        "inline_keyboard": [
            [{"text": "Toast", "callback_data": "t"}, {"text": "Alert", "callback_data": "a"}]
        ]
    }
    await _bot_api(emulators, "sendMessage", chat_id=user_id, text="Press", reply_markup=keyboard)
    await _press(page, "Toast")
    query, offset = await _next_update(emulators, "callback_query", offset)
    await _bot_api(emulators, "answerCallbackQuery", callback_query_id=query["id"], text="Saved <b>")
    await expect(page.locator(".toast", has_text="Saved <b>")).to_be_visible()
    await _press(page, "Alert")
    query, offset = await _next_update(emulators, "callback_query", offset)
    await _bot_api(
        emulators, "answerCallbackQuery", callback_query_id=query["id"], text="Sure?", show_alert=True
    )
    await expect(page.locator("#alert-text")).to_have_text("Sure?")
    await page.click("#alert-ok")

    # A Stars invoice: Pay → pre-checkout → the bot says yes → the payment shows.
    invoice = await _bot_api(
        emulators,
        "sendInvoice",
        chat_id=user_id,
        title="Top-up",
        description="150 ₽ for 111 ⭐",
        payload="order-1",
        currency="XTR",
        prices=[{"label": "Top-up", "amount": 111}],
    )
    card = page.locator(f".msg[data-message-id='{invoice['message_id']}']")
    await expect(card.locator(".invoice-total")).to_have_text("⭐ 111")
    await card.locator("button.pay").click()
    query, offset = await _next_update(emulators, "pre_checkout_query", offset)
    assert query["total_amount"] == 111 and query["invoice_payload"] == "order-1"
    await _bot_api(emulators, "answerPreCheckoutQuery", pre_checkout_query_id=query["id"], ok=True)
    await expect(page.locator(".service", has_text="You paid 111 ⭐")).to_be_visible(timeout=STEP)
    await expect(card.locator("button.pay")).to_have_text("Paid ✓")
