"""A config's panel user: create, change, delete, read; what the bot, the janitor,
the CLI and the drain call.

Rules every function here keeps:

- One operation per config at a time, across processes: a Postgres advisory
  lock on the config id (`config_lock`), held on the one connection the
  operation uses, released by Postgres if the process dies.
- The panel username is fixed by the row (Marzban cannot rename), so a retry
  finds what an earlier attempt made: a user already on the panel is adopted,
  never duplicated.
- Before a user is created on an instance, a `panel_removals` row for it is
  committed; the transaction that points the config at that instance deletes
  it. Whatever a crash or a timeout leaves on some other instance is therefore
  listed and removed later (`process_removals`, run by the balancer).
- The row is the desired state. When a panel cannot be told, the row is marked
  `needs_sync` with the error and the error is raised.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

import aiohttp
import asyncpg
import msgspec
from redis.asyncio import Redis

from orbit import outbox
from orbit.configs import queries as configs_q
from orbit.configs.queries import ConfigRecord, PanelTarget
from orbit.marzban import instances
from orbit.marzban.client import DEFAULT_RETRIES, MarzbanClient, absolute_url
from orbit.marzban.errors import (
    ConfigBusy,
    ConfigNotFound,
    InstanceNotFound,
    MarzbanError,
    NoInstanceAvailable,
    PanelRejected,
    PanelUnavailable,
    PanelUserExists,
    PanelUserNotFound,
)
from orbit.marzban.instances import Instance
from orbit.marzban.models import NewUser, PanelUser
from orbit.marzban.passwords import PanelPasswords
from orbit.marzban.placement import choose_instance, poke_balancer
from orbit.settings import Settings

if TYPE_CHECKING:
    from orbit.i18n import Translator

log = logging.getLogger(__name__)

PROTOCOLS = ("vless", "vmess")
LINK_CHANGED_KIND = "config_link_changed"  # outbox kind: a re-created user's new link
# Advisory locks taken with two int4 keys live apart from the ledger's bigint
# keys; this first key names "a config". Config ids stay below 2**31.
CONFIG_LOCK_CLASS = 0x0C0F
LOCK_WAIT_SECONDS = 60.0


@dataclass(frozen=True)
class PanelDeps:
    pool: asyncpg.Pool
    redis: Redis
    http: aiohttp.ClientSession
    settings: Settings
    # Renders the messages provisioning queues (a link that changed); built on
    # first use when not given (building one reads every catalog).
    translator: Translator | None = None

    def translate(self, locale: str, key: str, /, **params: Any) -> str:
        translator = self.translator
        if translator is None:
            from orbit.i18n import create_translator  # imports aiogram: only when needed

            translator = create_translator()
            object.__setattr__(self, "translator", translator)
        return translator(locale, key, **params)

    @cached_property
    def passwords(self) -> PanelPasswords:
        return PanelPasswords.from_settings(self.settings)

    def client(self, instance: Instance, *, retries: int = DEFAULT_RETRIES) -> MarzbanClient:
        return MarzbanClient(
            self.http,
            self.redis,
            instance,
            timeout=self.settings.marzban_timeout_seconds,
            retries=retries,
            passwords=self.passwords,
        )


class Usage(msgspec.Struct, frozen=True, kw_only=True):
    status: str  # the panel's: active, disabled, limited, expired, on_hold
    used_traffic: int  # bytes, already × node coefficients
    lifetime_used_traffic: int
    data_limit: int | None  # None = unlimited
    expire_at: datetime | None  # None = never
    online_at: datetime | None


class RemovalReport(msgspec.Struct, frozen=True, kw_only=True):
    removed: int = 0
    failed: int = 0


def new_panel_username(user_id: int) -> str:
    """A fresh Marzban username for one of `user_id`'s configs: `o<user id>_<8 hex>`.

    At most 30 characters of [a-z0-9_], so valid on every panel; the random part
    makes it unique in practice, and `configs.panel_username` is UNIQUE anyway.
    """
    return f"o{abs(user_id)}_{secrets.token_hex(4)}"


def panel_note(config: ConfigRecord, max_ips: int) -> str:
    return f"orbit config {config.id} user {config.user_id}; max_ips={max_ips}"


def expire_timestamp(subscription_until: datetime | None) -> int:
    """The panel's `expire` for a subscription end; no subscription = expired now."""
    moment = subscription_until or datetime.now(UTC)
    return max(1, int(moment.timestamp()))


