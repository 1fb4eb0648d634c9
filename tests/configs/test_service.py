"""Config business functions against the real database and two emulated panels."""

from __future__ import annotations

import asyncio
import io
import time
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from PIL import Image

from orbit import clock
from orbit.configs import queries, service
from orbit.configs.service import (
    ConfigLimitReached,
    ConfigNotReady,
    InvalidConfigName,
    NoActiveSubscription,
    NotYourConfig,
    ProvisioningFailed,
    StaleCreate,
)
from orbit.marzban.provisioning import PanelDeps, new_panel_username, process_removals
from orbit.plans import Plans
from tests.configs.conftest import Panels, add_user

MB = 1024**2


async def _rows(db: asyncpg.Pool, user_id: int) -> list[dict[str, object]]:
    rows = await db.fetch(
        "SELECT id, name, status, instance_id, panel_username, needs_sync, deleted_at IS NOT NULL AS gone"
        " FROM configs WHERE user_id = $1 ORDER BY id",
        user_id,
    )
    return [dict(r) for r in rows]


async def _stored(db: asyncpg.Pool, config_id: int, used: int, read_at: datetime) -> None:
    """A usage stored earlier (by the janitor's round, say), older than the config itself."""
    await db.execute(
        "UPDATE configs SET usage_bytes = $2, usage_read_at = $3 WHERE id = $1", config_id, used, read_at
    )


async def test_create_puts_an_active_config_on_the_preferred_panel(
    deps: PanelDeps, plans: Plans, panels: Panels
) -> None:
    until = await add_user(deps.pool, 1)
    assert until is not None
    view = await service.create_config(deps, plans, 1)

    config = view.config
    assert config.status == "active" and config.instance_id == "p1" and config.name == "Config 1"
    assert config.subscription_url and config.subscription_url.startswith(f"{panels.p1.base_url}/sub/")
    assert view.usage is not None and view.usage.used_traffic == 0 and view.usage.status == "active"
    panel_user = panels.p1.user(config.panel_username)
    assert panel_user is not None and panel_user["expire"] == int(until.timestamp())
    assert panels.users()["p2"] == []
    [row] = await _rows(deps.pool, 1)
    assert row["status"] == "active" and row["needs_sync"] is False  # nothing left for the janitor


async def test_create_needs_an_active_subscription(deps: PanelDeps, plans: Plans, panels: Panels) -> None:
    await add_user(deps.pool, 1, days=None)
    await add_user(deps.pool, 2, days=-1)  # ended yesterday
    for user_id in (1, 2, 3):  # 3 never pressed /start
        with pytest.raises(NoActiveSubscription):
            await service.create_config(deps, plans, user_id)
    assert await deps.pool.fetchval("SELECT count(*) FROM configs") == 0
    assert panels.users() == {"p1": [], "p2": []}


async def test_create_stops_at_the_plans_max_configs(deps: PanelDeps, plans: Plans, panels: Panels) -> None:
    await add_user(deps.pool, 1)
    limit = plans.get("1m").max_configs  # no purchase yet: the 1M plan's limit
    for _ in range(limit):
        await service.create_config(deps, plans, 1)
    with pytest.raises(ConfigLimitReached) as refused:
        await service.create_config(deps, plans, 1)
    assert refused.value.limit == limit
    assert len(await _rows(deps.pool, 1)) == limit
    assert len(panels.users()["p1"]) == limit


async def test_concurrent_creates_cannot_pass_the_limit(
    deps: PanelDeps, plans: Plans, panels: Panels
) -> None:
    await add_user(deps.pool, 1)
    limit = plans.get("1m").max_configs
    results = await asyncio.gather(
        *(service.create_config(deps, plans, 1) for _ in range(8)), return_exceptions=True
    )
    made = [r for r in results if isinstance(r, service.ConfigView)]
    refused = [r for r in results if isinstance(r, ConfigLimitReached)]
    assert len(made) == limit and len(refused) == 8 - limit, results
    rows = await _rows(deps.pool, 1)
    assert len(rows) == limit and all(r["status"] == "active" for r in rows)
    assert sorted(panels.users()["p1"]) == sorted(str(r["panel_username"]) for r in rows)


