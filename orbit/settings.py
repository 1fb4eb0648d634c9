"""One typed settings object, read from the environment and `.env`.

Every field is named after the environment variable that sets it (upper-cased).
`load_settings()` checks every variable and reports all the bad ones at once in
one line, so an operator fixes a broken `.env` in one pass.
"""

from __future__ import annotations

import os
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import msgspec
from dotenv import dotenv_values

from orbit import redact, redis_url

TELEGRAM_PRODUCTION_URL = "https://api.telegram.org"
SANDBOX_ENV_FILE = Path("run/sandbox.env")  # relative to the directory of `.env`
_TRUE = ("1", "true", "yes", "on")

_TOKEN_RE = re.compile(r"^\d+:[A-Za-z0-9_-]+$")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
Url = Annotated[str, msgspec.Meta(pattern=r"^https?://[^\s/]+")]
# What Telegram accepts as setWebhook's secret_token.
WebhookSecret = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,256}$")]


class SettingsError(Exception):
    """Raised with one line that names every bad variable."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    # Telegram
    bot_token: str | None = None
    telegram_api_url: Url = TELEGRAM_PRODUCTION_URL
    admin_ids: tuple[int, ...] = ()
    support_contact: str = "@orbit_support"
    required_channel: str | None = None
    bot_http_host: str = "127.0.0.1"
    bot_http_port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8080
    # What a stranger can make the bot's HTTP listeners hold (orbit/bot/http_limits.py).
    bot_http_header_timeout_seconds: PositiveFloat = 10.0
    bot_http_body_timeout_seconds: PositiveFloat = 10.0
    bot_http_max_connections: PositiveInt = 256
    bot_http_max_body_bytes: PositiveInt = 65_536
    # /healthz and /metrics: their own listener when METRICS_PORT is set; else on the
    # webhook listener only while that one is on loopback (orbit/bot/process.py).
    metrics_host: str = "127.0.0.1"
    metrics_port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 0
    # The same endpoints of the other processes, each on METRICS_HOST (0: not served;
    # supervisord.conf gives each its port).
    metrics_port_ton_watcher: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 0
    metrics_port_balancer: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 0
    metrics_port_janitor: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 0
    # Webhook mode when WEBHOOK_URL is set (orbit/bot/webhook.py); polling otherwise.
    webhook_url: Url | None = None
    webhook_secret: WebhookSecret | None = None
    webhook_max_connections: Annotated[int, msgspec.Meta(ge=1, le=100)] = 40

    # Storage
    database_url: str | None = None
    database_user: str = "orbit"
    database_password: str = "orbit"
    database_name: str = "orbit"
    database_host: str = "127.0.0.1"
    database_port: PositiveInt = 5432
    database_pool_min: NonNegativeInt = 1
    database_pool_max: PositiveInt = 10
    redis_url: str = "redis://localhost"

    # Marzban: the legacy single-panel settings become instance `s001`.
    s001_marzban_username: str | None = None
    s001_marzban_password: str | None = None
    s001_base_url: Url | None = None
    max_ips_per_config: PositiveInt = 2
    marzban_timeout_seconds: PositiveFloat = 10.0  # per request to a panel
    # Full reconciliation with every panel (orbit/marzban/reconcile.py): how often, how many
    # users per `GET /api/users` page, and whether panel users no config knows are deleted.
    panel_reconcile_interval_seconds: PositiveInt = 3600
    panel_reconcile_page_size: Annotated[int, msgspec.Meta(ge=10, le=1000)] = 200
    panel_delete_strangers: bool = False
    # Fernet key(s), comma-separated, that encrypt panel passwords in Postgres
    # (orbit/marzban/passwords.py); the first encrypts, all decrypt.
    marzban_password_key: str | None = None

    # Payments
    ton_address: str | None = None
    tonapi_url: Url = "https://tonapi.io"
    tonapi_key: str | None = None
    ton_rub_rate: PositiveFloat = 220.0
    cryptobot_token: str | None = None
    cryptobot_testnet: bool = False
    cryptobot_api_url: Url | None = None
    telegram_stars_rate: PositiveFloat = 1.35
    payment_timeout_minutes: PositiveInt = 10
    # A TON transfer later than the payment window plus this gets the lower of the invoice's
    # rate and the rate when it arrived (docs/payments.md).
    ton_late_grace_minutes: NonNegativeInt = 60
    # The ton_watcher re-reads this much of the wallet's history before its cursor
    # (reconciliation), at start and then every TON_RECONCILE_INTERVAL_MINUTES (0: never).
    ton_reconcile_lookback_hours: PositiveInt = 24
    ton_reconcile_interval_minutes: NonNegativeInt = 60
    topup_min_rub: PositiveInt = 50  # smallest top-up accepted, any method
    topup_max_rub: PositiveInt = 100_000  # largest; anything above is a typo or abuse
    # How often the janitor compares Telegram's and Crypto Pay's records with ours.
    reconcile_interval_seconds: PositiveInt = 600

    # Everything the bot sends per second, all bot processes together (Telegram allows 30):
    # replies first, then notifications, broadcasts last (orbit/outbox/limiter.py).
    outbox_rate_per_second: PositiveFloat = 30.0
    # How long a reply may wait for its turn under a crowd or a flood wait; an effect's
    # screen that waited longer goes through the outbox instead (orbit/bot/screens.py).
    send_max_wait_seconds: PositiveFloat = 300.0

    # Product
    plans_file: str = "plans.json"
    sub_1m_price: PositiveInt | None = None
    sub_3m_price: PositiveInt | None = None
    sub_6m_price: PositiveInt | None = None
    sub_12m_price: PositiveInt | None = None
    free_trial_days: NonNegativeInt = 7
    referral_bonus: NonNegativeInt = 50
    rate_limit_scale: PositiveFloat = 1.0  # multiplies every rate-limit interval (tests shrink them)
    # Budgets per user beyond the rate limits (docs/RELIABILITY.md, access).
    configs_per_day: PositiveInt = 10  # configs created in 24 h, deleted ones included
    max_pending_payments: PositiveInt = 3  # unexpired pending invoices at once, all methods
    # Days after a subscription's end before its configs' panel users are deleted
    # (the rows stay as history; a renewal then makes new ones): orbit/subscriptions/expiry.py.
    grace_days: NonNegativeInt = 3

    # Backups (orbit/backup.py): `orbit backup` and the janitor's nightly one, made once
    # across all hosts after BACKUP_HOUR_UTC; the newest BACKUP_KEEP files stay in BACKUP_DIR.
    backup_dir: str = "backups"
    backup_keep: PositiveInt = 7
    backup_hour_utc: Annotated[int, msgspec.Meta(ge=0, le=23)] = 3
    backup_chat_id: int | None = None  # also sent there (sendDocument) when under 50 MB

    # Runtime
    log_level: str = "INFO"
    heartbeat_ttl_seconds: PositiveInt = 30
    lease_ttl_seconds: PositiveInt = 15
    shutdown_grace_seconds: PositiveFloat = 8.0

    def __repr__(self) -> str:
        # Secrets as `***`, URLs without their passwords (orbit/redact.py).
        fields = (f"{name}={redact.shown(name, getattr(self, name))!r}" for name in self.__struct_fields__)
        return f"Settings({', '.join(fields)})"

    __str__ = __repr__

    def secrets(self) -> list[str]:
        """Every credential these settings hold, for `redact.scrub` of text about to be printed."""
        fields = [(name, getattr(self, name)) for name in self.__struct_fields__]
        return redact.secret_values([*fields, ("dsn", self.dsn)])

    def scrub(self, text: str) -> str:
        """`text` (an error message) with none of these settings' credentials in it."""
        return redact.scrub(text, self.secrets())

    @property
    def dsn(self) -> str:
        if self.database_url:
            return self.database_url
        return (
            f"postgresql://{self.database_user}:{self.database_password}"
            f"@{self.database_host}:{self.database_port}/{self.database_name}"
        )

    def worker_metrics_port(self, worker: str) -> int:
        """METRICS_PORT_<WORKER>; 0 for the bot, which serves them on its own listeners."""
        return int(getattr(self, f"metrics_port_{worker}", 0))

    @property
    def is_admin_configured(self) -> bool:
        return bool(self.admin_ids)


