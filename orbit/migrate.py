"""Schema revisions: upgrade with Alembic, refuse to run on a schema that is behind."""

from __future__ import annotations

from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config

from orbit.connections import StartupError
from orbit.schema import SCHEMA_HEAD

ALEMBIC_INI = Path(__file__).resolve().parent.parent / "alembic.ini"


def alembic_config(dsn: str) -> Config:
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("sqlalchemy.url", dsn.replace("%", "%%"))
    config.attributes["configure_logging"] = False
    return config


def upgrade(dsn: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(dsn), revision)


def downgrade(dsn: str, revision: str) -> None:
    command.downgrade(alembic_config(dsn), revision)


async def current_revision(conn: asyncpg.Connection | asyncpg.Pool) -> str | None:
    try:
        return await conn.fetchval("SELECT version_num FROM alembic_version")
    except asyncpg.UndefinedTableError:
        return None


async def require_schema(pool: asyncpg.Pool) -> None:
    revision = await current_revision(pool)
    if revision != SCHEMA_HEAD:
        raise StartupError(
            f"database schema is at {revision or 'nothing'}, this code needs {SCHEMA_HEAD}: "
            "run `orbit migrate`"
        )
