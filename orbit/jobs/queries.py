"""Jobs SQL. A job's life: `queued` → (claim) `running` → `done` or `failed`.

While it runs, its worker renews `heartbeat_at`; a `running` job whose heartbeat
is older than the lease lost its worker (kill -9) and is claimed again. Every
kind is written to be run again from the start (a fan-out resumes after its last
row, a drain moves what is still left). The lease is liveness, not business
time: it reads the host's `now()`, not `orbit_now()`, so moving the test clock
never steals a running job.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import msgspec

JOB_COLUMNS = (
    "id, kind, args, state, progress, created_by, chat_id, message_id, locale, attempts, error,"
    " created_at, started_at, finished_at"
)


class JobRow(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    kind: str  # broadcast, drain
    args: dict[str, Any]
    state: str
    progress: dict[str, Any]
    created_by: int  # the admin's Telegram id, 0 for the CLI
    chat_id: int | None  # where the progress is shown in place
    message_id: int | None
    locale: str
    attempts: int
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


ENQUEUE = f"""
INSERT INTO jobs (kind, args, created_by, chat_id, message_id, locale)
VALUES ($1, $2::jsonb, $3, $4, $5, $6)
RETURNING {JOB_COLUMNS}
"""

# The oldest queued job, or a running one whose worker stopped beating.
CLAIM = f"""
UPDATE jobs SET state = 'running', attempts = attempts + 1, heartbeat_at = now(),
    started_at = coalesce(started_at, now())
WHERE id = (
    SELECT id FROM jobs
    WHERE state = 'queued'
       OR (state = 'running' AND heartbeat_at < now() - make_interval(secs => $1))
    ORDER BY id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
RETURNING {JOB_COLUMNS}
"""

# The heartbeat (and the progress so far); false when the job was taken from us.
BEAT = """
UPDATE jobs SET heartbeat_at = now(), progress = coalesce($3::jsonb, progress)
WHERE id = $1 AND state = 'running' AND attempts = $2
RETURNING true
"""

FINISH = """
UPDATE jobs SET state = $3, error = $4, finished_at = now(), heartbeat_at = now()
WHERE id = $1 AND state = 'running' AND attempts = $2
"""

# Handed back at a clean shutdown: the next worker takes it at once.
RELEASE = """
UPDATE jobs SET state = 'queued', heartbeat_at = NULL
WHERE id = $1 AND state = 'running' AND attempts = $2
"""

GET = f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"


def _row(record: asyncpg.Record | None) -> JobRow | None:
    return None if record is None else JobRow(**dict(record))


async def enqueue(
    conn: asyncpg.Connection | asyncpg.Pool,
    kind: str,
    args: dict[str, Any],
    *,
    created_by: int,
    chat_id: int | None = None,
    message_id: int | None = None,
    locale: str = "en",
) -> JobRow:
    row = _row(await conn.fetchrow(ENQUEUE, kind, args, created_by, chat_id, message_id, locale))
    assert row is not None
    return row


async def claim(conn: asyncpg.Connection | asyncpg.Pool, lease_seconds: float) -> JobRow | None:
    return _row(await conn.fetchrow(CLAIM, lease_seconds))


async def beat(
    conn: asyncpg.Connection | asyncpg.Pool, job: JobRow, progress: dict[str, Any] | None = None
) -> bool:
    return bool(await conn.fetchval(BEAT, job.id, job.attempts, progress))


async def finish(
    conn: asyncpg.Connection | asyncpg.Pool, job: JobRow, state: str, error: str | None = None
) -> None:
    await conn.execute(FINISH, job.id, job.attempts, state, error)


async def release(conn: asyncpg.Connection | asyncpg.Pool, job: JobRow) -> None:
    await conn.execute(RELEASE, job.id, job.attempts)


async def get(conn: asyncpg.Connection | asyncpg.Pool, job_id: int) -> JobRow | None:
    return _row(await conn.fetchrow(GET, job_id))