@asynccontextmanager
async def config_lock(pool: asyncpg.Pool, config_id: int) -> AsyncIterator[asyncpg.Connection]:
    """Hold the config's advisory lock; yields the connection to do the work on."""
    async with pool.acquire() as conn:
        try:
            await conn.execute(
                "SELECT pg_advisory_lock($1::int, $2::int)",
                CONFIG_LOCK_CLASS,
                config_id,
                timeout=LOCK_WAIT_SECONDS,
            )
        except TimeoutError:
            raise ConfigBusy(config_id) from None
        try:
            yield conn
        finally:
            # The pool's reset unlocks too if this fails (e.g. a broken connection).
            with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                await conn.execute(
                    "SELECT pg_advisory_unlock($1::int, $2::int)", CONFIG_LOCK_CLASS, config_id
                )


class _Desired(msgspec.Struct, frozen=True, kw_only=True):
    expire: int  # unix seconds; 0 = never
    data_limit: int  # bytes; 0 = unlimited
    reset_strategy: str  # Marzban's; `no_reset` for an unlimited config
    enabled: bool
    note: str


def remaining_limit(config: ConfigRecord) -> int:
    """The panel user's data limit: the config's, less what earlier panels counted
    this period (Marzban cannot be told a user's used traffic); at least 1 byte, as
    0 means unlimited. 0 when the config is unlimited."""
    if not config.data_limit_bytes:
        return 0
    return max(1, config.data_limit_bytes - config.usage_carried_bytes)


def _desired(target: PanelTarget, settings: Settings) -> _Desired:
    config = target.config
    return _Desired(
        expire=expire_timestamp(target.subscription_until),
        data_limit=remaining_limit(config),
        reset_strategy=config.data_limit_reset_strategy if config.data_limit_bytes else "no_reset",
        enabled=config.status != "disabled" and not target.owner_banned,
        note=panel_note(config, settings.max_ips_per_config),
    )


def panel_changes(user: PanelUser, want: _Desired) -> dict[str, Any]:
    """The fields of `PUT /api/user` that make `user` match the row; empty when it does."""
    changes: dict[str, Any] = {}
    if (user.expire or 0) != want.expire:
        changes["expire"] = want.expire
    if (user.data_limit or 0) != want.data_limit:
        changes["data_limit"] = want.data_limit
    if user.data_limit_reset_strategy != want.reset_strategy:
        changes["data_limit_reset_strategy"] = want.reset_strategy
    if want.enabled and user.status == "disabled":
        changes["status"] = "active"
    elif not want.enabled and user.status != "disabled":
        changes["status"] = "disabled"
    return changes


async def _align(client: MarzbanClient, user: PanelUser, want: _Desired) -> PanelUser:
    """Make an existing panel user match the row (expiry, data limit, enabled)."""
    changes = panel_changes(user, want)
    if not changes:
        return user
    return await client.modify_user(user.username, changes)


async def protocol_tags(client: MarzbanClient) -> dict[str, list[str]]:
    """The panel's VLESS and VMess inbound tags: what every config's user is given."""
    inbounds = await client.get_inbounds()
    return {p: [i.tag for i in inbounds[p]] for p in PROTOCOLS if inbounds.get(p)}


async def _ensure_user(
    client: MarzbanClient,
    username: str,
    want: _Desired,
    *,
    missing: bool = False,
    tags: dict[str, list[str]] | None = None,
) -> tuple[PanelUser, bool]:
    """The panel user `username` on this panel, created if missing, matching `want`;
    and whether it was created now (its subscription tokens are new then: the panel
    signs them per user, so links issued before a re-create answer 404).

    `missing` (the caller just listed the panel without it) skips the first read and
    `tags` the inbounds read: a re-create is then one call (a 409 adopts the user)."""
    if not missing:
        try:
            return await _align(client, await client.get_user(username), want), False
        except PanelUserNotFound:
            pass
    if tags is None:
        tags = await protocol_tags(client)
    if not tags:
        raise PanelRejected(client.instance_id, 400, "the panel has no VLESS or VMess inbound")
    new = NewUser(
        username=username,
        proxies={p: {} for p in tags},
        inbounds=tags,
        expire=want.expire,
        data_limit=want.data_limit,
        data_limit_reset_strategy=want.reset_strategy,
        note=want.note,
    )
    created = True
    try:
        user = await client.create_user(new)
    except PanelUserExists:  # there after all (made meanwhile): its links are the old ones
        user = await client.get_user(username)
        created = False
    except PanelUnavailable as exc:
        if not exc.outcome_unknown:
            raise
        # The panel may have made the user before the answer was lost: ask once.
        try:
            user = await client.get_user(username)
        except (PanelUserNotFound, PanelUnavailable):
            raise exc from None
        log.info("panel %s: adopted %s after its create timed out", client.instance_id, username)
    return await _align(client, user, want), created


