"""`orbit promo` as an operator runs it: a real process against the test database."""

from __future__ import annotations

import asyncpg
import msgspec
import pytest

from orbit.audit import cli_actor
from orbit.cli.errors import CommandError
from orbit.cli.main import build_parser
from orbit.settings import Settings
from tests.support.cli import orbit


async def _codes(db: asyncpg.Pool) -> list[tuple[object, ...]]:
    rows = await db.fetch("SELECT code, kind, value, max_uses, is_active FROM promocodes ORDER BY code")
    return [tuple(r) for r in rows]


async def command(settings: Settings, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """The sub-command in this process (what `main` runs after parsing); its stdout."""
    parsed = build_parser().parse_args(["promo", *args])
    assert await parsed.func(parsed, settings) == 0
    return capsys.readouterr().out


async def test_add_list_disable(
    db: asyncpg.Pool, base_env: dict[str, str], settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    # Once as the operator runs it, the rest in-process (a process start costs a second).
    code, out, err = await orbit(
        base_env, "promo", "add", "spring", "balance", "99.50", "--max-uses", "100", "--expires", "2099-12-31"
    )
    assert code == 0, err
    assert out.startswith("added: SPRING") and "99.50 RUB" in out and "0/100" in out and "2100-01-01" in out
    out = await command(settings, capsys, "add", "week", "days", "7")
    assert out.startswith("added: WEEK") and "7 days" in out and "unlimited" in out
    assert await _codes(db) == [("SPRING", "balance", 9950, 100, True), ("WEEK", "days", 7, None, True)]
    expires = await db.fetchval("SELECT expires_at FROM promocodes WHERE code = 'SPRING'")
    assert expires.isoformat() == "2100-01-01T00:00:00+00:00"  # valid through 2099-12-31 UTC

    assert (await command(settings, capsys, "disable", "Week")).startswith("disabled: WEEK")
    out = await command(settings, capsys, "list")
    assert "SPRING" in out and "WEEK" not in out
    out = await command(settings, capsys, "list", "--all")
    assert "WEEK" in out and "disabled" in out
    listed = msgspec.json.decode(await command(settings, capsys, "list", "--all", "--json"))
    assert sorted(p["code"] for p in listed) == ["SPRING", "WEEK"]
    # Disabling again changes nothing; each change is one audit row by this operator.
    assert (await command(settings, capsys, "disable", "WEEK")).startswith("disabled: WEEK")
    trail = await db.fetch("SELECT actor, action, target, after FROM admin_audit ORDER BY id")
    assert [(r["actor"], r["action"], r["target"]) for r in trail] == [
        (cli_actor(), "promo.create", "promo:SPRING"),
        (cli_actor(), "promo.create", "promo:WEEK"),
        (cli_actor(), "promo.disable", "promo:WEEK"),
    ]
    assert trail[0]["after"]["value"] == 9950 and trail[2]["after"] == {"is_active": False}


async def test_bad_input_is_refused_in_one_line_and_changes_nothing(
    db: asyncpg.Pool, base_env: dict[str, str], settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    await command(settings, capsys, "add", "TAKEN", "days", "5")
    before = await _codes(db)
    cases = [
        (["NEW1", "coupon", "5"], "unknown kind 'coupon'"),
        (["NEW1", "balance", "-5"], "must be positive"),
        (["NEW1", "balance", "0"], "must be positive"),
        (["NEW1", "balance", "1.005"], "more than two decimals"),
        (["NEW1", "balance", "lots"], "RUB like 100"),
        (["NEW1", "balance", "NaN"], "must be positive"),
        (["NEW1", "balance", "1e12"], "at most"),
        (["NEW1", "days", "2.5"], "whole number"),
        (["NEW1", "days", "-1"], "must be positive"),
        (["NEW1", "days", "5", "--max-uses", "0"], "--max-uses must be positive"),
        (["NEW1", "days", "5", "--max-uses", "-3"], "--max-uses must be positive"),
        (["NEW1", "days", "5", "--expires", "soon"], "--expires must be a date"),
        (["NEW1", "days", "5", "--expires", "2001-01-01"], "in the past"),
        (["x!", "days", "5"], "bad code"),
        (["taken", "balance", "10"], "promo code TAKEN already exists"),
    ]
    parser = build_parser()
    for args, message in cases:
        parsed = parser.parse_args(["promo", "add", *args])
        with pytest.raises(CommandError, match=message.replace("(", r"\(")):
            await parsed.func(parsed, settings)
    parsed = parser.parse_args(["promo", "disable", "MISSING"])
    with pytest.raises(CommandError, match="no promo code 'MISSING'"):
        await parsed.func(parsed, settings)
    # As the operator sees it (once, a process start costs a second): one line, exit code 2.
    code, out, err = await orbit(base_env, "promo", "add", "taken", "balance", "10")
    assert (code, out, err) == (2, "", "orbit promo: promo code TAKEN already exists\n")
    assert await _codes(db) == before
