"""Expiry and grace against the real database and emulated panels, with the one clock
(and the panels' own clocks) moved forward instead of waiting."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from orbit import clock, ledger
from orbit.configs.queries import ConfigRecord
from orbit.marzban import instances, provisioning
from orbit.marzban.provisioning import PanelDeps
from orbit.plans import load_plans
from orbit.sandbox.marzban import MarzbanEmulator
from orbit.subscriptions import expiry
from orbit.subscriptions.panels import purchase_plan
from tests.marzban.conftest import add_user, instance_for, pending_config

DAY = 86400.0


class Shift:
    """A movable clock for the emulated panels, moved with Orbit's."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
async def shift(db: asyncpg.Pool) -> Shift:
    await clock.reset(db)
    return Shift()


@pytest.fixture
async def timed(db: asyncpg.Pool, shift: Shift) -> AsyncIterator[dict[str, MarzbanEmulator]]:
    """Panels a and b on the movable clock, registered as instances."""
    panels = {"a": MarzbanEmulator(clock=shift), "b": MarzbanEmulator(clock=shift)}
    for instance_id, panel in panels.items():
        await panel.start()
        assert await instances.insert_instance(db, instance_for(instance_id, panel))
    yield panels
    for panel in panels.values():
        await panel.stop()


async def advance(db: asyncpg.Pool, shift: Shift, seconds: float) -> None:
    await clock.advance(db, seconds)
    shift.offset += seconds


async def _configs(deps: PanelDeps, user_id: int, *where: str) -> list[ConfigRecord]:
    made = []
    for instance_id in where:
        config = await pending_config(deps.pool, user_id, instance_id)
        made.append(await provisioning.provision_config(deps, config.id))
    return made


async def _fund(db: asyncpg.Pool, user_id: int, kop: int) -> None:
    async with db.acquire() as conn, conn.transaction():
        await ledger.credit(conn, user_id, kop, "topup", f"seed:{user_id}:{kop}")


def _calls(panels: dict[str, MarzbanEmulator], method: str) -> int:
    return sum(p.count(method, "/api/user/{username}") for p in panels.values())


async def test_ended_configs_expire_once_then_retire_after_the_grace(
    db: asyncpg.Pool, deps: PanelDeps, timed: dict[str, MarzbanEmulator], shift: Shift
) -> None:
    await add_user(db, 1, days=1)
    await add_user(db, 2, days=30)  # still running: never touched
    first, second = await _configs(deps, 1, "a", "b")
    [other] = await _configs(deps, 2, "a")
    for panel in timed.values():
        panel.clear_requests()

    assert (await expiry.expire_configs(deps)).changed == 0  # nothing ended yet
    await advance(db, shift, 1 * DAY + 60)
    round1 = await expiry.expire_configs(deps)
    assert (round1.changed, round1.calls) == (2, 2)  # one PUT per ended config
    assert timed["a"].user(first.panel_username)["status"] == "expired"
    assert timed["b"].user(second.panel_username)["status"] == "expired"
    assert timed["a"].user(other.panel_username)["status"] == "active"
    again = await expiry.expire_configs(deps)
    assert (again.changed, again.calls) == (0, 0)

    # Inside the grace nothing is deleted.
    await advance(db, shift, 2 * DAY)
    inside = await expiry.retire_configs(deps)
    assert (inside.changed, inside.calls) == (0, 0)

    # Past it: a panel that is down keeps its user and is retried.
    await advance(db, shift, 1 * DAY + 60)
    await timed["b"].down()
    partial = await expiry.retire_configs(deps)
    assert partial.changed == 1 and partial.failed == {"b"}
    assert timed["a"].user(first.panel_username) is None
    await timed["b"].up()
    assert timed["b"].user(second.panel_username) is not None
    rest = await expiry.retire_configs(deps)
    assert (rest.changed, rest.calls) == (1, 1)  # one DELETE, no disable first
    assert timed["b"].user(second.panel_username) is None
    rows = await db.fetch(
        "SELECT status, deleted_at IS NOT NULL AS gone, retired_at IS NOT NULL AS retired"
        " FROM configs WHERE user_id = 1 ORDER BY id"
    )
    assert [tuple(r) for r in rows] == [("deleted", True, True)] * 2  # kept as history
    assert timed["a"].user(other.panel_username)["status"] == "active"
    assert (await expiry.retire_configs(deps)).calls == 0