async def test_a_double_press_creates_one_config(deps: PanelDeps, plans: Plans, panels: Panels) -> None:
    await add_user(deps.pool, 1)
    shown = await service.list_configs(deps, plans, 1)
    assert shown.made == 0
    results = await asyncio.gather(
        *(service.create_config(deps, plans, 1, seen_made=shown.made) for _ in range(3)),
        return_exceptions=True,
    )
    assert [type(r).__name__ for r in results].count("ConfigView") == 1, results
    assert all(isinstance(r, StaleCreate) for r in results if not isinstance(r, service.ConfigView))
    assert len(await _rows(deps.pool, 1)) == 1
    again = await service.list_configs(deps, plans, 1)
    assert again.made == 1
    await service.create_config(deps, plans, 1, seen_made=again.made)  # the fresh screen works
    assert len(await _rows(deps.pool, 1)) == 2


async def test_create_fails_over_to_the_next_panel(deps: PanelDeps, plans: Plans, panels: Panels) -> None:
    await add_user(deps.pool, 1)
    await panels.p1.down()
    view = await service.create_config(deps, plans, 1)
    assert view.config.instance_id == "p2" and view.config.status == "active"
    assert panels.holder(view.config.panel_username) == "p2"


async def test_create_when_every_panel_fails_deletes_the_config_and_frees_the_slot(
    deps: PanelDeps, plans: Plans, panels: Panels
) -> None:
    await add_user(deps.pool, 1)
    await panels.p1.down()
    panels.p2.fail(503)
    with pytest.raises(ProvisioningFailed):
        await service.create_config(deps, plans, 1)
    [row] = await _rows(deps.pool, 1)
    assert row["status"] == "deleted" and row["gone"] is True

    # Whatever a failed attempt may have left on a panel is listed and removed later.
    await panels.p1.up()
    panels.p2.clear_failures()
    await process_removals(deps)
    assert panels.users() == {"p1": [], "p2": []}
    assert await deps.pool.fetchval("SELECT count(*) FROM panel_removals") == 0

    # The failed attempt did not use up the limit.
    limit = plans.get("1m").max_configs
    for _ in range(limit):
        await service.create_config(deps, plans, 1)
    assert len([r for r in await _rows(deps.pool, 1) if not r["gone"]]) == limit


async def test_list_shows_the_stored_usage_and_asks_no_panel(
    deps: PanelDeps, plans: Plans, panels: Panels
) -> None:
    await add_user(deps.pool, 1)
    first = (await service.create_config(deps, plans, 1)).config
    await panels.p1.down()
    second = (await service.create_config(deps, plans, 1)).config  # lands on p2
    # What the janitor stored for the first, an hour ago by the project's clock; the
    # second's panel has more since its screen read it (0 B, at its creation).
    read_at = await clock.now(deps.pool) - timedelta(hours=1)
    await _stored(deps.pool, first.id, 7 * MB, read_at)
    panels.p2.add_user_traffic(second.panel_username, 3 * MB)
    panels.p2.clear_requests()

    listing = await service.list_configs(deps, plans, 1)
    assert listing.active and listing.max_configs == plans.get("1m").max_configs
    assert panels.p2.requests == []  # no panel asked, the one that is up included
    assert [c.id for c in listing.configs] == [first.id, second.id]
    assert [c.usage_bytes for c in listing.configs] == [7 * MB, 0]  # p1 down: no matter
    assert listing.configs[0].usage_read_at == read_at
    assert abs(listing.now - await clock.now(deps.pool)) < timedelta(seconds=5)


async def test_the_config_screen_reads_its_panel_and_stores_the_reading(
    deps: PanelDeps, plans: Plans, panels: Panels
) -> None:
    await add_user(deps.pool, 1)
    config = (await service.create_config(deps, plans, 1)).config
    await clock.advance(deps.pool, 3 * 3600)  # the stored time is the project's clock, not the host's
    panels.p1.add_user_traffic(config.panel_username, 5 * MB)
    # Drained from another panel earlier this period: counted as the janitor counts it.
    await deps.pool.execute("UPDATE configs SET usage_carried_bytes = $2 WHERE id = $1", config.id, MB)
    panels.p1.clear_requests()

    view = await service.show_config(deps, 1, config.id)
    assert view.usage is not None and view.usage.used_traffic == 5 * MB
    assert view.config.usage_bytes == 6 * MB and view.config.usage_read_at == view.now
    assert view.now > datetime.now(UTC) + timedelta(hours=2)
    assert panels.p1.count("GET", "/api/user/{username}") == 1
    row = await deps.pool.fetchrow("SELECT usage_bytes, usage_read_at FROM configs WHERE id = $1", config.id)
    assert (row["usage_bytes"], row["usage_read_at"]) == (6 * MB, view.now)
    listing = await service.list_configs(deps, plans, 1)
    assert [(c.usage_bytes, c.usage_read_at) for c in listing.configs] == [(6 * MB, view.now)]

    # Rename's screen reads too; less than stored means the panel reset it: a new period.
    panels.p1.set_user(config.panel_username, used_traffic=0)
    renamed = await service.rename_config(deps, 1, config.id, "Phone")
    assert renamed.config.usage_bytes == MB and renamed.config.usage_read_at == renamed.now
    row = await deps.pool.fetchrow("SELECT usage_bytes, usage_period FROM configs WHERE id = $1", config.id)
    assert (row["usage_bytes"], row["usage_period"]) == (MB, 1)