async def place_user(
    deps: PanelDeps,
    conn: asyncpg.Connection,
    target: PanelTarget,
    *,
    avoid: Collection[str] = (),
    prefer: str | None = None,
) -> tuple[Instance, PanelUser]:
    """Make the config's panel user exist on the best instance not in `avoid`,
    trying `prefer` first and failing over instance by instance."""
    config = target.config
    want = _desired(target, deps.settings)
    tried: set[str] = set(avoid)
    failures: list[str] = []
    candidate = prefer
    while True:
        if candidate is None or candidate in tried:
            try:
                candidate = await choose_instance(deps.redis, conn, exclude=frozenset(tried))
            except NoInstanceAvailable:
                break
        instance = await instances.get_instance(conn, candidate)
        if instance is None or not instance.is_active:
            tried.add(candidate)
            candidate = None
            continue
        # Listed before it can exist; the placing transaction un-lists it.
        await configs_q.insert_removal(conn, instance.id, config.panel_username, config.id)
        try:
            user, _ = await _ensure_user(deps.client(instance), config.panel_username, want)
        except (PanelUnavailable, PanelRejected) as exc:
            log.warning("config %d: instance %s failed: %s", config.id, instance.id, exc)
            failures.append(str(exc))
            tried.add(instance.id)
            candidate = None
            if isinstance(exc, PanelUnavailable):
                await poke_balancer(deps.redis)
            continue
        return instance, user
    if not failures:
        raise NoInstanceAvailable(f"no instance to place config {config.id} on")
    raise PanelUnavailable(",".join(sorted(tried)) or "-", "; ".join(failures))


async def load_target(conn: asyncpg.Connection, config_id: int) -> PanelTarget:
    target = await configs_q.get_for_panel(conn, config_id)
    if target is None or target.config.deleted_at is not None:
        raise ConfigNotFound(config_id)
    return target


async def _place_and_point(
    deps: PanelDeps,
    conn: asyncpg.Connection,
    target: PanelTarget,
    *,
    avoid: Collection[str] = (),
    prefer: str | None = None,
) -> tuple[ConfigRecord, Instance]:
    """`_place`, then point the row at the instance that holds the user."""
    config = target.config
    instance, user = await place_user(deps, conn, target, avoid=avoid, prefer=prefer)
    url = absolute_url(instance.link_base, user.subscription_url)
    async with conn.transaction():
        record = await configs_q.mark_placed(conn, config.id, instance.id, url, config.instance_id)
        if record is None:  # we hold the lock: only a deletion can get here
            raise ConfigNotFound(config.id)
        await configs_q.delete_removal(conn, instance.id, config.panel_username)
        if config.instance_id != instance.id:
            await configs_q.insert_removal(
                conn, config.instance_id, config.panel_username, config.id
            )
        if config.status == "pending" and config.revived_from is not None:
            # Made by a renewal after the old one was retired: its link goes out with
            # the placement (or not at all, should this transaction not commit).
            text = deps.translate(target.language, "life-config-revived", name=config.name, url=url)
            await outbox.enqueue(
                conn, config.user_id, LINK_CHANGED_KIND, text, dedup_key=f"config-revived:{config.id}"
            )
    if config.status == "pending" and config.revived_from is not None:
        await outbox.wake_sender(deps.redis)
    return record, instance


async def provision_config(deps: PanelDeps, config_id: int) -> ConfigRecord:
    """Give a `pending` config its panel user and make the row `active`.

    Tries the row's provisional instance first, then the next best ones
    (poking the balancer for each that fails). Raises `PanelUnavailable` when
    every instance failed (the row stays pending; calling again is safe) and
    `NoInstanceAvailable` when there was none to try. A config that is already
    placed is returned as it is.
    """
    started = time.monotonic()
    async with config_lock(deps.pool, config_id) as conn:
        target = await load_target(conn, config_id)
        if target.config.status != "pending":
            return target.config
        try:
            record, _ = await _place_and_point(deps, conn, target, prefer=target.config.instance_id)
        except MarzbanError as exc:
            await configs_q.set_last_error(conn, config_id, str(exc))
            raise
    log.info(
        "config %d provisioned on %s as %s in %.3fs",
        config_id, record.instance_id, record.panel_username, time.monotonic() - started,
    )  # fmt: skip
    return record


