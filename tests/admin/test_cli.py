"""`orbit users`, `orbit stats`, `orbit broadcast`: bad input as an operator meets it (a
real process: one line, exit code 2, nothing changed), the rest in-process."""

from __future__ import annotations

import asyncio
import io
import sys

import asyncpg
import msgspec
import pytest

from orbit.cli.errors import CommandError
from orbit.cli.main import build_parser
from orbit.settings import Settings
from tests.support.cli import orbit


async def command(settings: Settings, capsys: pytest.CaptureFixture[str], *args: str, code: int = 0) -> str:
    """The sub-command in this process (what `main` runs after parsing); its stdout."""
    parsed = build_parser().parse_args(list(args))
    assert await parsed.func(parsed, settings) == code
    return capsys.readouterr().out


async def snapshot(db: asyncpg.Pool) -> list[object]:
    return [
        [tuple(r) for r in await db.fetch("SELECT id, balance_kop, is_banned FROM users ORDER BY id")],
        await db.fetchval("SELECT count(*) FROM ledger"),
        await db.fetchval("SELECT count(*) FROM broadcasts"),
        await db.fetchval("SELECT count(*) FROM outbox"),
    ]


async def test_bad_input_is_one_line_and_exit_2(
    db: asyncpg.Pool, base_env: dict[str, str], settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    await db.execute("INSERT INTO users (id, balance_kop) VALUES (5, 0)")
    before = await snapshot(db)
    # As the operator meets them: a process each (a start costs seconds, so only a few).
    cases = {
        ("users", "adjust", "999", "100", "--reason", "x"): "orbit users: unknown user 999",
        ("users", "adjust", "5", "abc", "--reason", "x"): (
            "orbit users: the amount must be RUB like 100, -50 or 99.50, got 'abc'"
        ),
        ("broadcast", "send", "--text", "  ", "--yes"): "orbit broadcast: the broadcast text is empty",
    }
    # All at once, so each may take longer than one alone.
    results = await asyncio.gather(*(orbit(base_env, *args, timeout=120) for args in cases))
    for (args, line), (code, out, err) in zip(cases.items(), results, strict=True):
        assert (code, out, err) == (2, "", line + "\n"), args
    # The rest in-process: `main` prints a CommandError as one line and exits 2.
    refusals = {
        ("users", "adjust", "5", "0", "--reason", "x"): "the amount must not be zero",
        (
            "users",
            "adjust",
            "5",
            "99999999",
            "--reason",
            "x",
        ): "the amount is larger than 1000000 RUB: a typo?",
        ("users", "adjust", "5", "1.005", "--reason", "x"): "the amount must be RUB like 100",
        ("users", "adjust", "5", "-10", "--reason", "x"): "refused: user 5 has 0 RUB, cannot take 10 RUB",
        ("users", "adjust", "5", "10", "--reason", " "): "a reason is required",
        ("users", "adjust", "@ann", "10", "--reason", "x"): "expected a numeric Telegram id",
        ("users", "show", "@nobody"): "unknown user @nobody",
        ("users", "show", "<b>"): "expected a Telegram id or @username",
        ("users", "ban", "999"): "unknown user 999",
        ("broadcast", "send", "--text", "x" * 4097, "--yes"): "Telegram takes at most 4096",
    }
    for args, error in refusals.items():
        with pytest.raises(CommandError) as refused:
            await command(settings, capsys, *args)
        assert error in str(refused.value) and "\n" not in str(refused.value), args
    assert await snapshot(db) == before


async def test_users_show_adjust_ban(
    db: asyncpg.Pool, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    await db.execute(
        "INSERT INTO users (id, username, first_name) VALUES (5, 'ann', 'Ann'), (6, NULL, 'Adm')"
    )
    settings = msgspec.structs.replace(settings, admin_ids=(6,))

    out = await command(
        settings, capsys, "users", "adjust", "5", "99.50", "--reason", "support", "--key", "t1"
    )
    assert out.startswith("user 5: +99.50 RUB (ledger entry ") and out.endswith("balance now 99.50 RUB\n")
    out = await command(
        settings, capsys, "users", "adjust", "5", "99.50", "--reason", "support", "--key", "t1"
    )
    assert out.startswith("already applied with key 't1'") and "balance 99.50 RUB" in out
    out = await command(settings, capsys, "users", "adjust", "5", "-0.50", "--reason", "fix")
    assert out.endswith("balance now 99 RUB\n")
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 5") == 9_900
    notes = [r["note"] for r in await db.fetch("SELECT note FROM ledger ORDER BY id")]
    assert notes == ["cli: support", "cli: fix"]

    assert await command(settings, capsys, "users", "ban", "5") == "user 5 banned\n"
    assert await command(settings, capsys, "users", "ban", "5") == "user 5 was already banned\n"
    with pytest.raises(CommandError, match="user 6 is an admin"):
        await command(settings, capsys, "users", "ban", "6")
    with pytest.raises(CommandError, match="expected a numeric Telegram id"):
        await command(settings, capsys, "users", "ban", "@ann")

    out = await command(settings, capsys, "users", "show", "@ANN")
    lines = out.splitlines()
    assert lines[0].startswith("user 5 @ann (Ann), language en, joined ")
    assert lines[1:4] == ["balance       99 RUB", "subscription  none", "flags         BANNED"]
    assert "  cli: fix" in lines[-2] and "-0.50 adjustment -> 99," in lines[-2]
    card = msgspec.json.decode(await command(settings, capsys, "users", "show", "5", "--json"))
    assert card["profile"]["balance_kop"] == 9_900 and len(card["ledger"]) == 2

    assert await command(settings, capsys, "users", "unban", "5") == "user 5 unbanned\n"


async def test_stats(db: asyncpg.Pool, settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    await db.execute("INSERT INTO users (id) VALUES (1), (2)")
    await db.execute(
        "INSERT INTO payments (user_id, method, status, amount_kop, currency, currency_amount,"
        " credited_kop, expires_at, confirmed_at)"
        " VALUES (1, 'cryptobot', 'confirmed', 12345, 'RUB', 12345, 12345, now(), now())"
    )
    lines = (await command(settings, capsys, "stats")).splitlines()
    assert lines[1] == "users: 2 total, 2 new today, 0 subscribed, 0 blocked the bot, 0 banned"
    row = {line[:18].strip(): line[18:].split() for line in lines[3:9]}
    assert row["plans bought"] == ["0", "0", "0", "0", "0"]
    assert row["top-ups, all"] == ["123.45", "123.45", "123.45", "123.45", "1"]
    assert row["cryptobot"] == ["123.45", "123.45", "123.45", "123.45", "1"]
    assert row["ton"] == ["0", "0", "0", "0", "0"]
    assert lines[10:12] == ["pending payments: 0 (0 RUB)", "unmatched TON transfers: 0"]
    assert lines[13:] == [
        "new users: 2 in 1 day, 2 in 7 days, 2 in 30 days",
        "trials started: 0 / 0 / 0 (1/7/30 days), 0 ever; trial to paid: 0 of 0 (-)",
        "active subscriptions by plan: none",
        "churn (ended, not renewed): 0 in 7 days, 0 in 30 days",
        "",
        "instances (configs, panel users, nodes usable, balancer scores: lowest wins):",
    ]
    data = msgspec.json.decode(await command(settings, capsys, "stats", "--json"))
    assert data["growth"]["new_7d"] == 2 and data["instances"] == [] and data["active_by_plan"] == []
    assert data["users"]["total"] == 2 and data["topups"][2] == {
        "source": "cryptobot", "today": 12345, "week": 12345, "month": 12345, "total": 12345, "count": 1,
    }  # fmt: skip


async def test_broadcast_send_and_status(
    db: asyncpg.Pool,
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await db.execute("INSERT INTO users (id) VALUES (1), (2), (3)")
    await db.execute("UPDATE users SET is_banned = true WHERE id = 3")

    monkeypatch.setattr(sys, "stdin", io.StringIO("n\n"))
    out = await command(settings, capsys, "broadcast", "send", "--text", "Tea & <cake>", code=1)
    assert out == "---\nTea & <cake>\n---\nsend this to 2 users (all)? [y/N]\nnot sent\n"
    assert await db.fetchval("SELECT count(*) FROM broadcasts") == 0

    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    out = await command(settings, capsys, "broadcast", "send", "--text", "Tea & <cake>")
    broadcast_id = await db.fetchval("SELECT id FROM broadcasts")
    assert out.splitlines()[-1].startswith(f"broadcast #{broadcast_id} queued: 2 messages")
    texts = {r["text"] for r in await db.fetch("SELECT text FROM outbox")}
    assert texts == {"Tea &amp; &lt;cake&gt;"}
    assert await db.fetchval("SELECT created_by FROM broadcasts") == 0

    await db.execute("UPDATE outbox SET status = 'sent' WHERE chat_id = 1")
    out = await command(settings, capsys, "broadcast", "status", str(broadcast_id))
    assert out.startswith(f"broadcast #{broadcast_id} by cli at ")
    assert out.endswith(" UTC to all, sending: 2 recipients, sent 1, pending 1, failed 0, skipped 0\n")
    status = msgspec.json.decode(
        await command(settings, capsys, "broadcast", "status", str(broadcast_id), "--json")
    )
    assert (status["sent"], status["pending"]) == (1, 1)
    out = await command(settings, capsys, "broadcast", "resume", str(broadcast_id))
    assert out == f"broadcast #{broadcast_id} was already queued: 2 messages\n"
    for bad, error in (("0", "a broadcast id is a positive number"), ("999", "no broadcast #999")):
        with pytest.raises(CommandError, match=error):
            await command(settings, capsys, "broadcast", "status", bad)


async def test_broadcast_audience_file_button_cancel_and_list(
    db: asyncpg.Pool,
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: object,
) -> None:
    await db.execute("INSERT INTO users (id, language) VALUES (1, 'en'), (2, 'ru'), (3, 'ru'), (4, 'ru')")
    await db.execute(
        "INSERT INTO payments (user_id, method, status, amount_kop, currency, currency_amount, expires_at)"
        " VALUES (3, 'ton', 'confirmed', 100, 'TON', 1, now())"
    )
    text_file = tmp_path / "news.txt"  # type: ignore[operator]
    text_file.write_text("Привет <b>\nвторая строка\n", encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    out = await command(
        settings, capsys, "broadcast", "send", "--text-file", str(text_file),
        "--audience", "never-paid", "--language", "ru", "--button", "Тарифы=buy",
    )  # fmt: skip
    assert out.splitlines()[:5] == [
        "---",
        "Привет <b>",
        "вторая строка",
        "[ Тарифы ] -> m:buy",
        "---",
    ]
    assert "send this to 2 users (never_paid, language ru)? [y/N]" in out
    broadcast_id = await db.fetchval("SELECT id FROM broadcasts")
    rows = await db.fetch("SELECT chat_id, text, reply_markup FROM outbox ORDER BY chat_id")
    assert [r["chat_id"] for r in rows] == [2, 4]
    assert rows[0]["text"] == "Привет &lt;b&gt;\nвторая строка"
    assert rows[0]["reply_markup"] == {"inline_keyboard": [[{"text": "Тарифы", "callback_data": "m:buy"}]]}

    await db.execute("UPDATE outbox SET status = 'sent' WHERE chat_id = 2")
    out = await command(settings, capsys, "broadcast", "cancel", str(broadcast_id))
    assert out == f"broadcast #{broadcast_id} cancelled: 1 messages will not be sent\n"
    assert await db.fetchval("SELECT status FROM outbox WHERE chat_id = 4") == "cancelled"
    out = await command(settings, capsys, "broadcast", "cancel", str(broadcast_id))
    assert out.startswith(f"broadcast #{broadcast_id} was already cancelled")
    trail = await db.fetch("SELECT actor, action, target FROM admin_audit ORDER BY id")
    assert [(r["actor"][:4], r["action"], r["target"]) for r in trail] == [
        ("cli:", "broadcast.send", f"broadcast:{broadcast_id}"),
        ("cli:", "broadcast.cancel", f"broadcast:{broadcast_id}"),
    ]
    listed = msgspec.json.decode(await command(settings, capsys, "broadcast", "list", "--json"))
    assert [(b["id"], b["audience"], b["language"], b["sent"], b["cancelled"]) for b in listed] == [
        (broadcast_id, "never_paid", "ru", 1, 1)
    ]
    out = await command(settings, capsys, "broadcast", "show", str(broadcast_id))
    assert "to never_paid, language ru, CANCELLED (1 not sent): 2 recipients, sent 1" in out
    before = await snapshot(db)
    for args, error in (
        (("--audience", "vip"), "unknown 'vip'"),
        (("--language", "de"), "unknown 'language de'"),
        (("--button", "Go=ftp://x"), "neither a URL"),
    ):
        with pytest.raises(CommandError, match=error):
            await command(settings, capsys, "broadcast", "send", "--text", "x", "--yes", *args)
    with pytest.raises(CommandError, match="cannot read --text-file"):
        await command(settings, capsys, "broadcast", "send", "--text-file", "/nonexistent", "--yes")
    assert await snapshot(db) == before


async def test_maintenance_on_off_status(
    db: asyncpg.Pool, redis: object, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    out = await command(settings, capsys, "maintenance", "status")
    assert out == "maintenance is off\n"
    out = await command(settings, capsys, "maintenance", "on", "--message", "Back at 5 <pm>")
    assert out.startswith("maintenance is ON since ") and out.endswith(": Back at 5 <pm>\n")
    status = msgspec.json.decode(await command(settings, capsys, "maintenance", "status", "--json"))
    assert status["on"] is True and status["state"]["message"] == "Back at 5 &lt;pm&gt;"
    assert status["state"]["by"].startswith("cli:")
    out = await command(settings, capsys, "maintenance", "on")  # the default message now
    assert out.startswith("message replaced: maintenance is ON") and "(the default message)" in out
    assert await command(settings, capsys, "maintenance", "off") == "maintenance is off\n"
    assert await command(settings, capsys, "maintenance", "off") == "maintenance is off (it was not on)\n"
    with pytest.raises(CommandError, match="Telegram takes at most 4096"):
        await command(settings, capsys, "maintenance", "on", "--message", "x" * 5000)
    assert await command(settings, capsys, "maintenance", "status") == "maintenance is off\n"
    trail = await db.fetch("SELECT actor, action FROM admin_audit ORDER BY id")
    assert [(r["actor"][:4], r["action"]) for r in trail] == [
        ("cli:", "maintenance.on"),
        ("cli:", "maintenance.on"),
        ("cli:", "maintenance.off"),
    ]