async def test_panel_deleted_but_row_not_updated_is_finished_next_round(
    db: asyncpg.Pool, deps: PanelDeps, timed: dict[str, MarzbanEmulator], shift: Shift
) -> None:
    await add_user(db, 1, days=1)
    [config] = await _configs(deps, 1, "a")
    await advance(db, shift, DAY + 60)
    await expiry.expire_configs(deps)
    await advance(db, shift, 3 * DAY + 60)
    # A round that deleted the panel user and died before its row changed.
    instance = await instances.get_instance(db, "a")
    await deps.client(instance).delete_user(config.panel_username)
    done = await expiry.retire_configs(deps)
    assert done.changed == 1 and not done.failed  # the 404 counts as done
    assert await db.fetchval("SELECT retired_at IS NOT NULL FROM configs WHERE id = $1", config.id)


async def test_renewal_inside_the_grace_restores_the_same_links_at_once(
    db: asyncpg.Pool, deps: PanelDeps, timed: dict[str, MarzbanEmulator], shift: Shift
) -> None:
    plans = load_plans(deps.settings)
    month = plans.get("1m")
    await add_user(db, 1, days=1)
    [config] = await _configs(deps, 1, "a")
    await advance(db, shift, 2 * DAY)
    await expiry.expire_configs(deps)
    assert timed["a"].user(config.panel_username)["status"] == "expired"

    await _fund(db, 1, month.price)
    purchase = await purchase_plan(deps, 1, month, "t1")  # no janitor tick after this
    user = timed["a"].user(config.panel_username)
    assert user["status"] == "active" and user["expire"] == int(purchase.ends_at.timestamp())
    row = await db.fetchrow(
        "SELECT subscription_url, expired_at, needs_sync FROM configs WHERE id = $1", config.id
    )
    assert row["subscription_url"] == config.subscription_url  # the same link
    assert row["expired_at"] is None and row["needs_sync"] is False
    # The grace round later finds nothing to delete.
    await advance(db, shift, 4 * DAY)
    assert (await expiry.retire_configs(deps)).calls == 0
    assert timed["a"].user(config.panel_username) is not None


async def test_renewal_after_the_grace_makes_new_configs_and_sends_their_links(
    db: asyncpg.Pool, deps: PanelDeps, timed: dict[str, MarzbanEmulator], shift: Shift
) -> None:
    plans = load_plans(deps.settings)
    month = plans.get("1m")
    await add_user(db, 1, days=1)
    old = await _configs(deps, 1, "a", "b")
    await db.execute("UPDATE configs SET name = 'Phone' WHERE id = $1", old[0].id)
    await advance(db, shift, DAY + 60)
    await expiry.expire_configs(deps)
    await advance(db, shift, 3 * DAY + 60)
    assert (await expiry.retire_configs(deps)).changed == 2

    await _fund(db, 1, 2 * month.price)
    await purchase_plan(deps, 1, month, "after-grace")
    fresh = await db.fetch(
        "SELECT id, name, instance_id, status, panel_username, subscription_url, revived_from"
        " FROM configs WHERE user_id = 1 AND deleted_at IS NULL ORDER BY revived_from"
    )
    assert [r["revived_from"] for r in fresh] == [c.id for c in old]
    assert [r["name"] for r in fresh] == ["Phone", old[1].name]
    for row, gone in zip(fresh, old, strict=True):
        assert row["status"] == "active" and row["instance_id"] == gone.instance_id
        assert timed[row["instance_id"]].user(row["panel_username"])["status"] == "active"
        assert row["subscription_url"] != gone.subscription_url
    sent = await db.fetch("SELECT text, dedup_key FROM outbox WHERE chat_id = 1 ORDER BY id")
    links = {r["dedup_key"]: r["text"] for r in sent if r["dedup_key"].startswith("config-revived:")}
    assert set(links) == {f"config-revived:{r['id']}" for r in fresh}
    for row in fresh:
        assert row["subscription_url"] in links[f"config-revived:{row['id']}"]
    # A second purchase revives nothing more.
    await purchase_plan(deps, 1, month, "again")
    assert await db.fetchval("SELECT count(*) FROM configs WHERE user_id = 1") == 4
