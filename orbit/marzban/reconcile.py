"""Full reconciliation with every panel: the rows are the truth, the panels follow.

One panel at a time, its users are read in bounded pages (`GET /api/users` with
offset and limit) and compared with the `configs` rows, one query per page:

- a user that matches its row costs no call;
- expiry, data limit, status or inbounds that differ are set from the row, with one
  `PUT` under the config's lock (the row is read again there, so a purchase that
  committed meanwhile wins);
- a placed config whose user the panel did not list is re-created (`sync_config`:
  one `POST`, a 409 adopts the user; the owner gets the new link);
- a user of a deleted row, or of a config that lives on another panel, is queued in
  `panel_removals` (the balancer removes it);
- a user no row knows is a stranger: recorded in `panel_strangers` (`orbit instances
  orphans ID`) and deleted only when `PANEL_DELETE_STRANGERS` is on.

Users are only changed after they were read, and strangers deleted only after the
last page, so no page shifts under the offsets. One user the panel mangled, or one
change it refuses, is counted and the page goes on; a panel that is down is skipped
until the next round.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

import msgspec

from orbit.configs import queries as configs_q
from orbit.marzban import instances
from orbit.marzban import reconcile_queries as queries
from orbit.marzban.client import MarzbanClient
from orbit.marzban.errors import MarzbanError, PanelUnavailable, PanelUserNotFound
from orbit.marzban.instances import Instance
from orbit.marzban.models import PanelUser, decode_user
from orbit.marzban.provisioning import (
    PanelDeps,
    _desired,
    config_lock,
    panel_changes,
    protocol_tags,
    sync_config,
)
from orbit.marzban.reconcile_queries import PageRow
from orbit.text import clean_text

log = logging.getLogger(__name__)

NOTE_LIMIT = 200
# Users of one page set at once: bounded, so a panel sees a handful of requests at a time.
ALIGN_CONCURRENCY = 4


class PanelReport(msgspec.Struct, kw_only=True):
    instance_id: str
    seen: int = 0  # panel users read
    aligned: int = 0  # users set from their row (one PUT each)
    recreated: int = 0  # configs whose user the panel had lost
    removals_queued: int = 0  # users of deleted or moved configs, left to the balancer
    strangers: int = 0  # users no row knows
    strangers_deleted: int = 0
    bad_items: int = 0  # users the panel answered in a shape we cannot read
    failed: int = 0  # changes the panel refused (the row is flagged for the drift repair)
    skipped: str | None = None  # why the panel was not (fully) reconciled this round
    seconds: float = 0.0

    @property
    def changed(self) -> int:
        return self.aligned + self.recreated + self.removals_queued + self.strangers_deleted

    def line(self) -> str:
        text = (
            f"panel {self.instance_id}: {self.seen} users read, {self.aligned} aligned,"
            f" {self.recreated} re-created, {self.removals_queued} removals queued,"
            f" {self.strangers} strangers ({self.strangers_deleted} deleted),"
            f" {self.bad_items} unreadable, {self.failed} failed in {self.seconds:.1f}s"
        )
        return text if self.skipped is None else f"{text}; skipped: {self.skipped}"


class RoundReport(msgspec.Struct, kw_only=True):
    panels: list[PanelReport] = []

    @property
    def changed(self) -> int:
        return sum(p.changed for p in self.panels)


def inbound_changes(user: PanelUser, tags: dict[str, list[str]]) -> dict[str, Any]:
    """Every VLESS and VMess inbound of the panel, as a config's user is created with."""
    if all(sorted(user.inbounds.get(p, [])) == sorted(t) for p, t in tags.items()):
        return {}
    changes: dict[str, Any] = {"inbounds": tags}
    lacking = [p for p in tags if p not in user.proxies]
    if lacking:  # the existing proxies keep their ids: the user's links stay valid
        changes["proxies"] = {**user.proxies, **{p: {} for p in lacking}}
    return changes


def differences(user: PanelUser, row: PageRow, deps: PanelDeps, tags: dict[str, list[str]]) -> dict[str, Any]:
    """What `PUT /api/user` must set for `user` to match `row`; empty when it does."""
    changes = panel_changes(user, _desired(row.target, deps.settings))
    # No subscription reads as "expired now": any past expiry matches it.
    if row.target.subscription_until is None and user.expire and user.expire <= time.time():
        changes.pop("expire", None)
    changes.update(inbound_changes(user, tags))
    return changes


async def _align_one(
    deps: PanelDeps, client: MarzbanClient, user: PanelUser, config_id: int, tags: dict[str, list[str]]
) -> bool:
    """Set `user` from its row, read again under the config's lock; True when a call was made."""
    async with config_lock(deps.pool, config_id) as conn:
        rows = await queries.rows_for_page(conn, [user.username])
        row = next((r for r in rows if r.config.id == config_id), None)
        if row is None or not _placed_here(row, client.instance_id):
            return False  # deleted, moved or reset meanwhile: its own operation sees to it
        changes = differences(user, row, deps, tags)
        if not changes:
            return False
        try:
            await client.modify_user(user.username, changes)
        except PanelUnavailable:
            raise
        except MarzbanError as exc:
            await configs_q.mark_needs_sync(conn, config_id, f"reconcile: {exc}")
            raise
    log.info("config %d: panel %s user set from the row: %s", config_id, client.instance_id, sorted(changes))
    return True


