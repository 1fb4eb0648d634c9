"""Subscription days granted or removed by an admin: the panels follow (or the janitor
repairs them), a repeated action key changes nothing, each grant is one audit row,
and the card shows each config's usage as its panel says."""

from __future__ import annotations

import asyncpg
import msgspec
import pytest

from orbit import clock
from orbit.admin.days import grant_days, parse_days
from orbit.admin.errors import InvalidDays, NoSubscriptionToShorten, UserNotFound
from orbit.admin.users import config_usage
from orbit.cli.errors import CommandError
from orbit.configs.queries import ConfigRecord
from orbit.janitor import chores
from orbit.marzban import provisioning
from orbit.marzban.provisioning import PanelDeps
from orbit.settings import Settings
from tests.admin.test_cli import command
from tests.marzban.conftest import Panels, add_user, pending_config
from tests.support.cli import orbit

USER = 71
DAY = 86_400


async def _live_config(db: asyncpg.Pool, deps: PanelDeps, days: int = 30) -> ConfigRecord:
    await add_user(db, USER, days=days)
    return await provisioning.provision_config(deps, (await pending_config(db, USER, "a")).id)


async def _until(db: asyncpg.Pool) -> int:
    return int(
        await db.fetchval("SELECT extract(epoch FROM subscription_until) FROM users WHERE id = $1", USER)
    )


def _panel_expire(panels: Panels, config: ConfigRecord) -> int:
    return int(panels.a.user(config.panel_username)["expire"])


async def test_days_added_and_removed_reach_the_panel_once_per_key(
    db: asyncpg.Pool, deps: PanelDeps, registered: Panels
) -> None:
    config = await _live_config(db, deps)
    start = await _until(db)
    done = await grant_days(deps, USER, 10, reason="outage <3", actor="42", action_key="k1")
    assert (done.days, done.replayed) == (10, False)
    assert await _until(db) == start + 10 * DAY == _panel_expire(registered, config)
    # The same key again (a double press, a retried command): nothing changes.
    again = await grant_days(deps, USER, 10, reason="outage <3", actor="42", action_key="k1")
    assert again.replayed and again.after == done.after and await _until(db) == start + 10 * DAY
    removed = await grant_days(deps, USER, -3, reason="typo", actor="cli:ann", action_key="k2")
    assert removed.before == done.after and await _until(db) == start + 7 * DAY == _panel_expire(
        registered, config
    )
    trail = await db.fetch("SELECT actor, action, target_user_id, before, after FROM admin_audit ORDER BY id")
    assert [(r["actor"], r["action"], r["target_user_id"]) for r in trail] == [
        ("42", "subscription.grant_days", USER),
        ("cli:ann", "subscription.grant_days", USER),
    ]
    assert trail[0]["after"]["days"] == 10 and trail[0]["after"]["reason"] == "outage <3"
    assert trail[1]["before"]["subscription_until"] == trail[0]["after"]["subscription_until"]
    assert await db.fetchval("SELECT count(*) FROM configs WHERE needs_sync") == 0


async def test_removing_more_than_remains_ends_it_and_expires_the_panel_user(
    db: asyncpg.Pool, deps: PanelDeps, registered: Panels
) -> None:
    config = await _live_config(db, deps, days=2)
    await grant_days(deps, USER, -5, reason="chargeback", actor="42", action_key="k")
    assert await db.fetchval("SELECT subscription_until < orbit_now() FROM users WHERE id = $1", USER)
    assert _panel_expire(registered, config) == await _until(db)
    # Nothing left to take: refused, nothing written.
    with pytest.raises(NoSubscriptionToShorten):
        await grant_days(deps, USER, -1, reason="again", actor="42", action_key="k3")
    assert await db.fetchval("SELECT count(*) FROM admin_audit") == 1


async def test_a_grant_to_a_lapsed_user_starts_at_the_one_clocks_now(
    db: asyncpg.Pool, deps: PanelDeps, registered: Panels
) -> None:
    await add_user(db, USER, days=1)
    await clock.advance(db, 3 * DAY)
    now = await db.fetchval("SELECT extract(epoch FROM orbit_now())")
    await grant_days(deps, USER, 7, reason="welcome back", actor="42", action_key="k")
    assert abs(await _until(db) - (now + 7 * DAY)) < 5