async def _client_for(
    deps: PanelDeps, conn: asyncpg.Connection, config: ConfigRecord
) -> MarzbanClient:
    instance = await instances.get_instance(conn, config.instance_id)
    if instance is None:
        raise InstanceNotFound(config.instance_id)
    return deps.client(instance)


async def set_expiry(deps: PanelDeps, config_id: int, expire_at: datetime | None) -> None:
    """Set the panel user's expiry (`None` = never); a pending config has none yet.

    On a panel error the row is marked `needs_sync` and the error is raised.
    """
    async with config_lock(deps.pool, config_id) as conn:
        config = (await load_target(conn, config_id)).config
        if config.status == "pending":
            return
        client = await _client_for(deps, conn, config)
        expire = 0 if expire_at is None else expire_timestamp(expire_at)
        try:
            await client.modify_user(config.panel_username, {"expire": expire})
        except MarzbanError as exc:
            await configs_q.mark_needs_sync(conn, config_id, f"set expiry: {exc}")
            raise
    log.info("config %d: expiry set to %s", config_id, expire_at)


async def set_enabled(deps: PanelDeps, config_id: int, enabled: bool) -> ConfigRecord:
    """Enable or disable the config: the row's status first, then the panel user.

    On a panel error the row keeps the new status, is marked `needs_sync`, and the
    error is raised. A pending config only changes its row.
    """
    status = "active" if enabled else "disabled"
    async with config_lock(deps.pool, config_id) as conn:
        config = (await load_target(conn, config_id)).config
        if config.status == "pending":
            return config
        record = await configs_q.set_status(conn, config_id, status)
        if record is None:
            raise ConfigNotFound(config_id)
        client = await _client_for(deps, conn, config)
        try:
            await client.modify_user(config.panel_username, {"status": status})
        except MarzbanError as exc:
            await configs_q.mark_needs_sync(conn, config_id, f"set {status}: {exc}")
            raise
    log.info("config %d: %s", config_id, status)
    return record


async def delete_panel_user(deps: PanelDeps, config_id: int) -> bool:
    """Delete the config: the row becomes `deleted` and its panel user is removed.

    Returns True when the panel confirmed (a 404 counts as done), False when the
    panel could not be reached: the removal then stays queued in
    `panel_removals` and the balancer retries it. Deleting twice is harmless.
    """
    async with config_lock(deps.pool, config_id) as conn:
        config = await configs_q.get_config(conn, config_id)
        if config is None:
            raise ConfigNotFound(config_id)
        async with conn.transaction():
            await configs_q.mark_deleted(conn, config_id)
            await configs_q.insert_removal(conn, config.instance_id, config.panel_username, config_id)
        done = await remove_listed(deps, conn, config.instance_id, config.panel_username)
    log.info("config %d deleted (panel user %s)", config_id, "removed" if done else "queued")
    return done


async def read_usage(deps: PanelDeps, config_id: int) -> Usage:
    """Traffic, limit, expiry and status of the config's panel user, from its panel."""
    async with deps.pool.acquire() as conn:
        config = await configs_q.get_config(conn, config_id)
        if config is None or config.deleted_at is not None:
            raise ConfigNotFound(config_id)
        client = await _client_for(deps, conn, config)
    if config.status == "pending":
        raise PanelUserNotFound(config.instance_id, config.panel_username)
    user = await client.get_user(config.panel_username)
    return Usage(
        status=user.status,
        used_traffic=user.used_traffic,
        lifetime_used_traffic=user.lifetime_used_traffic,
        data_limit=user.data_limit,
        expire_at=None if user.expire is None else datetime.fromtimestamp(user.expire, UTC),
        online_at=_utc(user.online_at),
    )


