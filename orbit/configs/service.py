"""A user's configs: create, list with usage, show, rename, delete.

What the bot's configs screens call. Every function that takes a config id
takes the user too and finds only that user's live configs, so a forged or
stale button naming someone else's config reads as "not yours" and changes
nothing.

Creating a config when every panel fails: the user is told plainly and the
config is deleted at once (`delete_panel_user`: the row becomes `deleted`, and
whatever a timed-out create may have left on a panel is listed in
`panel_removals` for the balancer to remove). We do not leave it pending for
later: the user was told it failed, so it must neither count against their
limit nor appear by itself an hour later. Only a crash between the insert and
the provisioning leaves a `pending` row; it is inserted with `needs_sync` so
the janitor's drift repair (`sync_config`) provisions it.

Usage: the list asks no panel; it shows what was stored last (`usage_bytes`,
`usage_read_at`: the janitor's rounds, orbit/subscriptions/traffic.py) with its
time. A config's own screen (show, and the screens after create and rename)
reads its panel now and stores the reading, so the list shows it next; when the
panel does not answer, the stored one is shown with its time.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
import unicodedata
from datetime import datetime

import msgspec
import qrcode
from qrcode.image.pil import PilImage

from orbit import clock
from orbit.configs import queries
from orbit.configs.queries import ConfigRecord
from orbit.marzban.errors import (
    ConfigNotFound,
    MarzbanError,
    NoInstanceAvailable,
    PanelUserNotFound,
)
from orbit.marzban.placement import choose_instance
from orbit.marzban.provisioning import (
    PanelDeps,
    Usage,
    delete_panel_user,
    new_panel_username,
    provision_config,
    read_usage,
)
from orbit.plans import Plans
from orbit.subscriptions import active_plan_limits
from orbit.subscriptions.service import BASE_PLAN_ID

log = logging.getLogger(__name__)

NAME_MAX_LENGTH = 32
# Beyond letters and digits: what people put in device names, nothing that looks like markup.
NAME_PUNCTUATION = frozenset(" -_.,()#+!'")
# A panel that is slow must not hold a config's screen: the stored usage shows instead.
USAGE_TIMEOUT_SECONDS = 3.0
MAX_CONFIG_ID = 2**31 - 1  # ids are below this (provisioning's advisory lock key is int4)


class ConfigError(Exception):
    """A request the user can fix or must be told about; `message_key` is the text."""

    message_key = "configs-error"


class NotYourConfig(ConfigError):
    """No live config with that id belongs to the user (deleted, forged or someone else's)."""

    message_key = "configs-not-found"


class NoActiveSubscription(ConfigError):
    message_key = "configs-no-subscription"


class ConfigLimitReached(ConfigError):
    message_key = "configs-limit-reached"

    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} configs")
        self.limit = limit


class DailyConfigCap(ConfigError):
    """More configs made in the last 24 h than `CONFIGS_PER_DAY`, deleted ones included:
    each is a panel user created (and likely deleted), so a loop of them has a budget."""

    message_key = "configs-daily-cap"

    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} configs a day")
        self.limit = limit


class InvalidConfigName(ConfigError):
    message_key = "configs-name-invalid"


class ConfigNotReady(ConfigError):
    """Still pending: no panel user yet, so no link or QR code."""

    message_key = "configs-not-ready"


class StaleCreate(ConfigError):
    """The ➕ pressed was shown before another config was made (a double press)."""

    message_key = "configs-create-stale"


class ProvisioningFailed(ConfigError):
    """Every panel failed; the config was not created (see the module docstring)."""

    message_key = "configs-create-failed"


class ConfigView(msgspec.Struct, frozen=True, kw_only=True):
    """A config as its own screen shows it. When `usage` is set, the record's
    `usage_bytes`/`usage_read_at` are that reading (this period, all panels) and
    its time; else they are what was stored last (None: never read)."""

    config: ConfigRecord
    usage: Usage | None  # read from its panel now; None: not on a panel yet, or no answer
    now: datetime  # the project's clock (orbit_now) when read: how old a stored usage is