async def test_a_later_stored_read_is_not_overwritten_by_the_config_screen(
    deps: PanelDeps, plans: Plans, panels: Panels
) -> None:
    await add_user(deps.pool, 1)
    config = (await service.create_config(deps, plans, 1)).config
    # A janitor's read that began after this screen's (the screen takes its time first).
    later = await clock.now(deps.pool) + timedelta(minutes=1)
    await queries.store_usage(deps.pool, {config.id: 9 * MB}, later)
    view = await service.show_config(deps, 1, config.id)
    assert view.usage is not None and view.usage.used_traffic == 0  # shown as read
    row = await deps.pool.fetchrow("SELECT usage_bytes, usage_read_at FROM configs WHERE id = $1", config.id)
    assert (row["usage_bytes"], row["usage_read_at"]) == (9 * MB, later)


@pytest.mark.parametrize("fault", ["down", "slow"])
async def test_the_config_screen_of_a_silent_panel_shows_the_stored_usage(
    deps: PanelDeps, plans: Plans, panels: Panels, fault: str
) -> None:
    await add_user(deps.pool, 1)
    config = (await service.create_config(deps, plans, 1)).config
    read_at = await clock.now(deps.pool) - timedelta(minutes=5)
    await _stored(deps.pool, config.id, 7 * MB, read_at)
    if fault == "down":
        await panels.p1.down()
    else:
        panels.p1.slow(30)
    started = time.monotonic()
    view = await service.show_config(deps, 1, config.id)
    assert time.monotonic() - started < service.USAGE_TIMEOUT_SECONDS + 2  # not held by the panel
    assert view.usage is None
    assert (view.config.usage_bytes, view.config.usage_read_at) == (7 * MB, read_at)
    assert view.now - read_at >= timedelta(minutes=5)
    row = await deps.pool.fetchrow("SELECT usage_bytes, usage_read_at FROM configs WHERE id = $1", config.id)
    assert (row["usage_bytes"], row["usage_read_at"]) == (7 * MB, read_at)  # nothing stored


async def test_a_pending_config_is_listed_but_has_no_link_yet(
    deps: PanelDeps, plans: Plans, panels: Panels
) -> None:
    await add_user(deps.pool, 1)
    pending = await queries.insert_pending(deps.pool, 1, "p1", new_panel_username(1), "Phone")
    listing = await service.list_configs(deps, plans, 1)
    assert [(c.status, c.usage_bytes) for c in listing.configs] == [("pending", None)]
    view = await service.show_config(deps, 1, pending.id)
    assert view.usage is None and panels.p1.requests == []  # nothing on a panel to ask
    with pytest.raises(ConfigNotReady):
        await service.config_qr(deps, 1, pending.id)


async def test_qr_code_is_a_png_of_the_subscription_link(
    deps: PanelDeps, plans: Plans, panels: Panels
) -> None:
    await add_user(deps.pool, 1)
    config = (await service.create_config(deps, plans, 1)).config
    shown, png = await service.config_qr(deps, 1, config.id)
    assert shown.id == config.id
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.width == image.height >= 200
    assert png == service.qr_png(config.subscription_url or "")


@pytest.mark.parametrize(
    ("raw", "name"),
    [("  My   phone ", "My phone"), ("Ноутбук (дом) #2", "Ноутбук (дом) #2"), ("x" * 32, "x" * 32)],
)
def test_clean_name_accepts_labels(raw: str, name: str) -> None:
    assert service.clean_name(raw) == name


@pytest.mark.parametrize("raw", ["", "   ", "x" * 33, "<b>hi</b>", "a\nb", "tab\there", "emoji 🚀", "a&b"])
def test_clean_name_refuses_bad_labels(raw: str) -> None:
    with pytest.raises(InvalidConfigName):
        service.clean_name(raw)


