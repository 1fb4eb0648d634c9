"""Panel passwords are encrypted at rest with MARZBAN_PASSWORD_KEY (issue 16, defect 6)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path

import asyncpg
import msgspec
import pytest
from cryptography.fernet import Fernet

from orbit.cli.errors import CommandError
from orbit.cli.main import build_parser
from orbit.marzban import instances
from orbit.marzban.passwords import PanelPasswords, check_passwords
from orbit.marzban.provisioning import PanelDeps, provision_config
from orbit.migrate import upgrade
from orbit.settings import Settings, SettingsError, load_settings
from tests.conftest import create_database, drop_database
from tests.marzban.conftest import Panels, add_user, instance_for, pending_config
from tests.support.processes import run_to_exit


async def orbit(settings: Settings, *argv: str) -> int:
    args = build_parser().parse_args(["instances", *argv])
    return await args.func(args, settings)


async def test_a_password_added_or_edited_is_stored_encrypted_and_still_works(
    deps: PanelDeps, panels: Panels
) -> None:
    url = str(panels.a.base_url)
    assert await orbit(deps.settings, "add", "a", "--url", url, "--username", "admin",
                       "--password", "admin") == 0  # fmt: skip
    stored = await deps.pool.fetchval("SELECT password FROM marzban_instances WHERE id = 'a'")
    assert stored.startswith("fernet:") and "admin" not in stored
    assert deps.passwords.open(stored) == "admin"
    await add_user(deps.pool, 1)
    config = await pending_config(deps.pool, 1, "a")
    assert (await provision_config(deps, config.id)).status == "active"  # logs in with it
    panels.a.set_admin_password("s3cret")
    await asyncio.sleep(1.05)  # a token of the change's own second is refused (reference §10)
    assert await orbit(deps.settings, "edit", "a", "--password", "s3cret") == 0
    stored = await deps.pool.fetchval("SELECT password FROM marzban_instances WHERE id = 'a'")
    assert "s3cret" not in stored and deps.passwords.open(stored) == "s3cret"


async def test_without_a_key_no_password_is_stored(deps: PanelDeps, panels: Panels) -> None:
    keyless = msgspec.structs.replace(deps.settings, marzban_password_key=None)
    with pytest.raises(CommandError, match="MARZBAN_PASSWORD_KEY is not set"):
        await orbit(keyless, "add", "a", "--url", str(panels.a.base_url), "--username", "admin",
                    "--password", "admin")  # fmt: skip
    assert await instances.get_instance(deps.pool, "a") is None


async def test_start_up_names_the_variable_when_the_key_is_missing_or_wrong(
    deps: PanelDeps, panels: Panels, caplog: pytest.LogCaptureFixture
) -> None:
    sealed = deps.passwords.seal("admin")
    assert await instances.insert_instance(deps.pool, instance_for("a", panels.a, password=sealed))
    await check_passwords(deps.pool, deps.settings)  # the right key: fine
    for key in (None, Fernet.generate_key().decode()):
        wrong = msgspec.structs.replace(deps.settings, marzban_password_key=key)
        with pytest.raises(SettingsError, match="MARZBAN_PASSWORD_KEY"):
            await check_passwords(deps.pool, wrong)
    # A plain-text row (from before the key) is readable but warned about.
    assert await instances.insert_instance(deps.pool, instance_for("b", panels.b))
    with caplog.at_level(logging.WARNING):
        await check_passwords(deps.pool, deps.settings)
    assert "passwords of b are stored in plain text" in caplog.text
    assert await orbit(deps.settings, "encrypt-passwords") == 0
    stored = await deps.pool.fetchval("SELECT password FROM marzban_instances WHERE id = 'b'")
    assert stored.startswith("fernet:")


async def test_a_process_refuses_to_start_without_the_key(
    db: asyncpg.Pool, panels: Panels, base_env: dict[str, str], log_dir: Path
) -> None:
    sealed = PanelPasswords(Fernet.generate_key().decode()).seal("admin")
    assert await instances.insert_instance(db, instance_for("a", panels.a, password=sealed))
    code, output = await run_to_exit("balancer", base_env, log_dir)
    assert code == 2, output
    assert "MARZBAN_PASSWORD_KEY is not set" in output


def test_a_malformed_key_is_a_settings_error() -> None:
    with pytest.raises(SettingsError, match="MARZBAN_PASSWORD_KEY expected Fernet keys"):
        load_settings({"MARZBAN_PASSWORD_KEY": "not-a-key"})
    key = Fernet.generate_key().decode()
    settings = load_settings({"MARZBAN_PASSWORD_KEY": f"{key}, {Fernet.generate_key().decode()}"})
    assert key not in repr(settings)


def test_rotation_re_encrypts_under_the_first_key() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    stored = PanelPasswords(old).seal("pw")
    both = PanelPasswords(f"{new},{old}")
    fresh = both.reseal(stored)
    assert fresh is not None and PanelPasswords(new).open(fresh) == "pw"
    assert both.reseal(fresh) is None


async def test_the_migration_encrypts_existing_rows_when_the_key_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = f"orbit_mig_{uuid.uuid4().hex[:8]}"
    dsn = await create_database(name)
    try:
        await asyncio.to_thread(upgrade, dsn, "0003_stars")
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(
                "INSERT INTO marzban_instances (id, name, base_url, username, password)"
                " VALUES ('p1', 'p1', 'http://x', 'admin', 'plain-secret')"
            )
            key = Fernet.generate_key().decode()
            monkeypatch.setenv("MARZBAN_PASSWORD_KEY", key)
            await asyncio.to_thread(upgrade, dsn)
            stored = await conn.fetchval("SELECT password FROM marzban_instances")
        finally:
            await conn.close()
        assert stored.startswith("fernet:") and PanelPasswords(key).open(stored) == "plain-secret"
    finally:
        await drop_database(name)