def _field_types() -> dict[str, Any]:
    hints = typing.get_type_hints(Settings, include_extras=True)
    return {name: hints[name] for name in Settings.__struct_fields__}


def _describe(tp: Any) -> str:
    """A short human description of what a field expects."""
    origin = typing.get_origin(tp)
    if origin is Annotated:
        base, *metas = typing.get_args(tp)
        words = [_describe(base)]
        for meta in metas:
            if isinstance(meta, msgspec.Meta):
                if meta.gt is not None:
                    words.append(f"> {meta.gt}")
                if meta.ge is not None:
                    words.append(f">= {meta.ge}")
                if meta.le is not None:
                    words.append(f"<= {meta.le}")
                if meta.pattern is not None:
                    url = meta.pattern.startswith("^http")
                    words = ["an http(s) URL" if url else f"text matching {meta.pattern}"]
        return " ".join(words)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp) if a is not type(None))
    if origin is tuple:
        return "a comma-separated list of integers"
    names = {int: "an integer", float: "a number", bool: "true or false", str: "text"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _raw_value(tp: Any, raw: str) -> Any:
    """Turn the env string into what msgspec should validate."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and raw == "":
        return None
    base = tp
    if typing.get_origin(base) is Annotated:
        base = typing.get_args(base)[0]
    if typing.get_origin(base) in (typing.Union, types.UnionType):
        base = next(a for a in typing.get_args(base) if a is not type(None))
    if typing.get_origin(base) is Annotated:
        base = typing.get_args(base)[0]
    if typing.get_origin(base) is tuple:
        return [part.strip() for part in raw.split(",") if part.strip()]
    if base is bool:
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        return raw
    return raw.strip()


def read_environment(env_file: str | Path | None = ".env") -> dict[str, str]:
    """`.env` values overlaid by the real environment (the environment wins).

    With ORBIT_SANDBOX=1 (in either) the sandbox's `run/sandbox.env` (written by
    scripts/run.sh beside `.env`) lies between the two: a token in `.env` then never
    reaches real Telegram, and a command run by hand talks to the sandbox too.
    """
    values: dict[str, str] = {}
    if env_file is not None and Path(env_file).is_file():
        values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    forced = {**values, **os.environ}.get("ORBIT_SANDBOX", "").strip().lower() in _TRUE
    sandbox_env = Path(env_file if env_file is not None else ".env").parent / SANDBOX_ENV_FILE
    if forced and sandbox_env.is_file():
        values.update({k: v for k, v in dotenv_values(sandbox_env).items() if v is not None})
    values.update(os.environ)
    return values


def load_settings(
    environ: Mapping[str, str] | None = None,
    *,
    require: tuple[str, ...] = (),
) -> Settings:
    """Build Settings from `environ` (default: `.env` + os.environ).

    `require` names fields this process cannot run without (e.g. `bot_token`).
    """
    environ = read_environment() if environ is None else environ
    values: dict[str, Any] = {}
    errors: list[str] = []
    for name, tp in _field_types().items():
        var = name.upper()
        if var not in environ:
            continue
        raw = environ[var]
        try:
            values[name] = msgspec.convert(_raw_value(tp, raw), tp, strict=False)
        except msgspec.ValidationError:
            errors.append(f"{var} expected {_describe(tp)}, got {redact.shown(name, raw)!r}")
    for name in require:
        if values.get(name) in (None, "") and name not in {e.split()[0].lower() for e in errors}:
            errors.append(f"{name.upper()} is required")
    token = values.get("bot_token")
    if token and not _TOKEN_RE.match(token):
        errors.append("BOT_TOKEN expected <digits>:<secret> as given by @BotFather")
    if values.get("webhook_url") and not values.get("webhook_secret"):
        errors.append("WEBHOOK_SECRET is required with WEBHOOK_URL (1-256 of A-Z a-z 0-9 _ -)")
    password_key = values.get("marzban_password_key")
    if password_key:
        from cryptography.fernet import Fernet

        try:
            for key in password_key.split(","):
                Fernet(key.strip())
        except ValueError:
            errors.append(
                "MARZBAN_PASSWORD_KEY expected Fernet keys (32 url-safe base64 bytes each,"
                " comma-separated)"
            )
    if "redis_url" in values:
        try:
            redis_url.check(values["redis_url"])
        except redis_url.RedisUrlError as exc:
            errors.append(f"REDIS_URL {exc}")
    level = str(values.get("log_level", "INFO")).upper()
    if level not in _LOG_LEVELS:
        errors.append(f"LOG_LEVEL expected one of {', '.join(_LOG_LEVELS)}, got {level!r}")
    else:
        values["log_level"] = level
    if errors:
        raise SettingsError("; ".join(errors))
    return Settings(**values)