async def test_a_panel_down_during_a_grant_is_repaired_by_the_janitor(
    db: asyncpg.Pool, deps: PanelDeps, registered: Panels
) -> None:
    config = await _live_config(db, deps)
    await registered.a.down()
    await grant_days(deps, USER, 30, reason="gift", actor="42", action_key="k")  # never fails on a panel
    assert await db.fetchval("SELECT count(*) FROM configs WHERE needs_sync") == 1
    await registered.a.up()
    assert await chores.repair_drift(deps, settle_seconds=0) == 1
    assert _panel_expire(registered, config) == await _until(db)


async def test_bad_input_changes_nothing(db: asyncpg.Pool, deps: PanelDeps, registered: Panels) -> None:
    await _live_config(db, deps)
    for raw in ("0", "abc", "+", "1.5", "3651", "-99999", "٣"):
        with pytest.raises(InvalidDays):
            parse_days(raw)
    assert [parse_days(raw) for raw in ("30", "+7", "-7", " 3650 ")] == [30, 7, -7, 3650]
    before = await _until(db)
    with pytest.raises(UserNotFound):
        await grant_days(deps, 999, 5, reason="x", actor="42", action_key="a")
    with pytest.raises(InvalidDays):
        await grant_days(deps, USER, 0, reason="x", actor="42", action_key="b")
    assert await _until(db) == before and await db.fetchval("SELECT count(*) FROM admin_audit") == 0


async def test_the_cards_usage_comes_from_the_panel_or_says_unknown(
    db: asyncpg.Pool, deps: PanelDeps, registered: Panels
) -> None:
    config = await _live_config(db, deps)
    registered.a.set_user(config.panel_username, used_traffic=3 * 2**30, online_at="now")
    usage = await config_usage(deps, [config])
    found = usage[config.id]
    assert found is not None and found.used_traffic == 3 * 2**30 and found.online_at is not None
    await registered.a.down()
    assert await config_usage(deps, [config]) == {config.id: None}


async def test_orbit_users_grant_days(
    db: asyncpg.Pool,
    deps: PanelDeps,
    registered: Panels,
    settings: Settings,
    base_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = await _live_config(db, deps)
    start = await _until(db)
    out = await command(
        settings, capsys, "users", "grant-days", str(USER), "5", "--reason", "gift", "--key", "g1"
    )
    assert out.startswith(f"user {USER}: 5 days granted, subscription until ")
    out = await command(
        settings, capsys, "users", "grant-days", str(USER), "5", "--reason", "gift", "--key", "g1"
    )
    assert out.startswith("already applied with key 'g1': nothing changed")
    assert await _until(db) == start + 5 * DAY == _panel_expire(registered, config)
    for args, error in {
        ("abc", "5"): "expected a numeric Telegram id",
        (str(USER), "0"): "days must be a whole number",
        (str(USER), "x"): "days must be a whole number",
        ("999", "5"): "unknown user 999",
    }.items():
        with pytest.raises(CommandError, match=error):
            await command(settings, capsys, "users", "grant-days", *args, "--reason", "r")
    with pytest.raises(CommandError, match="a reason is required"):
        await command(settings, capsys, "users", "grant-days", str(USER), "5", "--reason", " ")
    # As an operator meets it: a real process; negative days take days away.
    code, out, err = await orbit(
        base_env, "users", "grant-days", str(USER), "-2", "--reason", "typo", timeout=120
    )
    assert (code, err) == (0, "") and out.startswith(f"user {USER}: 2 days removed"), err
    assert await _until(db) == start + 3 * DAY == _panel_expire(registered, config)
    actors = [r["actor"] for r in await db.fetch("SELECT actor FROM admin_audit ORDER BY id")]
    assert len(actors) == 2 and all(a.startswith("cli:") for a in actors)
    # `users show --json` carries the card: the grants and the config's usage.
    card = msgspec.json.decode(await command(settings, capsys, "users", "show", str(USER), "--json"))
    assert [e["action"] for e in card["audit"]] == ["subscription.grant_days"] * 2
    assert card["usage"][str(config.id)]["status"] == "active"
