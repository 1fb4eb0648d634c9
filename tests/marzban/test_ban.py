"""A ban takes the user's VPN away on the panels; an unban gives it back. Panels
that are down when it happens are repaired later, never forgotten."""

from __future__ import annotations

import asyncpg
import pytest

from orbit.admin.users import set_banned
from orbit.configs.queries import ConfigRecord
from orbit.janitor import chores
from orbit.marzban import provisioning
from orbit.marzban.provisioning import PanelDeps
from tests.marzban.conftest import Panels, add_user, pending_config
from tests.support.cli import orbit

USER = 70


async def _live_configs(db: asyncpg.Pool, deps: PanelDeps) -> list[ConfigRecord]:
    await add_user(db, USER)
    placed = []
    for name in ("phone", "laptop"):
        config = await pending_config(db, USER, "a", name=name)
        placed.append(await provisioning.provision_config(deps, config.id))
    return placed


def _statuses(panels: Panels, configs: list[ConfigRecord]) -> list[str]:
    return [panels.by_id[c.instance_id].user(c.panel_username)["status"] for c in configs]


async def test_the_cli_ban_disables_the_configs_on_their_panels_and_unban_enables_them(
    db: asyncpg.Pool, deps: PanelDeps, registered: Panels, base_env: dict[str, str]
) -> None:
    configs = await _live_configs(db, deps)
    assert _statuses(registered, configs) == ["active", "active"]
    code, out, err = await orbit(base_env, "users", "ban", str(USER))
    assert (code, out) == (0, f"user {USER} banned\n"), err
    assert _statuses(registered, configs) == ["disabled", "disabled"]
    # The rows keep the user's own choice; nothing is left flagged.
    rows = await db.fetch("SELECT status, needs_sync FROM configs ORDER BY id")
    assert [tuple(r) for r in rows] == [("active", False), ("active", False)]
    code, out, err = await orbit(base_env, "users", "unban", str(USER))
    assert (code, out) == (0, f"user {USER} unbanned\n"), err
    assert _statuses(registered, configs) == ["active", "active"]


async def test_a_config_the_user_disabled_stays_disabled_after_an_unban(
    db: asyncpg.Pool, deps: PanelDeps, registered: Panels
) -> None:
    configs = await _live_configs(db, deps)
    await provisioning.set_enabled(deps, configs[1].id, False)
    assert await set_banned(deps, USER, True, actor="9") is True
    assert _statuses(registered, configs) == ["disabled", "disabled"]
    assert await set_banned(deps, USER, False, actor="9") is True
    assert _statuses(registered, configs) == ["active", "disabled"]


async def test_a_panel_down_during_the_ban_is_repaired_by_the_janitor(
    db: asyncpg.Pool, deps: PanelDeps, registered: Panels
) -> None:
    configs = await _live_configs(db, deps)
    await registered.a.down()
    assert await set_banned(deps, USER, True, actor="9") is True  # the ban itself never fails on a panel
    assert await db.fetchval("SELECT count(*) FROM configs WHERE needs_sync") == 2
    await registered.a.up()
    assert await chores.repair_drift(deps, settle_seconds=0) == 2
    assert _statuses(registered, configs) == ["disabled", "disabled"]


async def test_a_banned_users_pending_config_is_created_disabled(
    db: asyncpg.Pool, deps: PanelDeps, registered: Panels
) -> None:
    await add_user(db, USER)
    assert await set_banned(deps, USER, True, actor="9") is True
    config = await provisioning.provision_config(deps, (await pending_config(db, USER, "a")).id)
    assert _statuses(registered, [config]) == ["disabled"]


@pytest.mark.parametrize("banned", [True, False])
async def test_nothing_changes_for_a_repeated_ban_or_unban(
    db: asyncpg.Pool, deps: PanelDeps, registered: Panels, banned: bool
) -> None:
    await _live_configs(db, deps)
    await db.execute("UPDATE users SET is_banned = $2 WHERE id = $1", USER, banned)
    assert await set_banned(deps, USER, banned, actor="9") is False
    assert await db.fetchval("SELECT count(*) FROM configs WHERE needs_sync") == 0