async def sync_config(
    deps: PanelDeps,
    config_id: int,
    *,
    missing: bool = False,
    tags: dict[str, list[str]] | None = None,
) -> ConfigRecord:
    """Repair drift: make the panel match the row and clear `needs_sync`.

    A pending config is provisioned; a deleted one has its panel user removed;
    a live one gets its user on its instance (re-created if the panel lost it)
    with the owner's expiry, its data limit and its enabled state. `missing` and
    `tags`: see `_ensure_user` (the panel reconciliation knows both).
    """
    async with config_lock(deps.pool, config_id) as conn:
        target = await configs_q.get_for_panel(conn, config_id)
        if target is None:
            raise ConfigNotFound(config_id)
        config = target.config
        if config.deleted_at is not None or config.status in ("deleting", "deleted"):
            if config.deleted_at is None:
                await configs_q.mark_deleted(conn, config_id)
            await configs_q.insert_removal(conn, config.instance_id, config.panel_username, config_id)
            await remove_listed(deps, conn, config.instance_id, config.panel_username)
            await configs_q.mark_synced(conn, config_id)
            return config
        if config.status == "pending":
            record, _ = await _place_and_point(deps, conn, target, prefer=config.instance_id)
            await configs_q.mark_synced(conn, config_id)
            return record
        client = await _client_for(deps, conn, config)
        try:
            if config.usage_reset_due:
                target = await _reset_usage(client, conn, target)
            user, created = await _ensure_user(
                client,
                config.panel_username,
                _desired(target, deps.settings),
                missing=missing and not config.usage_reset_due,
                tags=tags,
            )
        except MarzbanError as exc:
            await configs_q.mark_needs_sync(conn, config_id, f"sync: {exc}")
            raise
        url = absolute_url(client.instance.link_base, user.subscription_url)
        # Made again (the panel lost it, auto-deleted it, was reinstalled): the old
        # link is dead, so the row takes the new one and the owner is told.
        tell = created and bool(config.subscription_url)
        async with conn.transaction():
            if created or not config.subscription_url:
                await configs_q.set_subscription_url(conn, config_id, url)
            if tell:
                text = deps.translate(
                    target.language,
                    "marzban-link-changed",
                    name=config.name,
                    url=url,
                )
                await outbox.enqueue(conn, config.user_id, LINK_CHANGED_KIND, text)
            await configs_q.mark_synced(conn, config_id)
        if tell:
            log.info("config %d: panel user re-created on %s; new link sent", config_id, config.instance_id)
            await outbox.wake_sender(deps.redis)
        return (await configs_q.get_config(conn, config_id)) or config


async def _reset_usage(
    client: MarzbanClient, conn: asyncpg.Connection, target: PanelTarget
) -> PanelTarget:
    """A renewal paid for a new period: zero the used traffic (a `limited` user stays
    limited when only `expire` moves). The reset also re-activates a disabled user;
    the alignment after it disables it again."""
    config = target.config
    if config.data_limit_bytes:
        with contextlib.suppress(PanelUserNotFound):  # made again right after, unused
            await client.reset_usage(config.panel_username)
        log.info("config %d: used traffic reset for the new period", config.id)
    await configs_q.usage_was_reset(conn, config.id)
    fresh = msgspec.structs.replace(config, usage_reset_due=False, usage_carried_bytes=0)
    return msgspec.structs.replace(target, config=fresh)


async def remove_listed(
    deps: PanelDeps, conn: asyncpg.Connection, instance_id: str, username: str
) -> bool:
    """Delete a listed panel user if it is due; True when it is gone."""
    if not await configs_q.removal_is_due(conn, instance_id, username):
        return False
    instance = await instances.get_instance(conn, instance_id)
    if instance is None:  # the instance was removed: nothing left to delete
        await configs_q.delete_removal(conn, instance_id, username)
        return True
    client = deps.client(instance, retries=0)
    try:
        # Disable first: it removes the user from Xray. A panel logged into as its
        # SUDO_USERNAME admin deletes the row, then answers 500 before Xray drops
        # the user, who could connect until Xray restarted (reference §10).
        await client.modify_user(username, {"status": "disabled"})
        await client.delete_user(username)
    except PanelUserNotFound:
        pass
    except MarzbanError as exc:
        await configs_q.removal_failed(conn, instance_id, username, str(exc))
        log.warning("panel %s: user %s not removed yet: %s", instance_id, username, exc)
        return False
    await configs_q.delete_removal(conn, instance_id, username)
    return True


async def process_removals(
    deps: PanelDeps, *, instance_ids: Collection[str] | None = None, limit: int = 100
) -> RemovalReport:
    """Remove listed panel users that no config points at any more.

    An instance that fails once is skipped for the rest of this call.
    """
    due = await configs_q.removals_due(deps.pool, instance_ids, limit)
    removed = failed = 0
    skipped: set[str] = set()
    for item in due:
        if item.instance_id in skipped:
            continue
        async with config_lock(deps.pool, item.config_id) as conn:
            if await remove_listed(deps, conn, item.instance_id, item.panel_username):
                removed += 1
            elif await configs_q.removal_is_due(conn, item.instance_id, item.panel_username):
                failed += 1
                skipped.add(item.instance_id)
    if removed or failed:
        log.info("panel removals: %d removed, %d failed", removed, failed)
    return RemovalReport(removed=removed, failed=failed)


def _utc(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