class ConfigList(msgspec.Struct, frozen=True, kw_only=True):
    configs: list[ConfigRecord]  # usage as stored last (`usage_bytes`, `usage_read_at`)
    now: datetime  # the project's clock: how old each stored usage is
    made: int  # configs the user ever made: the ➕ button carries it (see create_config)
    active: bool  # the subscription runs now
    until: datetime | None
    max_configs: int


def _check_id(config_id: int) -> None:
    if not 0 < config_id <= MAX_CONFIG_ID:
        raise NotYourConfig(f"config {config_id}")


def clean_name(raw: str) -> str:
    """A config label as typed by a user, or `InvalidConfigName`.

    Runs of spaces become one; 1-32 characters of letters, digits and
    ` -_.,()#+!'`. The label lives in our DB only: Marzban usernames cannot change.
    """
    text = unicodedata.normalize("NFC", raw)
    if any(unicodedata.category(ch).startswith("C") for ch in text):  # newlines, tabs, controls
        raise InvalidConfigName("characters")
    name = " ".join(text.split())
    if not 1 <= len(name) <= NAME_MAX_LENGTH:
        raise InvalidConfigName("length")
    if not all(ch.isalnum() or ch in NAME_PUNCTUATION for ch in name):
        raise InvalidConfigName("characters")
    return name


async def create_config(
    deps: PanelDeps, plans: Plans, user_id: int, *, seen_made: int | None = None
) -> ConfigView:
    """A new config for the user on the best panel, provisioned before returning
    (with its usage, as the screen that follows shows it).

    Needs a running subscription and a free slot under the plan's `max_configs`;
    the user's row is locked while counting, so concurrent creates of one user
    cannot exceed it. `seen_made` is `ConfigList.made` as the pressed screen
    showed it: when another config was made since (a double press), this one is
    refused with `StaleCreate`. Also raises `NoActiveSubscription`,
    `ConfigLimitReached`, `DailyConfigCap` (before any panel is asked), or
    `ProvisioningFailed` (nothing was created; the user may try again).
    """
    started = time.monotonic()
    async with deps.pool.acquire() as conn, conn.transaction():
        if not await queries.lock_owner(conn, user_id):
            raise NoActiveSubscription(f"unknown user {user_id}")
        limits = await active_plan_limits(conn, user_id, plans)
        if not limits.active:
            raise NoActiveSubscription(f"user {user_id}")
        live, ever = await queries.count_of_user(conn, user_id)
        if seen_made is not None and ever != seen_made:
            raise StaleCreate(f"user {user_id}: {ever} made, the screen showed {seen_made}")
        if live >= limits.max_configs:
            raise ConfigLimitReached(limits.max_configs)
        per_day = deps.settings.configs_per_day
        if await queries.made_in_last_day(conn, user_id) >= per_day:
            raise DailyConfigCap(per_day)
        try:
            instance_id = await choose_instance(deps.redis, conn)
        except NoInstanceAvailable as exc:
            raise ProvisioningFailed(str(exc)) from exc
        plan = plans.get(limits.plan_id or BASE_PLAN_ID)
        config = await queries.insert_pending(
            conn,
            user_id,
            instance_id,
            new_panel_username(user_id),
            f"Config {ever + 1}",
            plan.data_limit_bytes if plan else 0,
            plan.data_limit_reset_strategy if plan else "no_reset",
        )
        # Should this process die before provisioning, the janitor's repair finishes it.
        await queries.mark_needs_sync(conn, config.id, "created, not provisioned yet")
    try:
        record = await provision_config(deps, config.id)
    except MarzbanError as exc:
        log.warning("config %d of user %d not provisioned (%s): deleting it", config.id, user_id, exc)
        await delete_panel_user(deps, config.id)
        raise ProvisioningFailed(str(exc)) from exc
    await queries.clear_needs_sync_if_unchanged(deps.pool, record.id, record.updated_at)
    log.info(
        "user %d created config %d on %s in %.3fs",
        user_id, record.id, record.instance_id, time.monotonic() - started,
    )  # fmt: skip
    return await _live_view(deps, record)


