"""Settings and plans: every malformed value is named in one line; processes exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orbit.plans import PlanError, load_plans
from orbit.settings import Settings, SettingsError, load_settings
from tests.support.processes import run_to_exit


def test_defaults_match_the_operators_conventions() -> None:
    s = load_settings({})
    assert s.redis_url == "redis://localhost"
    assert s.max_ips_per_config == 2
    assert s.free_trial_days == 7
    assert s.referral_bonus == 50
    assert s.telegram_stars_rate == 1.35
    assert s.ton_rub_rate == 220
    assert s.payment_timeout_minutes == 10
    assert s.telegram_api_url == "https://api.telegram.org"


def test_values_are_parsed_from_strings() -> None:
    s = load_settings(
        {
            "BOT_TOKEN": "42:abc",
            "ADMIN_IDS": "1, 2,3",
            "CRYPTOBOT_TESTNET": "true",
            "MAX_IPS_PER_CONFIG": "4",
            "TON_RUB_RATE": "199.5",
            "DATABASE_USER": "u",
            "DATABASE_PASSWORD": "p",
            "DATABASE_HOST": "db",
            "DATABASE_NAME": "n",
            "LOG_LEVEL": "debug",
        }
    )
    assert s.admin_ids == (1, 2, 3)
    assert s.cryptobot_testnet is True
    assert s.max_ips_per_config == 4
    assert s.ton_rub_rate == 199.5
    assert s.dsn == "postgresql://u:p@db:5432/n"
    assert s.log_level == "DEBUG"
    assert load_settings({"DATABASE_URL": "postgresql://x/y"}).dsn == "postgresql://x/y"


def test_secrets_are_masked_in_repr() -> None:
    s = Settings(bot_token="42:supersecret", s001_marzban_password="hunter2")
    assert "supersecret" not in repr(s)
    assert "hunter2" not in repr(s)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"MAX_IPS_PER_CONFIG": "two"}, "MAX_IPS_PER_CONFIG expected an integer > 0, got 'two'"),
        ({"MAX_IPS_PER_CONFIG": "0"}, "MAX_IPS_PER_CONFIG expected an integer > 0"),
        ({"ADMIN_IDS": "1,x"}, "ADMIN_IDS expected a comma-separated list of integers"),
        ({"CRYPTOBOT_TESTNET": "maybe"}, "CRYPTOBOT_TESTNET expected true or false"),
        ({"S001_BASE_URL": "panel.example"}, "S001_BASE_URL expected an http(s) URL"),
        ({"TELEGRAM_STARS_RATE": "-1"}, "TELEGRAM_STARS_RATE expected a number > 0"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL expected one of"),
        ({"BOT_TOKEN": "not-a-token"}, "BOT_TOKEN expected <digits>:<secret>"),
    ],
)
def test_malformed_values_are_named(env: dict[str, str], expected: str) -> None:
    with pytest.raises(SettingsError, match=r"^.*$") as info:
        load_settings(env)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_every_bad_variable_is_named_at_once() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({"MAX_IPS_PER_CONFIG": "x", "FREE_TRIAL_DAYS": "-3"}, require=("bot_token",))
    message = str(info.value)
    assert "MAX_IPS_PER_CONFIG" in message
    assert "FREE_TRIAL_DAYS" in message
    assert "BOT_TOKEN is required" in message


def test_plans_load_with_env_overrides() -> None:
    plans = load_plans(Settings(sub_3m_price=999))
    assert [p.id for p in plans] == ["1m", "3m", "6m", "12m"]
    assert plans.get("3m").price == 99_900  # kopecks
    assert plans.get("1m").days == 30


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "is invalid"),
        (json.dumps({"plans": []}), "missing plans 1m, 3m, 6m, 12m"),
        (
            json.dumps({"plans": [{"id": "1m", "months": 1, "days": 30, "price_rub": -5,
                                   "max_configs": 1}]}),
            "is invalid",
        ),
        (
            json.dumps({"plans": [{"id": "2w", "months": 1, "days": 14, "price_rub": 5,
                                   "max_configs": 1}]}),
            "unknown plan id '2w'",
        ),
    ],
)
def test_broken_plans_file_is_a_clear_error(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "plans.json"
    path.write_text(content)
    with pytest.raises(PlanError, match=expected):
        load_plans(Settings(), path)


def test_missing_plans_file(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="cannot be read"):
        load_plans(Settings(), tmp_path / "nope.json")


def _one_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert "Traceback" not in output
    return lines[0]


async def test_process_exits_2_on_a_bad_int(base_env: dict[str, str], log_dir: Path) -> None:
    code, out = await run_to_exit("balancer", {**base_env, "MAX_IPS_PER_CONFIG": "lots"}, log_dir)
    assert code == 2
    assert "MAX_IPS_PER_CONFIG expected an integer > 0, got 'lots'" in _one_line(out)


async def test_bot_exits_2_without_a_token(base_env: dict[str, str], log_dir: Path) -> None:
    code, out = await run_to_exit("bot", base_env, log_dir)
    assert code == 2
    assert "BOT_TOKEN is required" in _one_line(out)


async def test_process_exits_2_on_broken_plans(
    base_env: dict[str, str], log_dir: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "plans.json"
    broken.write_text('{"plans": [')
    code, out = await run_to_exit("janitor", {**base_env, "PLANS_FILE": str(broken)}, log_dir)
    assert code == 2
    assert f"plans file {broken} is invalid" in _one_line(out)


async def test_process_exits_3_when_postgres_is_unreachable(
    base_env: dict[str, str], log_dir: Path
) -> None:
    env = {**base_env, "DATABASE_URL": "postgresql://orbit:orbit@127.0.0.1:1/orbit"}
    code, out = await run_to_exit("janitor", env, log_dir)
    assert code == 3
    assert "Postgres is unreachable at 127.0.0.1:1/orbit" in _one_line(out)


async def test_process_exits_3_when_redis_is_unreachable(
    base_env: dict[str, str], log_dir: Path
) -> None:
    env = {**base_env, "REDIS_URL": "redis://127.0.0.1:1"}
    code, out = await run_to_exit("janitor", env, log_dir)
    assert code == 3
    assert "Redis is unreachable" in _one_line(out)


# --- credentials never printed (issue 16, defect 4) ---------------------------------------------

REDIS_PASSWORD = "S3cr3tRedisPw"
PG_PASSWORD = "PgS3cretPw42"


def test_every_credential_is_masked_in_repr() -> None:
    s = Settings(
        bot_token="123456:AAHsecretTokenPart",
        redis_url=f"redis://default:{REDIS_PASSWORD}@10.0.0.5:6380/2",
        database_url=f"postgresql://orbit:{PG_PASSWORD}@db.internal:5432/orbit",
        telegram_api_url="https://proxy:TgProxyPw9@tg.internal",
        cryptobot_api_url="https://pay.internal/api?token=CryptoQueryTok",
        tonapi_key="TonApiKey123",
        webhook_secret="HookSecret77",
    )
    shown = repr(s)
    for secret in (
        "AAHsecretTokenPart", REDIS_PASSWORD, PG_PASSWORD, "TgProxyPw9", "CryptoQueryTok",
        "TonApiKey123", "HookSecret77",
    ):  # fmt: skip
        assert secret not in shown
    # Where each URL points stays readable.
    assert "redis://default:***@10.0.0.5:6380/2" in shown
    assert "postgresql://orbit:***@db.internal:5432/orbit" in shown
    assert "https://proxy:***@tg.internal" in shown
    assert str(s) == shown


def test_scrub_removes_the_settings_credentials_from_any_text() -> None:
    s = Settings(
        bot_token="123456:AAHsecretTokenPart",
        redis_url=f"redis://:{REDIS_PASSWORD}@10.0.0.5:6380",
        database_password=PG_PASSWORD,
    )
    text = (
        f"cannot reach redis://:{REDIS_PASSWORD}@10.0.0.5:6380 (auth {REDIS_PASSWORD}); "
        f"GET https://api.telegram.org/bot123456:AAHsecretTokenPart/getMe; password {PG_PASSWORD}; "
        "a URL never configured: amqp://guest:GuestPw1@mq"
    )
    scrubbed = s.scrub(text)
    for secret in (REDIS_PASSWORD, "AAHsecretTokenPart", PG_PASSWORD, "GuestPw1"):
        assert secret not in scrubbed
    assert "redis://:***@10.0.0.5:6380" in scrubbed


def test_a_malformed_secret_setting_is_named_without_its_value() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({"TELEGRAM_API_URL": "ftp://bot:TgProxyPw9@proxy"})
    message = str(info.value)
    assert "TgProxyPw9" not in message
    assert "TELEGRAM_API_URL expected an http(s) URL, got 'ftp://bot:***@proxy'" in message


async def test_redis_password_is_not_in_the_start_up_error(base_env: dict[str, str], log_dir: Path) -> None:
    env = {**base_env, "REDIS_URL": f"redis://:{REDIS_PASSWORD}@127.0.0.1:1/0"}
    code, out = await run_to_exit("janitor", env, log_dir)
    assert code == 3
    line = _one_line(out)
    assert REDIS_PASSWORD not in out
    assert "Redis is unreachable at redis://:***@127.0.0.1:1/0" in line


async def test_postgres_password_is_not_in_the_start_up_error(
    base_env: dict[str, str], log_dir: Path
) -> None:
    env = {**base_env, "DATABASE_URL": f"postgresql://orbit:{PG_PASSWORD}@127.0.0.1:1/orbit"}
    code, out = await run_to_exit("janitor", env, log_dir)
    assert code == 3
    assert PG_PASSWORD not in out
    assert "Postgres is unreachable at 127.0.0.1:1/orbit" in _one_line(out)


def test_webhook_mode_needs_a_url_a_secret_telegram_accepts_and_a_sane_max_connections() -> None:
    url = "https://bot.example.com/telegram/webhook"
    settings = load_settings(
        {"WEBHOOK_URL": url, "WEBHOOK_SECRET": "a-B_9", "WEBHOOK_MAX_CONNECTIONS": "100"}
    )
    assert (settings.webhook_url, settings.webhook_secret, settings.webhook_max_connections) == (
        url,
        "a-B_9",
        100,
    )
    assert load_settings({}).webhook_url is None  # polling, the default
    with pytest.raises(SettingsError, match="WEBHOOK_SECRET is required with WEBHOOK_URL"):
        load_settings({"WEBHOOK_URL": url})
    with pytest.raises(SettingsError) as info:
        load_settings(
            {
                "WEBHOOK_URL": "bot.example.com",
                "WEBHOOK_SECRET": "no spaces!",
                "WEBHOOK_MAX_CONNECTIONS": "101",
            }
        )
    message = str(info.value)
    assert "WEBHOOK_URL expected an http(s) URL" in message
    assert "WEBHOOK_SECRET expected text matching" in message and "no spaces" not in message  # a secret
    assert "WEBHOOK_MAX_CONNECTIONS expected an integer >= 1 <= 100" in message
