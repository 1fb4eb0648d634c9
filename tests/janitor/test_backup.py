"""Backups (orbit/backup.py): `orbit backup`, drop the database, `orbit restore`: every
row back and `orbit audit` clean; a non-empty database is refused without --force; the
nightly one is made once across janitors and sent when it fits Telegram's limit."""

from __future__ import annotations

import asyncio
import os
import stat
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import asyncpg
import msgspec
import pytest
from redis.asyncio import Redis

from orbit import backup, keys, ledger
from orbit.migrate import upgrade
from orbit.settings import Settings
from tests.conftest import create_database, drop_database
from tests.support.cli import orbit

TABLES = ("users", "ledger", "payments", "marzban_instances", "configs", "outbox", "clock")


@pytest.fixture
async def own_database(run_id: str) -> AsyncIterator[tuple[str, str]]:
    """A database of this test's own (the test drops it), migrated to head."""
    name = f"orbit_backup_{run_id}_{uuid.uuid4().hex[:6]}"
    dsn = await create_database(name)
    await asyncio.to_thread(upgrade, dsn)
    yield name, dsn
    await drop_database(name)


def _parts(folder: Path) -> list[Path]:
    return list(folder.glob("*.part"))


async def _fill(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for user_id in (1, 2, 3):
            await conn.execute(
                "INSERT INTO users (id, username, language) VALUES ($1, $2, 'ru')", user_id, f"u{user_id}"
            )
            async with conn.transaction():
                await ledger.credit(conn, user_id, 1000 * user_id, "topup", f"k{user_id}")
        await conn.execute(
            "INSERT INTO payments (user_id, method, status, amount_kop, currency, currency_amount,"
            " expires_at) VALUES (1, 'stars', 'pending', 10000, 'XTR', 75, now())"
        )
        await conn.execute(
            "INSERT INTO marzban_instances (id, name, base_url, username, password)"
            " VALUES ('a', 'A', 'http://127.0.0.1:1', 'admin', 'fernet:x')"
        )
        await conn.execute(
            "INSERT INTO configs (user_id, instance_id, panel_username, name, status)"
            " VALUES (2, 'a', 'o2_abc', 'Телефон 📱', 'active')"
        )
        await conn.execute("INSERT INTO outbox (chat_id, kind, text) VALUES (3, 'n', 'привет')")
        await conn.execute("UPDATE clock SET offset_seconds = 42")
    finally:
        await conn.close()


async def _rows(dsn: str) -> dict[str, list[tuple[object, ...]]]:
    conn = await asyncpg.connect(dsn)
    try:
        return {t: [tuple(r) for r in await conn.fetch(f"SELECT * FROM {t} ORDER BY 1")] for t in TABLES}
    finally:
        await conn.close()


async def test_backup_drop_restore_every_row_back_and_audit_clean(
    own_database: tuple[str, str], base_env: dict[str, str], tmp_path: Path
) -> None:
    name, dsn = own_database
    await _fill(dsn)
    before = await _rows(dsn)
    env = {**base_env, "DATABASE_URL": dsn, "BACKUP_DIR": str(tmp_path / "backups")}
    code, out, err = await orbit(env, "backup")
    assert code == 0, out + err
    [file] = backup.backups(tmp_path / "backups")
    assert stat.S_IMODE(os.stat(file).st_mode) == 0o600
    assert str(file) in out

    await drop_database(name)
    await create_database(name)
    code, out, err = await orbit(env, "restore", str(file))
    assert code == 0, out + err
    assert await _rows(dsn) == before
    code, out, err = await orbit(env, "audit")
    assert code == 0, out + err

    # Now the database holds rows: refused, and nothing changed; --force replaces them.
    conn = await asyncpg.connect(dsn)
    await conn.execute("INSERT INTO users (id, language) VALUES (99, 'en')")
    await conn.close()
    code, out, err = await orbit(env, "restore", str(file))
    assert code == 2 and "the database is not empty" in err and "--force" in err
    assert len((await _rows(dsn))["users"]) == 4
    code, out, err = await orbit(env, "restore", "--force", str(file))
    assert code == 0, out + err
    assert await _rows(dsn) == before


async def test_a_missing_or_foreign_file_is_refused(base_env: dict[str, str], tmp_path: Path) -> None:
    junk = tmp_path / "orbit-junk.dump"
    junk.write_text("not a dump")
    for path in (junk, tmp_path / "missing.dump"):
        code, _, err = await orbit(base_env, "restore", str(path))
        assert code == 2 and "pg_restore failed" in err


async def test_only_the_newest_backups_are_kept(settings: Settings, tmp_path: Path) -> None:
    keep_two = msgspec.structs.replace(settings, backup_dir=str(tmp_path), backup_keep=2)
    made = [await backup.make_backup(keep_two, datetime(2026, 1, day, 3, tzinfo=UTC)) for day in (1, 2, 3)]
    assert backup.backups(tmp_path) == made[1:]
    assert not _parts(tmp_path)


async def test_the_nightly_backup_is_made_once_across_janitors_and_sent(
    settings: Settings, redis: Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nightly = msgspec.structs.replace(
        settings, backup_dir=str(tmp_path), backup_hour_utc=3, backup_chat_id=-100
    )
    sent: list[Path] = []
    claim = keys.backup_claim("2026-05-01")

    async def send(path: Path) -> None:
        sent.append(path)
        # The night is made: held for longer than the night, before the copy goes out.
        assert await redis.get(claim) == "made" and await redis.ttl(claim) > backup.DUMP_CLAIM_SECONDS

    dumping: list[int] = []
    make_backup = backup.make_backup

    async def observed(settings: Settings, now: datetime) -> Path:
        dumping.append(await redis.ttl(claim))
        return await make_backup(settings, now)

    monkeypatch.setattr(backup, "make_backup", observed)
    evening = datetime(2026, 5, 1, 2, 59, tzinfo=UTC)
    assert await backup.nightly_backup(nightly, redis, evening, send) == 0  # before the hour
    night = datetime(2026, 5, 1, 3, 0, tzinfo=UTC)
    assert await backup.nightly_backup(nightly, redis, night, send) == 1
    assert await backup.nightly_backup(nightly, redis, night.replace(hour=4), send) == 0  # the other janitor
    assert sent == backup.backups(tmp_path) and len(sent) == 1
    # During the dump the claim is short: a janitor killed in it gives the night back soon.
    assert 0 < dumping[0] <= backup.DUMP_CLAIM_SECONDS
    # Over Telegram's upload limit: kept on disk, not sent.
    monkeypatch.setattr(backup, "TELEGRAM_UPLOAD_LIMIT", 10)
    assert await backup.nightly_backup(nightly, redis, night.replace(day=2), send) == 1
    assert len(sent) == 1 and len(backup.backups(tmp_path)) == 2


async def test_a_failed_nightly_backup_gives_its_night_back(
    settings: Settings, redis: Redis, tmp_path: Path
) -> None:
    broken = msgspec.structs.replace(
        settings, backup_dir=str(tmp_path), database_url="postgresql://orbit:orbit@127.0.0.1:5432/no_such_db"
    )
    night = datetime(2026, 5, 1, 23, 0, tzinfo=UTC)
    with pytest.raises(backup.BackupError):
        await backup.nightly_backup(broken, redis, night)
    assert not await redis.exists(keys.backup_claim("2026-05-01"))
    assert backup.backups(tmp_path) == [] and not _parts(tmp_path)
    assert (
        await backup.nightly_backup(
            msgspec.structs.replace(broken, database_url=settings.database_url), redis, night
        )
        == 1
    )


async def test_the_janitor_sends_the_backup_as_a_document(settings: Settings, tmp_path: Path) -> None:
    from orbit.bot_client import create_bot
    from orbit.janitor.process import backup_sender
    from orbit.sandbox.telegram import TelegramEmulator
    from orbit.sandbox.telegram_control import TelegramControl
    from tests.conftest import TEST_BOT_TOKEN

    emulator = TelegramEmulator()
    url = await emulator.start()
    try:
        async with aiohttp.ClientSession() as http:
            control = TelegramControl(url, http)
            await control.send_text(4242, "/start", first_name="Admin")  # the admin's chat exists
            bot = create_bot(
                msgspec.structs.replace(settings, bot_token=TEST_BOT_TOKEN, telegram_api_url=url)
            )
            try:
                made = await backup.make_backup(msgspec.structs.replace(settings, backup_dir=str(tmp_path)))
                await backup_sender(bot, 4242)(made)
            finally:
                await bot.session.close()
            [sent] = [m for m in await control.messages(4242) if m.from_bot]
    finally:
        await emulator.stop()
    assert sent.kind == "document" and sent.document is not None
    assert sent.document.file_name == made.name and sent.caption == made.name
    assert sent.document.file_size == made.stat().st_size