async def _live_view(deps: PanelDeps, config: ConfigRecord) -> ConfigView:
    """The config with its usage read from its panel now, and stored for the list."""
    read_at = await clock.now(deps.pool)  # before the read, as the janitor's: an older read never wins
    if config.status == "pending":
        return ConfigView(config=config, usage=None, now=read_at)
    try:
        usage = await asyncio.wait_for(read_usage(deps, config.id), USAGE_TIMEOUT_SECONDS)
    except (MarzbanError, TimeoutError) as exc:
        # A down panel: the screen shows the stored usage with its time.
        if not isinstance(exc, PanelUserNotFound | ConfigNotFound):
            log.info("usage of config %d not read: %s", config.id, str(exc) or "timed out")
        return ConfigView(config=config, usage=None, now=read_at)
    # Counted as the janitor counts it: what earlier panels used this period too (a drain).
    used = usage.used_traffic + config.usage_carried_bytes
    await queries.store_usage(deps.pool, {config.id: used}, read_at)
    read = msgspec.structs.replace(config, usage_bytes=used, usage_read_at=read_at)
    return ConfigView(config=read, usage=usage, now=read_at)


async def list_configs(deps: PanelDeps, plans: Plans, user_id: int) -> ConfigList:
    """The user's live configs with their usage as stored last: no panel is asked."""
    async with deps.pool.acquire() as conn:
        limits = await active_plan_limits(conn, user_id, plans)
        configs = await queries.list_of_user(conn, user_id)
        _, made = await queries.count_of_user(conn, user_id)
        now = await clock.now(conn)
    return ConfigList(
        configs=configs,
        now=now,
        made=made,
        active=limits.active,
        until=limits.until,
        max_configs=limits.max_configs,
    )


async def get_config(deps: PanelDeps, user_id: int, config_id: int) -> ConfigRecord:
    """The user's live config, or `NotYourConfig`."""
    _check_id(config_id)
    config = await queries.get_owned(deps.pool, config_id, user_id)
    if config is None:
        raise NotYourConfig(f"config {config_id} of user {user_id}")
    return config


async def show_config(deps: PanelDeps, user_id: int, config_id: int) -> ConfigView:
    """One of the user's configs with its usage read from its panel now (see ConfigView)."""
    return await _live_view(deps, await get_config(deps, user_id, config_id))


def qr_png(text: str) -> bytes:
    """A QR code of `text` as PNG bytes (mobile apps import the subscription link from it)."""
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=8, border=3)
    code.add_data(text)
    code.make(fit=True)
    buffer = io.BytesIO()
    code.make_image(image_factory=PilImage).save(buffer, format="PNG")
    return buffer.getvalue()


async def config_qr(deps: PanelDeps, user_id: int, config_id: int) -> tuple[ConfigRecord, bytes]:
    """The config and a PNG QR code of its subscription link."""
    config = await get_config(deps, user_id, config_id)
    if config.status == "pending" or not config.subscription_url:
        raise ConfigNotReady(f"config {config_id}")
    # Encoding takes a few milliseconds of CPU: keep it off the event loop.
    return config, await asyncio.to_thread(qr_png, config.subscription_url)


async def rename_config(deps: PanelDeps, user_id: int, config_id: int, raw_name: str) -> ConfigView:
    """Give the config a new label (returned with its usage, for the screen that follows);
    `InvalidConfigName` or `NotYourConfig` change nothing."""
    _check_id(config_id)
    name = clean_name(raw_name)
    record = await queries.rename_owned(deps.pool, config_id, user_id, name)
    if record is None:
        raise NotYourConfig(f"config {config_id} of user {user_id}")
    log.info("user %d renamed config %d", user_id, config_id)
    return await _live_view(deps, record)


async def delete_config(deps: PanelDeps, user_id: int, config_id: int) -> ConfigRecord:
    """Delete the user's config here and on its panel.

    A panel that is down does not keep the config: the row is deleted now and
    the panel user is removed by the balancer's retries (`panel_removals`).
    """
    config = await get_config(deps, user_id, config_id)
    try:
        removed = await delete_panel_user(deps, config_id)
    except ConfigNotFound:
        raise NotYourConfig(f"config {config_id} of user {user_id}") from None
    log.info("user %d deleted config %d (panel %s)", user_id, config_id, "done" if removed else "queued")
    return config