def _placed_here(row: PageRow, instance_id: str) -> bool:
    return not row.gone and row.config.status != "pending" and row.config.instance_id == instance_id


async def _page(
    deps: PanelDeps,
    client: MarzbanClient,
    raws: Iterable[msgspec.Raw],
    tags: dict[str, list[str]],
    report: PanelReport,
    seen: list[str],
    strangers: list[str],
) -> None:
    users: list[PanelUser] = []
    for raw in raws:
        user = decode_user(raw)
        if user is None:
            report.bad_items += 1
            log.warning("panel %s: an unreadable user: %s", client.instance_id, clean_text(bytes(raw), 200))
            continue
        users.append(user)
    report.seen += len(users)
    names = [u.username for u in users]
    seen.extend(names)
    rows = {r.config.panel_username: r for r in await queries.rows_for_page(deps.pool, names)}
    listed = await queries.listed_for_removal(deps.pool, client.instance_id, names)
    to_align: list[tuple[PanelUser, int]] = []
    for user in users:
        row = rows.get(user.username)
        if user.username in listed:
            continue  # the balancer removes it
        if row is None:
            report.strangers += 1
            strangers.append(user.username)
            await queries.seen_stranger(
                deps.pool,
                client.instance_id,
                clean_text(user.username, NOTE_LIMIT),
                clean_text(user.status, 32),
                clean_text(user.note, NOTE_LIMIT) or None,
            )
        elif row.gone or row.config.instance_id != client.instance_id:
            async with deps.pool.acquire() as conn:
                await configs_q.insert_removal(conn, client.instance_id, user.username, row.config.id)
            report.removals_queued += 1
        elif row.config.status != "pending" and differences(user, row, deps, tags):
            to_align.append((user, row.config.id))
    if to_align:
        await _align_all(deps, client, to_align, tags, report)


async def _align_all(
    deps: PanelDeps,
    client: MarzbanClient,
    to_align: list[tuple[PanelUser, int]],
    tags: dict[str, list[str]],
    report: PanelReport,
) -> None:
    """A few at a time: each waits on its lock, a query and the panel in turn."""
    gate = asyncio.Semaphore(ALIGN_CONCURRENCY)
    down: list[PanelUnavailable] = []

    async def one(user: PanelUser, config_id: int) -> None:
        async with gate:
            if down:
                return
            try:
                if await _align_one(deps, client, user, config_id, tags):
                    report.aligned += 1
            except PanelUnavailable as exc:
                down.append(exc)
            except MarzbanError as exc:
                report.failed += 1
                log.warning("panel %s: user %s not reconciled: %s", client.instance_id, user.username, exc)

    await asyncio.gather(*(one(user, config_id) for user, config_id in to_align))
    if down:
        raise down[0]  # the panel went away: the rest of it waits for the next round


async def _delete_stranger(client: MarzbanClient, username: str) -> None:
    """Disabled first: a SUDO_USERNAME admin's delete answers 500 before Xray drops the user."""
    try:
        await client.modify_user(username, {"status": "disabled"})
        await client.delete_user(username)
    except PanelUserNotFound:
        pass


async def reconcile_panel(deps: PanelDeps, instance: Instance) -> PanelReport:
    """Bring one panel to the rows' truth (see the module's doc)."""
    started = time.monotonic()
    report = PanelReport(instance_id=instance.id)
    client = deps.client(instance)
    page_size = deps.settings.panel_reconcile_page_size
    round_at = await deps.pool.fetchrow("SELECT now() AS real, orbit_now() AS clock")
    assert round_at is not None
    seen: list[str] = []
    strangers: list[str] = []
    try:
        tags = await protocol_tags(client)
        offset = 0
        while True:
            page = await client.list_users_raw(offset=offset, limit=page_size)
            await _page(deps, client, page.users, tags, report, seen, strangers)
            offset += len(page.users)
            if len(page.users) < page_size:
                break
        # The whole panel was read: what it lacks is re-created, what left is forgotten.
        for config_id in await queries.missing_on_instance(deps.pool, instance.id, seen, round_at["real"]):
            try:
                await sync_config(deps, config_id, missing=True, tags=tags)
                report.recreated += 1
            except PanelUnavailable:
                raise
            except MarzbanError as exc:
                report.failed += 1
                log.warning("panel %s: config %d not re-created: %s", instance.id, config_id, exc)
        await queries.forget_strangers_before(deps.pool, instance.id, round_at["clock"])
        if strangers and deps.settings.panel_delete_strangers:
            for username in strangers:
                await _delete_stranger(client, username)
                await queries.forget_stranger(deps.pool, instance.id, username)
                report.strangers_deleted += 1
                log.warning("panel %s: stranger %s deleted (PANEL_DELETE_STRANGERS)", instance.id, username)
    except PanelUnavailable as exc:
        report.skipped = exc.reason
    report.seconds = time.monotonic() - started
    if report.strangers and not deps.settings.panel_delete_strangers:
        log.warning(
            "panel %s: %d users no config knows (orbit instances orphans %s)",
            instance.id, report.strangers, instance.id,
        )  # fmt: skip
    log.info("%s", report.line())
    return report


async def reconcile_panels(deps: PanelDeps) -> RoundReport:
    """One round over every registered panel, one after the other."""
    round_report = RoundReport()
    for instance in await instances.list_instances(deps.pool):
        round_report.panels.append(await reconcile_panel(deps, instance))
    return round_report