async def test_rename_changes_only_the_label(deps: PanelDeps, plans: Plans, panels: Panels) -> None:
    await add_user(deps.pool, 1)
    config = (await service.create_config(deps, plans, 1)).config
    view = await service.rename_config(deps, 1, config.id, " Work  laptop ")
    assert view.config.name == "Work laptop" and view.usage is not None
    assert view.config.panel_username == config.panel_username  # Marzban usernames cannot change
    assert panels.p1.user(config.panel_username) is not None
    with pytest.raises(InvalidConfigName):
        await service.rename_config(deps, 1, config.id, "<script>")
    assert (await _rows(deps.pool, 1))[0]["name"] == "Work laptop"


async def test_another_users_config_is_not_found_and_nothing_changes(
    deps: PanelDeps, plans: Plans, panels: Panels
) -> None:
    await add_user(deps.pool, 1)
    await add_user(deps.pool, 2)
    theirs = (await service.create_config(deps, plans, 1)).config
    before = await _rows(deps.pool, 1)
    for call in (
        service.show_config(deps, 2, theirs.id),
        service.config_qr(deps, 2, theirs.id),
        service.rename_config(deps, 2, theirs.id, "mine now"),
        service.delete_config(deps, 2, theirs.id),
        service.show_config(deps, 2, 10**30),  # forged: out of range
        service.delete_config(deps, 2, -1),
    ):
        with pytest.raises(NotYourConfig):
            await call
    assert await _rows(deps.pool, 1) == before
    assert panels.p1.user(theirs.panel_username) is not None


async def test_delete_removes_the_row_and_the_panel_user(
    deps: PanelDeps, plans: Plans, panels: Panels
) -> None:
    await add_user(deps.pool, 1)
    config = (await service.create_config(deps, plans, 1)).config
    deleted = await service.delete_config(deps, 1, config.id)
    assert deleted.id == config.id
    [row] = await _rows(deps.pool, 1)
    assert row["status"] == "deleted" and row["gone"] is True
    assert panels.users() == {"p1": [], "p2": []}
    with pytest.raises(NotYourConfig):  # a second press finds nothing to delete
        await service.delete_config(deps, 1, config.id)


async def test_delete_of_a_user_the_panel_lost_counts_as_done(
    deps: PanelDeps, plans: Plans, panels: Panels
) -> None:
    await add_user(deps.pool, 1)
    config = (await service.create_config(deps, plans, 1)).config
    panels.p1.reset()  # the panel forgot every user (answers 404)
    await service.delete_config(deps, 1, config.id)
    assert await deps.pool.fetchval("SELECT count(*) FROM panel_removals") == 0


async def test_delete_while_the_panel_is_down_is_finished_later(
    deps: PanelDeps, plans: Plans, panels: Panels
) -> None:
    await add_user(deps.pool, 1)
    config = (await service.create_config(deps, plans, 1)).config
    await panels.p1.down()
    await service.delete_config(deps, 1, config.id)
    [row] = await _rows(deps.pool, 1)
    assert row["gone"] is True  # the user's list no longer shows it
    assert await deps.pool.fetchval("SELECT count(*) FROM panel_removals") == 1
    await panels.p1.up()
    await process_removals(deps)
    assert panels.users() == {"p1": [], "p2": []}


@pytest.mark.parametrize("reported", [-1, 2**63, 2**70])
async def test_a_panel_reporting_absurd_traffic_changes_nothing_stored(
    deps: PanelDeps, plans: Plans, panels: Panels, reported: int
) -> None:
    """A panel's numbers are outside input: a negative or over-bigint `used_traffic` is not
    stored (nor taken for a traffic reset); the screen shows what was stored before."""
    await add_user(deps.pool, 1)
    config = (await service.create_config(deps, plans, 1)).config
    read_at = await clock.now(deps.pool)
    await _stored(deps.pool, config.id, 3 * MB, read_at)
    panels.p1.set_user(config.panel_username, used_traffic=reported)

    view = await service.show_config(deps, 1, config.id)
    assert view.usage is None
    assert (view.config.usage_bytes, view.config.usage_read_at) == (3 * MB, read_at)
    row = await deps.pool.fetchrow("SELECT usage_bytes, usage_period FROM configs WHERE id = $1", config.id)
    assert (row["usage_bytes"], row["usage_period"]) == (3 * MB, 0)
